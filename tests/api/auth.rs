//! Accounts and access control, attacked the way the issue lists: session fixation, a CSRF matrix, login
//! throttling, the role × route matrix built from the API's own endpoint table, API tokens, the audit log.

use app::auth::{Permission, Role};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::api::{endpoint_specs, Access, EndpointSpec};

use crate::backend_tests;
use crate::helpers::{fresh_postgres_database, send, session_cookie, spawn_app, spawn_app_with, Backend, TestApp};

backend_tests!(
    sign_in_rotates_the_session_id_and_sign_out_destroys_it,
    wrong_passwords_and_unknown_users_get_the_same_answer,
    cross_site_requests_change_nothing,
    the_eleventh_failure_in_a_minute_is_throttled,
    every_route_answers_every_role_as_declared,
    api_tokens_authenticate_until_revoked,
    admins_manage_users_and_every_change_is_audited,
    disabling_a_user_ends_their_sessions,
    bad_input_gets_a_json_error,
    each_user_keeps_a_time_zone_of_the_tz_database,
    refused_password_changes_name_the_field_at_fault,
);

async fn me(app: &TestApp, client: &reqwest::Client) -> StatusCode {
    client.get(app.url("/api/v1/auth/me")).send().await.unwrap().status()
}

async fn sign_in_rotates_the_session_id_and_sign_out_destroys_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (anna, anna_pw) = app.create_user(Role::Viewer).await;
    let (bert, bert_pw) = app.create_user(Role::Viewer).await;

    let client = app.browser();
    let first = app.login(&client, &anna, &anna_pw).await;
    assert_eq!(first.status(), 200);
    let set_cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain http must not mark the cookie Secure: {set_cookie}"
    );
    let first_id = session_cookie(&first).expect("sign-in sets the session cookie");
    assert_eq!(me(&app, &client).await, 200);

    // Signing in again on the same browser (as a fixation attack would, with a planted id) gets a new id.
    let second = app.login(&client, &bert, &bert_pw).await;
    assert_eq!(second.status(), 200);
    let second_id = session_cookie(&second).expect("a new session cookie");
    assert_ne!(first_id, second_id, "the session id was not rotated at sign-in");
    let body: Value = client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["username"], bert);

    // The old id no longer authenticates.
    let old = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", format!("{}={first_id}", server::auth::COOKIE_NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);

    // Sign-out destroys the session: the id that was valid a moment ago is refused.
    let response = client.post(app.url("/api/v1/auth/logout")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(me(&app, &client).await, 401);
    let replayed = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", format!("{}={second_id}", server::auth::COOKIE_NAME))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
}

async fn wrong_passwords_and_unknown_users_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (anna, _) = app.create_user(Role::Viewer).await;
    let client = app.browser();
    let wrong = app.login(&client, &anna, "not the password at all").await;
    let unknown = app.login(&client, "nobody-here", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
}

async fn user_count(app: &TestApp, admin: &reqwest::Client) -> usize {
    let body: Value = admin
        .get(app.url("/api/v1/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["users"].as_array().unwrap().len()
}

async fn cross_site_requests_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    let before = user_count(&app, &admin).await;
    let cookie = {
        // The admin's session cookie, replayed by hand as a browser would attach it to a cross-site request.
        let (name, password) = app.create_user(Role::Admin).await;
        let response = app.login(&app.browser(), &name, &password).await;
        format!("{}={}", server::auth::COOKIE_NAME, session_cookie(&response).unwrap())
    };
    let before = before + 1;
    let new_user =
        json!({ "username": "mallory", "display_name": "M", "password": "a long enough password", "role": "admin" });
    let users = app.url("/api/v1/users");
    let attempts: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "foreign Origin with the header",
            app.client
                .post(&users)
                .header("cookie", &cookie)
                .header("origin", "http://evil.example")
                .header(app::auth::CSRF_HEADER, "1")
                .json(&new_user),
        ),
        (
            "no Origin or Referer",
            app.client
                .post(&users)
                .header("cookie", &cookie)
                .header(app::auth::CSRF_HEADER, "1")
                .json(&new_user),
        ),
        (
            "foreign Referer",
            app.client
                .post(&users)
                .header("cookie", &cookie)
                .header("referer", "http://evil.example/page")
                .header(app::auth::CSRF_HEADER, "1")
                .json(&new_user),
        ),
        (
            "text/plain JSON from a same-origin-looking page without the header",
            app.client
                .post(&users)
                .header("cookie", &cookie)
                .header("origin", &app.address)
                .header("content-type", "text/plain")
                .body(new_user.to_string()),
        ),
        (
            "form post",
            app.client
                .post(&users)
                .header("cookie", &cookie)
                .header("origin", "http://evil.example")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=mallory&display_name=M&password=a+long+enough+password&role=admin"),
        ),
        (
            "server function from another site",
            app.client
                .post(app.url("/_fn/auth/create_user"))
                .header("cookie", &cookie)
                .header("origin", "http://evil.example")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=mallory&display_name=M&password=a+long+enough+password&role=admin"),
        ),
        (
            "server function without the header",
            app.client
                .post(app.url("/_fn/auth/create_user"))
                .header("cookie", &cookie)
                .header("origin", &app.address)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=mallory&display_name=M&password=a+long+enough+password&role=admin"),
        ),
        (
            "sign-out from another site",
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .header("cookie", &cookie)
                .header("origin", "http://evil.example")
                .header(app::auth::CSRF_HEADER, "1"),
        ),
    ];
    for (what, request) in attempts {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{what}");
    }
    assert_eq!(
        user_count(&app, &admin).await,
        before,
        "a cross-site request changed state"
    );
    // The session survived the cross-site sign-out attempt.
    let still = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);

    // The same request from Gantry's own page goes through.
    let response = admin.post(&users).json(&new_user).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(user_count(&app, &admin).await, before + 1);
}

async fn the_eleventh_failure_in_a_minute_is_throttled(backend: Backend) {
    let app = spawn_app(backend).await;
    let (anna, password) = app.create_user(Role::Viewer).await;
    let client = app.browser();
    for attempt in 1..=10 {
        let response = app.login(&client, &anna, "wrong password, again").await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let response = app.login(&client, &anna, &password).await;
    assert_eq!(response.status(), 429, "even the right password waits");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    // Another account from the same client is not locked out.
    let (bert, bert_pw) = app.create_user(Role::Viewer).await;
    assert_eq!(app.login(&client, &bert, &bert_pw).await.status(), 200);
}

/// A caller of the matrix: a role (or nobody), with its password and API token.
struct Caller {
    label: String,
    role: Option<Role>,
    password: String,
    token: Option<String>,
    /// Granted only a subtree that holds none of the fixtures.
    outside: bool,
}

/// A body each endpoint accepts, so that a refusal can only come from authorization.
fn sample_body(spec: &EndpointSpec, caller: &Caller, alarm_id: i64) -> Option<Value> {
    let body = match (spec.method.as_str(), spec.path) {
        ("POST", "/auth/login") => json!({ "username": "nobody", "password": "wrong password here" }),
        ("POST", "/auth/setup") => {
            json!({ "setup_token": "x", "username": "x", "display_name": "x", "password": "a long enough password" })
        }
        ("PUT", "/auth/password") => json!({ "current_password": caller.password, "new_password": caller.password }),
        ("PUT", "/auth/time_zone") => json!({ "time_zone": "Europe/Berlin" }),
        ("POST", "/users") => {
            json!({ "username": format!("made-by-{}", caller.label), "display_name": "New", "password": "a long enough password", "role": "viewer" })
        }
        ("PATCH", "/users/{id}") => json!({ "display_name": "Renamed" }),
        ("POST", "/users/{id}/password") => json!({ "new_password": "another long password" }),
        ("POST", "/users/{id}/tokens") | ("POST", "/tokens") => json!({ "name": "matrix" }),
        ("POST", "/templates") => json!({ "name": format!("T {}", caller.label), "attributes": [] }),
        ("PUT", "/templates/{id}") => fixture_template(),
        ("POST", "/assets") => json!({ "name": format!("made by {}", caller.label), "parent_id": 1 }),
        ("PATCH", "/assets/{id}") => json!({ "description": format!("patched by {}", caller.label) }),
        ("POST", "/devices") => json!({ "name": format!("made-by-{}", caller.label), "asset_id": 1 }),
        ("PATCH", "/devices/{id}") => json!({ "description": format!("patched by {}", caller.label) }),
        ("POST", "/devices/{id}/tokens") => json!({ "name": "matrix" }),
        ("POST", "/gateway-tokens") => json!({ "name": "matrix", "devices": ["matrix-device"] }),
        // JSON is YAML: an empty model file, which imports as no change.
        ("POST", "/model/import") => json!({ "schema_version": 1 }),
        ("POST", "/alarms/ack") => json!({ "ids": [alarm_id], "comment": format!("seen by {}", caller.label) }),
        ("POST", "/alarms/{id}/ack") => json!({}),
        ("POST", "/alarms/{id}/shelve") => json!({ "minutes": 5, "reason": "matrix" }),
        ("POST", "/alarms/{id}/service") => json!({ "in_service": true, "reason": "matrix" }),
        ("POST", "/alarms/{id}/comments") => json!({ "text": format!("noted by {}", caller.label) }),
        ("PUT", "/assets/{id}/rules") => json!({ "rules": [] }),
        // Nothing listens on port 9: deliveries fail in the background, which this test does not look at.
        ("POST", "/webhooks") => json!({ "name": "matrix", "url": "http://127.0.0.1:9/hook" }),
        // Personal dashboards: anyone who may view keeps their own.
        ("POST", "/dashboards") | ("PUT", "/dashboards/{id}") => json!({ "name": format!("by {}", caller.label) }),
        ("POST", "/reports") | ("PUT", "/reports/{id}") => matrix_report(&format!("report by {}", caller.label)),
        // A run of the report's own range: no body.
        ("POST", "/auth/logout") | ("POST", "/reports/{id}/runs") => return None,
        (method, path) if method != "GET" && method != "DELETE" => {
            panic!("no sample body for {method} {path}: add one so the matrix covers it")
        }
        _ => return None,
    };
    Some(body)
}

fn fixture_template() -> Value {
    json!({ "name": "Matrix pump", "attributes": [{ "name": "flow", "value_type": "float", "unit": "m³/h",
        "limits": { "hi": 50.0 },
        "alarms": [{ "name": "High flow", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] }] })
}

/// A report on the fixture asset (`/Matrix site`): a table and a trend of its flow, its alarms.
fn matrix_report(name: &str) -> Value {
    json!({ "name": name, "scope": { "under": "/Matrix site" }, "range": { "kind": "hours", "hours": 1 },
        "sections": [{ "kind": "table", "attributes": ["flow"], "aggregates": ["average"] },
                     { "kind": "trend", "series": [{ "asset": "/Matrix site", "attribute": "flow" }] },
                     { "kind": "alarms" }] })
}

/// A fixture call as the given token; the JSON answer.
async fn fixture_call(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn every_route_answers_every_role_as_declared(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    // Model fixtures: a template in use by a root asset (id 1), so deleting either is refused, not done.
    let (fixture_admin, _) = app.create_user(Role::Admin).await;
    let fixture_token = app.token_for(&fixture_admin).await;
    let admin_post = |path: String, body: Value| {
        let (app, token) = (&app, fixture_token.clone());
        async move { fixture_call(app, &token, Method::POST, &path, Some(body)).await }
    };
    let template = admin_post("/api/v1/templates".into(), fixture_template()).await;
    let template_id = template["template"]["id"].as_i64().unwrap();
    let asset = admin_post(
        "/api/v1/assets".into(),
        json!({ "name": "Matrix site", "template": "Matrix pump" }),
    )
    .await;
    let asset_id = asset["asset"]["id"].as_i64().unwrap();
    assert_eq!(asset_id, 1, "the POST /assets sample body names asset 1 as parent");
    // A device on the fixture asset, and a way to make more (deleting routes get a fresh one each time).
    let fresh_device = |name: String| {
        let created = admin_post("/api/v1/devices".into(), json!({ "name": name, "asset_id": 1 }));
        async move { created.await["device"]["id"].as_i64().unwrap() }
    };
    let device_id = fresh_device("matrix-device".into()).await;
    let mut fresh = 0;
    // An alarm on the fixture asset: the device reports a flow over the template's Hi limit.
    let device_token = admin_post(
        format!("/api/v1/devices/{device_id}/tokens"),
        json!({ "name": "matrix" }),
    )
    .await;
    let ingest = fixture_call(
        &app,
        device_token["secret"].as_str().unwrap(),
        Method::POST,
        "/api/v1/ingest",
        Some(json!({ "readings": [{ "field": "flow", "value": 80.0 }] })),
    )
    .await;
    assert_eq!(ingest["accepted"], 1, "{ingest}");
    let alarms = fixture_call(&app, &fixture_token, Method::GET, "/api/v1/alarms", None).await;
    let alarm_id = alarms["alarms"][0]["id"]
        .as_i64()
        .expect("the fixture alarm was raised");
    // Webhooks to point at; deleting routes get a fresh one each time.
    let fresh_webhook = || {
        let created = admin_post(
            "/api/v1/webhooks".into(),
            json!({ "name": "fixture", "url": "http://127.0.0.1:9/hook" }),
        );
        async move { created.await["webhook"]["id"].as_i64().unwrap() }
    };
    let webhook_id = fresh_webhook().await;
    // A shared dashboard everyone may read; changing routes get a personal one of the caller's each time.
    let shared_dashboard = admin_post(
        "/api/v1/dashboards".into(),
        json!({ "name": "Matrix board", "shared": true }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    // A report everyone may run; deleting routes get a fresh one each time.
    let fresh_report = |name: String| {
        let created = admin_post("/api/v1/reports".into(), matrix_report(&name));
        async move { created.await["id"].as_i64().unwrap() }
    };
    let report_id = fresh_report("Matrix report".into()).await;
    // A run of it, asked for by the fixture admin; cancelling routes get a fresh one each time.
    let fresh_run = || {
        let created = admin_post(format!("/api/v1/reports/{report_id}/runs"), json!({}));
        async move { created.await["id"].as_i64().unwrap() }
    };
    let run_id = fresh_run().await;
    // The objects the routes point at belong to someone else: a target user with a token.
    let (target, _) = app.create_user(Role::Viewer).await;
    let target_token = app.token_for(&target).await;
    let target_id = app
        .accounts
        .list_users_from_cli()
        .await
        .unwrap()
        .iter()
        .find(|u| u.username == target)
        .unwrap()
        .id;
    let target_token_id = fixture_call(&app, &target_token, Method::GET, "/api/v1/tokens", None).await["tokens"][0]
        ["id"]
        .as_i64()
        .unwrap();

    let mut callers = vec![Caller {
        label: "anonymous".into(),
        role: None,
        password: String::new(),
        token: None,
        outside: false,
    }];
    for role in Role::ALL {
        let (name, password) = app.create_user(role).await;
        let token = app.token_for(&name).await;
        callers.push(Caller {
            label: name,
            role: Some(role),
            password,
            token: Some(token),
            outside: false,
        });
    }
    // Users limited to a subtree that holds none of these objects: for them the fixtures do not exist.
    for role in [Role::Viewer, Role::Engineer] {
        let (outsider, password) = app.create_user_with_grants(role, vec![987_654]).await;
        let token = app.token_for(&outsider).await;
        callers.push(Caller {
            label: outsider,
            role: Some(role),
            password,
            token: Some(token),
            outside: true,
        });
    }

    let specs = endpoint_specs();
    assert!(specs.len() >= 29, "the endpoint table looks incomplete: {specs:?}");
    let client = reqwest::Client::new();
    for spec in &specs {
        // Revoking must not use up the only token: give DELETE /tokens/{id} a fresh token of the target each time.
        for caller in &callers {
            let object_id = if spec.path.starts_with("/devices/") && spec.method == reqwest::Method::DELETE {
                fresh += 1;
                fresh_device(format!("doomed-{fresh}")).await
            } else if spec.path.starts_with("/devices/") {
                device_id
            } else if spec.path.starts_with("/device-tokens/") {
                let created = admin_post(
                    format!("/api/v1/devices/{device_id}/tokens"),
                    json!({ "name": "to revoke" }),
                )
                .await;
                created["token"]["id"].as_i64().unwrap()
            } else if spec.path.starts_with("/alarms/") {
                alarm_id
            } else if spec.path.starts_with("/webhooks/") && spec.method == reqwest::Method::DELETE {
                fresh_webhook().await
            } else if spec.path.starts_with("/webhooks/") {
                webhook_id
            } else if spec.path.starts_with("/dashboards/") && spec.method != reqwest::Method::GET {
                match &caller.token {
                    Some(token) => {
                        fresh += 1;
                        let body = json!({ "name": format!("own {fresh}") });
                        let created = fixture_call(&app, token, Method::POST, "/api/v1/dashboards", Some(body)).await;
                        created["id"].as_i64().unwrap()
                    }
                    None => shared_dashboard,
                }
            } else if spec.path.starts_with("/dashboards/") {
                shared_dashboard
            } else if spec.path == "/reports/{id}" && spec.method == reqwest::Method::DELETE {
                fresh += 1;
                fresh_report(format!("doomed report {fresh}")).await
            } else if spec.path.starts_with("/reports/") {
                report_id
            } else if spec.path.starts_with("/templates/") {
                template_id
            } else if spec.path.starts_with("/assets/") {
                asset_id
            } else if spec.path.starts_with("/tokens/") {
                if spec.method == reqwest::Method::DELETE {
                    let fresh = app.token_for(&target).await;
                    let body: Value = client
                        .get(app.url("/api/v1/tokens"))
                        .bearer_auth(&fresh)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    body["tokens"].as_array().unwrap().last().unwrap()["id"]
                        .as_i64()
                        .unwrap()
                } else {
                    target_token_id
                }
            } else {
                target_id
            };
            let run = if spec.path.starts_with("/reports/{id}/runs/{run}") && spec.method == reqwest::Method::DELETE {
                fresh_run().await
            } else {
                run_id
            };
            // `{name}` is an attribute of the fixture template.
            let path = spec
                .path
                .replace("{id}", &object_id.to_string())
                .replace("{run}", &run.to_string())
                .replace("{name}", "flow");
            let mut request = client.request(spec.method.clone(), app.url(&format!("/api/v1{path}")));
            match &caller.token {
                Some(token) => request = request.bearer_auth(token),
                // A same-origin browser without a session, so that what refuses it is authorization, not CSRF.
                None => {
                    request = request
                        .header("origin", &app.address)
                        .header(app::auth::CSRF_HEADER, "1");
                }
            }
            if let Some(body) = sample_body(spec, caller, alarm_id) {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            // The live alarm feed streams until shutdown: its status says all this test needs.
            let body = if spec.path == "/alarms/events" && status.is_success() {
                String::from("(an event stream)")
            } else {
                response.text().await.unwrap()
            };
            let what = format!("{} {} as {}: {status} {body}", spec.method, spec.path, caller.label);
            assert!(!status.is_server_error(), "{what}");
            match (spec.access, caller.role) {
                (Access::Public, _) => {}
                (Access::Requires(_), None) => assert_eq!(status, 401, "{what}"),
                (Access::Requires(permission), Some(role)) if !role.allows(permission) => {
                    assert!(status == 403 || status == 404, "{what}")
                }
                (Access::Requires(Permission::ManageOwnAccount), Some(role))
                    if spec.path.contains("{id}") && !role.allows(Permission::Administer) =>
                {
                    // Someone else's tokens do not exist for a non-admin.
                    assert_eq!(status, 404, "{what}")
                }
                (Access::Requires(_), Some(_))
                    if caller.outside
                        && (spec.path.starts_with("/assets/{id}")
                            || spec.path.starts_with("/alarms/{id}")
                            || spec.path == "/alarms/ack"
                            || spec.path.starts_with("/devices/{id}")
                            || spec.path.starts_with("/device-tokens/")
                            || spec.path == "/gateway-tokens"
                            || (spec.path == "/devices" && spec.method == "POST")) =>
                {
                    assert_eq!(status, 404, "{what}")
                }
                (Access::Requires(_), Some(_))
                    if caller.outside
                        && spec.method != "GET"
                        && (spec.path.starts_with("/templates") || spec.path == "/model/import") =>
                {
                    // Templates and model files reach the whole plant: a subtree grant may not change them.
                    assert_eq!(status, 403, "{what}")
                }
                (Access::Requires(_), Some(role))
                    if spec.path.starts_with("/reports/{id}/runs/{run}") && spec.path != "/reports/{id}/runs/{run}"
                        || spec.path == "/reports/{id}/runs/{run}" && spec.method == "DELETE" =>
                {
                    // A run's files hold what its requester may see: theirs, or whole-plant users'. Cancelling
                    // someone else's run takes an engineer.
                    let refused = if spec.method == "DELETE" {
                        !role.allows(Permission::EditModel)
                    } else {
                        caller.outside
                    };
                    if refused {
                        assert_eq!(status, 403, "{what}");
                    } else {
                        assert!(status != 401 && status != 403 && status != 404, "{what}");
                    }
                }
                (Access::Requires(_), Some(_)) if caller.outside && spec.method == "POST" && spec.path == "/assets" => {
                    // The sample body creates under asset 1, outside the grant.
                    assert_eq!(status, 404, "{what}")
                }
                (Access::Requires(_), Some(_)) => {
                    assert!(status != 401 && status != 403 && status != 404, "{what}")
                }
            }
        }
    }
}

async fn api_tokens_authenticate_until_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in(Role::Operator).await;
    let response = browser
        .post(app.url("/api/v1/tokens"))
        .json(&json!({ "name": "grafana" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["token"]["id"].as_i64().unwrap();
    assert!(secret.starts_with("gantry_"));

    // Listing never shows the secret again.
    let list = browser
        .get(app.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret[7..]), "{list}");

    let client = reqwest::Client::new();
    let me: Value = client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["auth_method"], "api_token");
    assert_eq!(me["user"]["role"], "operator");
    // Token requests need no CSRF header: they carry no ambient credential.
    let response = client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .json(&json!({ "name": "second" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let list: Value = browser
        .get(app.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["tokens"][0]["last_used_at_ms"].is_i64(),
        "last use is recorded: {list}"
    );

    let response = browser
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let refused = client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let garbage = client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth("gantry_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
}

async fn admins_manage_users_and_every_change_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    let payload = "<img src=x onerror=alert(1)>";
    let response = admin
        .post(app.url("/api/v1/users"))
        .json(&json!({ "username": "carla", "display_name": payload, "password": "a long enough password", "role": "operator" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["user"]["id"].as_i64().unwrap();
    assert_eq!(
        created["user"]["display_name"], payload,
        "stored as typed; escaped when shown"
    );

    let duplicate = admin
        .post(app.url("/api/v1/users"))
        .json(&json!({ "username": "CARLA", "display_name": "x", "password": "a long enough password", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409, "usernames are unique regardless of case");

    let response = admin
        .patch(app.url(&format!("/api/v1/users/{id}")))
        .json(&json!({ "role": "engineer", "grants": [3, 7] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["user"]["role"], "engineer");
    assert_eq!(updated["user"]["grants"], json!([3, 7]));

    let audit: Value = admin
        .get(app.url("/api/v1/audit?action=user.update"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &audit["entries"][0];
    assert_eq!(entry["target_id"], id.to_string());
    assert_eq!(entry["diff"]["role"], json!({ "from": "operator", "to": "engineer" }));
    assert_eq!(entry["diff"]["grants"], json!({ "from": [], "to": [3, 7] }));
    assert!(entry["actor"].as_str().unwrap().starts_with("admin"));
    assert_eq!(entry["source"], "127.0.0.1");

    let created_entry: Value = admin
        .get(app.url("/api/v1/audit?action=user.create&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let diff = created_entry["entries"][0]["diff"].to_string();
    assert!(
        diff.contains("[REDACTED]") && !diff.contains("a long enough password"),
        "{diff}"
    );

    // The audit page renders the payload as text, never as markup.
    let html = admin
        .get(app.url("/admin/audit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(payload), "the payload reached the page unescaped");
}

async fn disabling_a_user_ends_their_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    let (dora, password) = app.create_user(Role::Operator).await;
    let dora_browser = app.browser();
    assert_eq!(app.login(&dora_browser, &dora, &password).await.status(), 200);
    let token = app.token_for(&dora).await;
    let id = app
        .accounts
        .list_users_from_cli()
        .await
        .unwrap()
        .iter()
        .find(|u| u.username == dora)
        .unwrap()
        .id;

    let response = admin
        .patch(app.url(&format!("/api/v1/users/{id}")))
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(me(&app, &dora_browser).await, 401, "the session outlived the account");
    let by_token = reqwest::Client::new()
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 401, "the token outlived the account");
    assert_eq!(app.login(&app.browser(), &dora, &password).await.status(), 401);
}

async fn bad_input_gets_a_json_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    let cases = [
        (admin.post(app.url("/api/v1/users")).header("content-type", "application/json").body("{not json"), 400),
        (admin.post(app.url("/api/v1/users")).json(&json!({ "username": "x" })), 400),
        (
            admin.post(app.url("/api/v1/users")).json(
                &json!({ "username": "bad name", "display_name": "x", "password": "a long enough password", "role": "viewer" }),
            ),
            400,
        ),
        (
            admin.post(app.url("/api/v1/users")).json(
                &json!({ "username": "short", "display_name": "x", "password": "short", "role": "viewer" }),
            ),
            400,
        ),
        (admin.get(app.url("/api/v1/users/not-a-number")), 400),
        (admin.get(app.url("/api/v1/users/999999")), 404),
        (admin.patch(app.url("/api/v1/users/1")).json(&json!({ "colour": "red" })), 400),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{status}: not JSON: {e}"));
        assert_eq!(status, expected, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

/// The HA form: two instances on one PostgreSQL database and one Redis; a session made on one works on the other,
/// and signing out on one ends it on both.
#[tokio::test]
async fn redis_sessions_are_shared_between_instances() {
    let redis = std::env::var("GANTRY_TEST_REDIS_URL")
        .expect("GANTRY_TEST_REDIS_URL is not set: run the tests with scripts/test, which starts Redis");
    let database = fresh_postgres_database().await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = server::config::Config::ephemeral(data_dir.path());
        config.database.url = Some(database.clone().into());
        config.sessions.redis_url = Some(redis.clone().into());
        instances.push(spawn_app_with(config, data_dir).await);
    }
    let (a, b) = (&instances[0], &instances[1]);
    let (user, password) = a.create_user(Role::Viewer).await;
    let response = a.login(&a.browser(), &user, &password).await;
    assert_eq!(response.status(), 200);
    let cookie = format!("{}={}", server::auth::COOKIE_NAME, session_cookie(&response).unwrap());

    let on_b = b
        .client
        .get(b.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200, "the session made on A is unknown to B");
    let body: Value = on_b.json().await.unwrap();
    assert_eq!(body["user"]["username"], user);

    let logout = b
        .client
        .post(b.url("/api/v1/auth/logout"))
        .header("cookie", &cookie)
        .header("origin", &b.address)
        .header(app::auth::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let on_a = a
        .client
        .get(a.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 401, "signing out on B left the session alive on A");
}

/// Behind https (`server.public_url`), the session cookie is `Secure` and only that origin may change state.
#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_the_origin_is_the_public_one() {
    let (mut config, data_dir) = crate::helpers::test_config(Backend::Sqlite).await;
    config.server.public_url = Some("https://gantry.example.com".into());
    let app = spawn_app_with(config, data_dir).await;
    let (user, password) = app.create_user(Role::Viewer).await;
    let body = json!({ "username": user, "password": password });
    let local = app
        .browser()
        .post(app.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 403, "the Host's origin is not the public one");
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("origin", "https://gantry.example.com")
        .header(app::auth::CSRF_HEADER, "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
}

async fn each_user_keeps_a_time_zone_of_the_tz_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _) = app.api_client(Role::Viewer, vec![]).await;
    let zone_of = |body: &Value| body["user"]["time_zone"].clone();
    let set = |zone: Value| {
        client
            .put(app.url("/api/v1/auth/time_zone"))
            .json(&json!({ "time_zone": zone }))
    };

    // Spelled as the database spells it, whatever the case typed.
    let (status, body) = send(set(json!("america/new_york"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(zone_of(&body), "America/New_York");
    let (_, me) = send(client.get(app.url("/api/v1/auth/me"))).await;
    assert_eq!(zone_of(&me), "America/New_York", "{me}");

    for wrong in ["Mars/Olympus_Mons", "Europe/Berlin; DROP TABLE users", &"A/".repeat(40)] {
        let (status, body) = send(set(json!(wrong))).await;
        assert_eq!(status, 400, "{wrong}: {body}");
        assert_eq!(body["error"]["details"]["field"], "time_zone", "{body}");
    }
    let (_, me) = send(client.get(app.url("/api/v1/auth/me"))).await;
    assert_eq!(zone_of(&me), "America/New_York", "a refused zone changes nothing");

    // Cleared: the browser's own zone again.
    let (status, body) = send(set(Value::Null)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(zone_of(&body), Value::Null);
}

/// A refused password change says which input is wrong (`details.field`), so the account page shows it there.
async fn refused_password_changes_name_the_field_at_fault(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, name) = app.api_client(Role::Viewer, vec![]).await;
    let password = format!("{name} has a long password");
    let change = |current: &str, new: &str| {
        client
            .put(app.url("/api/v1/auth/password"))
            .json(&json!({ "current_password": current, "new_password": new }))
    };
    let (status, body) = send(change("not my password at all", "a new long password")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["details"]["field"], "current_password", "{body}");
    let (status, body) = send(change(&password, "short")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "new_password", "{body}");
    let (status, body) = send(change(&password, "a new long password")).await;
    assert_eq!(status, 204, "{body}");
}

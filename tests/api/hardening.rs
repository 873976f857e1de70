//! Requests an attacker (or a careless link) sends to exhaust or confuse the server: each must get a quick, clear
//! 4xx, never a hang, a 500 or unbounded work. One test per finding of the hardening issue.

use std::time::Duration;

use app::auth::Role;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{send, spawn_app, spawn_app_with, test_config, Backend, TestApp};

backend_tests!(
    hostile_chart_ranges_answer_400_at_once,
    sign_in_validates_first_and_counts_parallel_guesses,
    the_throttle_keys_on_the_client_behind_a_trusted_gateway,
    ingest_work_per_request_is_bounded,
    templates_and_model_files_need_whole_plant_grants,
    the_setup_token_closes_once_any_account_exists,
    readiness_does_not_echo_backend_errors,
    live_feeds_end_when_the_caller_loses_access,
    concurrent_moves_never_make_a_cycle,
    slow_requests_are_cut_off_and_excess_ones_shed,
    readings_before_1970_are_refused_without_raw_retention,
    removing_the_last_grant_never_widens_access,
    restricted_users_see_no_names_outside_their_grants,
    ancestors_outside_a_grant_are_hidden_in_every_path,
);

/// A client that gives up after a few seconds: a hostile request must be answered, not computed for ever.
fn impatient(client: reqwest::ClientBuilder, token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    client
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `/Plant/Boiler` with a float `pressure` series, and a viewer's token.
async fn boiler(app: &TestApp) -> (i64, String) {
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let template = json!({ "name": "Boiler", "attributes": [{ "name": "pressure", "value_type": "float" }] });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Plant" })),
    )
    .await;
    let plant = body["asset"]["id"].as_i64().unwrap();
    let asset = json!({ "parent_id": plant, "name": "Boiler", "template": "Boiler" });
    let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
    assert_eq!(status, 201, "{body}");
    let (viewer, _) = app.create_user(Role::Viewer).await;
    (body["asset"]["id"].as_i64().unwrap(), app.token_for(&viewer).await)
}

async fn hostile_chart_ranges_answer_400_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (boiler, token) = boiler(&app).await;
    let viewer = impatient(reqwest::Client::builder(), &token);
    let series = "s=%2FPlant%2FBoiler%7Cpressure";
    let extremes = "from=-9223372036854775808&to=9223372036854775807";
    let data = format!("/api/v1/assets/{boiler}/attributes/pressure");
    let cases = [
        format!("/api/v1/charts/trend?{series}&{extremes}"),
        format!("/api/v1/charts/trend.svg?{series}&{extremes}"),
        format!("/api/v1/charts/trend.png?{series}&{extremes}"),
        format!("/api/v1/charts/live?{series}&{extremes}"),
        format!("/api/v1/charts/values?{series}&{extremes}"),
        format!("/api/v1/charts/trend.svg?{series}&from=0&to=9223372036854775807"),
        format!("/api/v1/charts/trend?{series}&from=-1&to=1000"),
        format!("/api/v1/charts/trend?{series}&from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z"),
        format!("{data}/data?{extremes}"),
        format!("{data}/data.csv?{extremes}"),
        format!("{data}/data?to=-9223372036854775808"),
        "/api/v1/alarms?from=-9223372036854775808".to_string(),
    ];
    for path in &cases {
        let response = viewer
            .get(app.url(path))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{path}: no answer ({err})"));
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("outside the instants Gantry keeps"),
            "{path}: {message}"
        );
    }
    // The widest range that is allowed still answers quickly, with a bounded number of buckets and ticks.
    let widest = format!("/api/v1/charts/trend.svg?{series}&from=0&to=7258118400000&width=4000");
    let response = viewer
        .get(app.url(&widest))
        .send()
        .await
        .expect("the widest range answers");
    assert_eq!(response.status(), 200);
    let svg = response.text().await.unwrap();
    assert!(
        svg.len() < 1_000_000,
        "the SVG of an empty 230-year range is {} bytes",
        svg.len()
    );
    let (status, body) = send(viewer.get(app.url(&format!("{data}/data?from=0&to=7258118400000&points=5000")))).await;
    assert_eq!(status, 200, "{body}");
}

async fn sign_in_validates_first_and_counts_parallel_guesses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (username, password) = app.create_user(Role::Viewer).await;
    // What cannot be a username is refused before the throttle, the database or a hash.
    let huge = "a".repeat(2 * 1024 * 1024 - 100);
    let (status, body) = send(
        app.browser()
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({ "username": huge, "password": "whatever password" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "username");

    // 40 wrong guesses at once: at most 10 are checked (401); the rest are throttled (429) or shed (503), each
    // with Retry-After.
    let guesses = (0..40).map(|i| {
        let (client, url, username) = (app.browser(), app.url("/api/v1/auth/login"), username.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({ "username": username, "password": format!("wrong guess {i}") }))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after)
        })
    });
    let answers: Vec<(u16, bool)> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    assert!(checked <= 10, "{checked} parallel guesses were checked: {answers:?}");
    for (status, retry_after) in &answers {
        assert!([401, 429, 503].contains(status), "{answers:?}");
        assert!(*status == 401 || *retry_after, "{status} without Retry-After");
    }
    // The right password is throttled too until the minute is over: the throttle counts attempts, not users.
    let response = app.login(&app.browser(), &username, &password).await;
    assert_eq!(response.status(), 429);
}

async fn the_throttle_keys_on_the_client_behind_a_trusted_gateway(backend: Backend) {
    let (mut config, data_dir) = test_config(backend).await;
    config.server.trusted_proxies = vec!["127.0.0.1".into()];
    let app = spawn_app_with(config, data_dir).await;
    let (username, password) = app.create_user(Role::Viewer).await;
    let attempt = |client_ip: &'static str, password: String| {
        let (client, url, username) = (app.browser(), app.url("/api/v1/auth/login"), username.clone());
        async move {
            client
                .post(url)
                .header("x-forwarded-for", format!("198.51.100.1, {client_ip}"))
                .json(&json!({ "username": username, "password": password }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for i in 0..10 {
        assert_eq!(attempt("203.0.113.66", format!("wrong guess {i}")).await, 401);
    }
    assert_eq!(
        attempt("203.0.113.66", password.clone()).await,
        429,
        "the attacker is throttled"
    );
    // Another client behind the same gateway signs in: one attacker does not lock every user out.
    assert_eq!(attempt("203.0.113.7", password.clone()).await, 200);

    // Without a trusted gateway the header counts for nothing: an attacker cannot dodge the throttle with it.
    let app = spawn_app(backend).await;
    let (username, _) = app.create_user(Role::Viewer).await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let response = app
            .browser()
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({ "username": username, "password": "a wrong password" }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

async fn ingest_work_per_request_is_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (boiler, _) = boiler(&app).await;
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let token = app.device_token(&engineer, "boiler", boiler).await;
    let post = |body: String, path: &'static str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    // More readings than one request may hold: 413 before any is mapped or stored.
    let reading = r#"{"field":"pressure","value":1}"#;
    let over = format!(r#"{{"readings":[{}]}}"#, vec![reading; 100_001].join(","));
    let (status, body) = send(post(over, "/api/v1/ingest")).await;
    assert_eq!(status, 413, "{body}");
    let lines = "boiler a=1,b=2\n".repeat(50_001);
    let (status, body) = send(post(lines, "/api/v2/write")).await;
    assert_eq!(status, 413, "{body}");

    // Thousands of distinct unknown fields: refused item by item, but the answer lists a hundred and counts the
    // rest; the good reading among them is stored.
    let mut readings: Vec<serde_json::Value> = (0..5_000)
        .map(|i| json!({ "field": format!("unknown field {i}"), "value": 1.0 }))
        .collect();
    readings.push(json!({ "field": "pressure", "value": 2.5 }));
    readings.push(json!({ "field": "x".repeat(10_000), "value": 1.0 }));
    let (status, body) = send(post(json!({ "readings": readings }).to_string(), "/api/v1/ingest")).await;
    assert_eq!(status, 422, "{body}");
    let details = &body["error"]["details"];
    assert_eq!(details["accepted"], 1);
    assert_eq!(details["refused_count"], 5_001);
    let listed = details["refused"].as_array().unwrap();
    assert_eq!(listed.len(), 100);
    assert!(
        body.to_string().len() < 64 * 1024,
        "the answer is {} bytes",
        body.to_string().len()
    );
    // A name longer than Gantry keeps is refused as bad input, and not echoed whole.
    let long = json!({ "readings": [{ "field": "y".repeat(10_000), "value": 1.0 }] });
    let (status, body) = send(post(long.to_string(), "/api/v1/ingest")).await;
    assert_eq!(status, 400, "{body}");
    let field = body["error"]["details"]["refused"][0]["field"].as_str().unwrap();
    assert!(field.chars().count() <= 65, "{field}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("longer than 256 bytes"));
}

async fn templates_and_model_files_need_whole_plant_grants(backend: Backend) {
    let app = spawn_app(backend).await;
    let (boiler, _) = boiler(&app).await;
    let (_, body) = send(
        app.api_client(Role::Engineer, vec![])
            .await
            .0
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Elsewhere" })),
    )
    .await;
    let elsewhere = body["asset"]["id"].as_i64().unwrap();
    // An engineer granted only /Elsewhere may not change the Boiler template that /Plant/Boiler uses.
    let (narrow, _) = app.api_client(Role::Engineer, vec![elsewhere]).await;
    let (status, body) = send(narrow.get(app.url("/api/v1/templates"))).await;
    assert_eq!(status, 200, "{body}");
    let template = body["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Boiler")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let changed = json!({ "name": "Boiler", "attributes": [{ "name": "pressure", "value_type": "integer" }] });
    let attempts = [
        narrow
            .put(app.url(&format!("/api/v1/templates/{template}")))
            .json(&changed),
        narrow.delete(app.url(&format!("/api/v1/templates/{template}"))),
        narrow
            .post(app.url("/api/v1/templates"))
            .json(&json!({ "name": "Mine", "attributes": [] })),
        narrow
            .post(app.url("/api/v1/model/import"))
            .header("content-type", "application/yaml")
            .body("schema_version: 1\ntemplates: []\nassets: []\n"),
    ];
    for attempt in attempts {
        let (status, body) = send(attempt).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anywhere in the plant"));
    }
    let (_, body) = send(narrow.get(app.url(&format!("/api/v1/assets/{boiler}")))).await;
    assert_eq!(
        body["error"]["code"], "not_found",
        "the grant does not reach the boiler"
    );
    let (status, body) = send(
        app.api_client(Role::Engineer, vec![])
            .await
            .0
            .get(app.url(&format!("/api/v1/templates/{template}"))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["template"]["attributes"][0]["value_type"], "float", "{body}");
}

async fn the_setup_token_closes_once_any_account_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app
        .accounts
        .open_setup_if_empty()
        .await
        .unwrap()
        .expect("no account yet");
    let (status, body) = send(app.client.get(app.url("/api/v1/auth/setup"))).await;
    assert_eq!((status, body["setup_required"].as_bool()), (200, Some(true)));
    // A wrong token is refused and named, so the set-up page shows the reason beside it.
    let (status, body) = send(app.browser().post(app.url("/api/v1/auth/setup")).json(&json!({
        "setup_token": format!("{token}x"), "username": "first", "display_name": "First",
        "password": "a long enough password"
    })))
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["details"]["field"], "setup_token", "{body}");
    // An administrator is made on the command line; the token printed at start-up must not make another.
    app.create_user(Role::Admin).await;
    let (status, body) = send(app.client.get(app.url("/api/v1/auth/setup"))).await;
    assert_eq!((status, body["setup_required"].as_bool()), (200, Some(false)));
    let (status, body) = send(app.browser().post(app.url("/api/v1/auth/setup")).json(&json!({
        "setup_token": token, "username": "intruder", "display_name": "Intruder",
        "password": "a long enough password"
    })))
    .await;
    assert_eq!(status, 404, "{body}");
}

async fn readiness_does_not_echo_backend_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["background_tasks"], "ok", "{body}");
    // The metadata database goes away: readiness says which part is not ready, never why (that is in the log).
    app.metadata.close().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(!body.to_string().contains("closed"), "{body}");
    assert_eq!(body["checks"]["metadata"], "unavailable", "{body}");
    assert_eq!(body["checks"]["timeseries"], "ok", "{body}");
}

/// Reads an event stream until it ends; false if it is still open after `within`.
async fn ends_within(mut feed: reqwest::Response, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), feed.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => return true,
            Ok(Ok(Some(_))) | Err(_) => {}
        }
    }
    false
}

async fn live_feeds_end_when_the_caller_loses_access(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin, _) = app.api_client(Role::Admin, vec![]).await;
    let user_id = |name: String| {
        let (admin, url) = (admin.clone(), app.url("/api/v1/users"));
        async move {
            let (_, body) = send(admin.get(url)).await;
            body["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == name)
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        }
    };
    let events = "/api/v1/alarms/events";
    let open_as = |client: reqwest::Client| {
        let url = app.url(events);
        async move {
            let feed = client.get(url).send().await.unwrap();
            assert_eq!(feed.status(), 200);
            feed
        }
    };
    let app = &app;
    let session = |role: Role| async move {
        let (name, password) = app.create_user(role).await;
        let browser = app.browser();
        assert_eq!(app.login(&browser, &name, &password).await.status(), 200);
        (browser, name)
    };

    // A disabled user's feed ends; so does a signed-out session's, and one whose grants narrowed.
    let (disabled, name) = session(Role::Operator).await;
    let feed = open_as(disabled).await;
    let id = user_id(name).await;
    let (status, body) = send(
        admin
            .patch(app.url(&format!("/api/v1/users/{id}")))
            .json(&json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        ends_within(feed, Duration::from_secs(6)).await,
        "a disabled user's feed stayed open"
    );

    let (signed_out, _) = session(Role::Operator).await;
    let feed = open_as(signed_out.clone()).await;
    let (status, _) = send(signed_out.post(app.url("/api/v1/auth/logout"))).await;
    assert!(status < 300, "sign-out answered {status}");
    assert!(
        ends_within(feed, Duration::from_secs(6)).await,
        "a signed-out session's feed stayed open"
    );

    let (narrowed, name) = session(Role::Viewer).await;
    let feed = open_as(narrowed).await;
    let (_, body) = send(
        admin
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Somewhere" })),
    )
    .await;
    let somewhere = body["asset"]["id"].as_i64().unwrap();
    let id = user_id(name).await;
    let patch = json!({ "grants": [somewhere] });
    let (status, body) = send(admin.patch(app.url(&format!("/api/v1/users/{id}"))).json(&patch)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        ends_within(feed, Duration::from_secs(6)).await,
        "a narrowed user's feed stayed open"
    );

    // A revoked token's feed ends; an unchanged caller's stays open.
    let (token_user, _) = app.api_client(Role::Viewer, vec![]).await;
    let feed = open_as(token_user.clone()).await;
    let steady = open_as(admin.clone()).await;
    let (_, body) = send(token_user.get(app.url("/api/v1/tokens"))).await;
    let token = body["tokens"][0]["id"].as_i64().unwrap();
    let (status, body) = send(token_user.delete(app.url(&format!("/api/v1/tokens/{token}")))).await;
    assert!(status < 300, "{status} {body}");
    assert!(
        ends_within(feed, Duration::from_secs(6)).await,
        "a revoked token's feed stayed open"
    );
    assert!(
        !ends_within(steady, Duration::from_secs(3)).await,
        "an unchanged caller's feed ended"
    );

    // Streams per user are capped.
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(open_as(admin.clone()).await);
    }
    let refused = admin.get(app.url(events)).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    drop(open);
}

async fn concurrent_moves_never_make_a_cycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let create = |name: &'static str| {
        let (engineer, url) = (engineer.clone(), app.url("/api/v1/assets"));
        async move {
            let (status, body) = send(engineer.post(url).json(&json!({ "name": name }))).await;
            assert_eq!(status, 201, "{body}");
            body["asset"]["id"].as_i64().unwrap()
        }
    };
    let (a, b) = (create("A").await, create("B").await);
    let move_under = |id: i64, parent: Option<i64>| {
        let (engineer, url) = (engineer.clone(), app.url(&format!("/api/v1/assets/{id}")));
        async move { send(engineer.patch(url).json(&json!({ "parent_id": parent }))).await.0 }
    };
    for round in 0..20 {
        // A under B and B under A at once: at most one may win.
        let (first, second) = tokio::join!(move_under(a, Some(b)), move_under(b, Some(a)));
        assert!(
            [first, second].iter().filter(|s| **s == 200).count() <= 1,
            "round {round}: both moves succeeded ({first}, {second})"
        );
        for id in [a, b] {
            let (status, body) = send(engineer.get(app.url(&format!("/api/v1/assets/{id}")))).await;
            assert_eq!(status, 200, "round {round}: {body}");
        }
        // Both back at the top for the next round.
        move_under(a, None).await;
        move_under(b, None).await;
    }
    // Moving under itself or a descendant is refused with 409.
    assert_eq!(move_under(b, Some(a)).await, 200);
    assert_eq!(move_under(a, Some(b)).await, 409);
    assert_eq!(move_under(a, Some(a)).await, 409);
}

async fn slow_requests_are_cut_off_and_excess_ones_shed(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut config, data_dir) = test_config(backend).await;
    config.server.max_concurrent_requests = 1;
    config.server.request_timeout_secs = 2;
    let app = spawn_app_with(config, data_dir).await;
    // A client that sends its headers and then nothing of the body it announced holds the only slot.
    let address = app.address.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {address}\r\nOrigin: {}\r\nX-Gantry-CSRF: 1\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        app.address
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app.get("/api/v1/auth/setup").await;
    assert_eq!(response.status(), 503, "a second request was not shed");
    assert!(response.headers().contains_key("retry-after"));
    // Health answers under any load.
    assert_eq!(app.get("/healthz").await.status(), 200);
    // The slow request is answered at its deadline, and the slot is free again.
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer))
        .await
        .expect("the slow request was never cut off")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("longer than 2 s"), "{answer}");
    assert_eq!(app.get("/api/v1/auth/setup").await.status(), 200);
}

async fn readings_before_1970_are_refused_without_raw_retention(backend: Backend) {
    let (mut config, data_dir) = test_config(backend).await;
    config.timeseries.retention.raw_days = 0;
    let app = spawn_app_with(config, data_dir).await;
    let (boiler, _) = boiler(&app).await;
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let token = app.device_token(&engineer, "boiler", boiler).await;
    for ts in [i64::MIN, -1] {
        let readings = json!({ "readings": [{ "field": "pressure", "value": 1.0, "ts": ts }] });
        let (status, body) = send(
            app.client
                .post(app.url("/api/v1/ingest"))
                .bearer_auth(&token)
                .json(&readings),
        )
        .await;
        assert_eq!(status, 422, "{ts}: {body}");
    }
    let lines = "boiler pressure=1 -9223372036854775806";
    let (status, body) = send(
        app.client
            .post(app.url("/api/v2/write?precision=ms"))
            .bearer_auth(&token)
            .body(lines),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // History since 1970 is kept.
    let readings = json!({ "readings": [{ "field": "pressure", "value": 1.0, "ts": 0 }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&token)
            .json(&readings),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn removing_the_last_grant_never_widens_access(backend: Backend) {
    let app = spawn_app(backend).await;
    let (boiler, _) = boiler(&app).await;
    let (admin, _) = app.api_client(Role::Admin, vec![]).await;
    let (_, body) = send(
        admin
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Elsewhere" })),
    )
    .await;
    let elsewhere = body["asset"]["id"].as_i64().unwrap();
    let (viewer, name) = app.api_client(Role::Viewer, vec![elsewhere]).await;
    let (_, body) = send(admin.get(app.url("/api/v1/users"))).await;
    let user = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .unwrap()
        .clone();
    assert_eq!(
        (user["whole_plant"].as_bool(), user["grants"].clone()),
        (Some(false), json!([elsewhere]))
    );
    let id = user["id"].as_i64().unwrap();
    let patch = |body: serde_json::Value| admin.patch(app.url(&format!("/api/v1/users/{id}"))).json(&body);

    // The last grant removed: the viewer sees nothing, not the whole plant.
    let (status, body) = send(patch(json!({ "grants": [] }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["whole_plant"], false, "{body}");
    let (status, _) = send(viewer.get(app.url(&format!("/api/v1/assets/{boiler}")))).await;
    assert_eq!(status, 404, "a user without grants saw an asset");
    let (_, body) = send(viewer.get(app.url("/api/v1/assets"))).await;
    assert_eq!(body["assets"], json!([]), "{body}");

    // The whole plant is given explicitly, and grants with it are refused as ambiguous.
    let (status, _) = send(patch(json!({ "whole_plant": true, "grants": [elsewhere] }))).await;
    assert_eq!(status, 422);
    let (status, body) = send(patch(json!({ "whole_plant": true }))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(viewer.get(app.url(&format!("/api/v1/assets/{boiler}")))).await;
    assert_eq!(status, 200);
    // Grants again take the whole plant away.
    let (_, body) = send(patch(json!({ "grants": [elsewhere] }))).await;
    assert_eq!(
        (body["user"]["whole_plant"].as_bool(), body["user"]["grants"].clone()),
        (Some(false), json!([elsewhere]))
    );
}

async fn restricted_users_see_no_names_outside_their_grants(backend: Backend) {
    let app = spawn_app(backend).await;
    let (boiler, _) = boiler(&app).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Secret Site" })),
    )
    .await;
    let secret_site = body["asset"]["id"].as_i64().unwrap();
    let (_, body) = send(engineer.get(app.url("/api/v1/assets?path=%2FPlant"))).await;
    let plant = body["asset"]["id"].as_i64().unwrap_or_else(|| panic!("{body}"));
    // A gateway token writing for a device at the plant and one at the secret site.
    for (name, asset) in [("plant-device", boiler), ("secret-device", secret_site)] {
        let (status, body) = send(
            engineer
                .post(app.url("/api/v1/devices"))
                .json(&json!({ "name": name, "asset_id": asset })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let gateway = json!({ "name": "gw", "devices": ["plant-device", "secret-device"] });
    let (status, body) = send(engineer.post(app.url("/api/v1/gateway-tokens")).json(&gateway)).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = send(engineer.get(app.url("/api/v1/devices"))).await;
    let plant_device = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "plant-device")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // A shared dashboard with a panel on the plant and one on the secret site.
    let dashboard = json!({ "name": "Overview", "shared": true, "panels": [
        { "title": "Now", "x": 0, "y": 0, "w": 3, "h": 1,
          "content": { "kind": "value", "series": { "asset": "/Plant/Boiler", "attribute": "pressure" } } },
        { "title": "Secret", "x": 3, "y": 0, "w": 9, "h": 2, "content": { "kind": "alarms", "subtree": "/Secret Site" } }
    ]});
    let (status, body) = send(engineer.post(app.url("/api/v1/dashboards")).json(&dashboard)).await;
    assert_eq!(status, 201, "{body}");
    let dashboard_id = body["id"].as_i64().unwrap();

    let (narrow, _) = app.api_client(Role::Engineer, vec![plant]).await;
    let (status, body) = send(narrow.get(app.url(&format!("/api/v1/devices/{plant_device}/tokens")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokens"][0]["devices"], json!(["plant-device"]), "{body}");
    assert_eq!(body["tokens"][0]["other_devices"], 1, "{body}");
    for path in [
        "/api/v1/dashboards".to_string(),
        format!("/api/v1/dashboards/{dashboard_id}"),
    ] {
        let (status, body) = send(narrow.get(app.url(&path))).await;
        assert_eq!(status, 200, "{body}");
        let text = body.to_string();
        assert!(!text.contains("Secret Site"), "{path}: {text}");
        assert!(text.contains(app::charts::HIDDEN_PATH), "{path}: {text}");
        assert!(text.contains("/Plant/Boiler"), "{path}: {text}");
    }
    let (_, body) = send(narrow.get(app.url(&format!("/api/v1/dashboards/{dashboard_id}")))).await;
    assert_eq!(body["can_edit"], false);
    let (status, _) = send(
        narrow
            .put(app.url(&format!("/api/v1/dashboards/{dashboard_id}")))
            .json(&dashboard),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(narrow.delete(app.url(&format!("/api/v1/dashboards/{dashboard_id}")))).await;
    assert_eq!(status, 403);
    // The whole-plant engineer still sees and edits everything.
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/dashboards/{dashboard_id}")))).await;
    assert!(body.to_string().contains("Secret Site"));
    assert_eq!(body["can_edit"], true);
}

/// A user granted `/Hidden Works/Line 2` sees `/…/Line 2/…` wherever a path is shown (assets, the tree, alarms and
/// their messages, trends, devices, dashboards, the model file), uses those paths to name assets, and cannot
/// confirm the hidden name by guessing it.
async fn ancestors_outside_a_grant_are_hidden_in_every_path(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let template = json!({ "name": "Pump", "attributes": [
        { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 100.0 },
          "alarms": [{ "name": "Fast", "condition": { "type": "limit", "level": "hi" }, "severity": "high",
                       "message": "{asset} runs at {value} {unit}" }] }
    ]});
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let mut parent = None;
    let mut ids = Vec::new();
    for (name, template) in [("Hidden Works", None), ("Line 2", None), ("Pump 7", Some("Pump"))] {
        let asset = json!({ "parent_id": parent, "name": name, "template": template });
        let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
        assert_eq!(status, 201, "{body}");
        parent = body["asset"]["id"].as_i64();
        ids.push(parent.unwrap());
    }
    let (line, pump) = (ids[1], ids[2]);
    let device = app.device_token(&engineer, "pump-7", pump).await;
    let reading = json!({ "readings": [{ "field": "speed", "value": 150.0 }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&device)
            .json(&reading),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (narrow, _) = app.api_client(Role::Engineer, vec![line]).await;
    let shown = "/\u{2026}/Line 2/Pump 7";
    let encoded = "%2F%E2%80%A6%2FLine%202%2FPump%207";
    // The alarm is evaluated as the reading arrives; wait for it to be listed.
    let mut alarms = json!([]);
    for _ in 0..50 {
        let (status, body) = send(narrow.get(app.url("/api/v1/alarms"))).await;
        assert_eq!(status, 200, "{body}");
        alarms = body["alarms"].clone();
        if alarms.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alarms[0]["asset_path"], shown, "{alarms}");
    assert!(alarms[0]["message"].as_str().unwrap().starts_with(shown), "{alarms}");
    let alarm = alarms[0]["id"].as_i64().unwrap();

    let dashboard = json!({ "name": "Mine", "shared": true, "panels": [
        { "title": "Speed", "x": 0, "y": 0, "w": 3, "h": 1,
          "content": { "kind": "value", "series": { "asset": shown, "attribute": "speed" } } }
    ]});
    let (status, body) = send(narrow.post(app.url("/api/v1/dashboards")).json(&dashboard)).await;
    assert_eq!(status, 201, "{body}");
    let dashboard = body["id"].as_i64().unwrap();
    assert_eq!(body["can_edit"], true, "{body}");

    let reads = [
        format!("/api/v1/assets/{pump}"),
        format!("/api/v1/assets?path={encoded}"),
        "/api/v1/assets".to_string(),
        format!("/api/v1/assets?parent={line}"),
        format!("/api/v1/assets/{line}/subtree"),
        "/api/v1/alarms".to_string(),
        format!("/api/v1/alarms/{alarm}"),
        format!("/api/v1/charts/trend?s={encoded}%7Cspeed&range=1h"),
        format!("/api/v1/charts/values?s={encoded}%7Cspeed"),
        "/api/v1/devices".to_string(),
        format!("/api/v1/dashboards/{dashboard}"),
        "/api/v1/dashboards".to_string(),
        "/api/v1/model/export".to_string(),
    ];
    for path in &reads {
        let response = narrow.get(app.url(path)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        assert!(
            !text.contains("Hidden Works"),
            "{path} names the hidden ancestor: {text}"
        );
        assert!(text.contains("Line 2"), "{path}: {text}");
    }
    // The asset view itself says where it is as the caller sees it.
    let (_, body) = send(narrow.get(app.url(&format!("/api/v1/assets/{pump}")))).await;
    assert_eq!(body["asset"]["path"], shown, "{body}");
    // The full path, or a wrong guess at the hidden name, leads nowhere: no name can be confirmed.
    for guess in [
        "/Hidden Works/Line 2/Pump 7",
        "/Elsewhere/Line 2/Pump 7",
        "/Line 2/Pump 7",
    ] {
        let url = app.url("/api/v1/assets");
        let (status, body) = send(narrow.get(url).query(&[("path", guess)])).await;
        assert_eq!(status, 404, "{guess}: {body}");
    }
    // What the restricted user saved reads the same for everyone: the panel stores the full path.
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/dashboards/{dashboard}")))).await;
    assert_eq!(
        body["panels"][0]["content"]["series"]["asset"], "/Hidden Works/Line 2/Pump 7",
        "{body}"
    );
    // `…` alone cannot be an asset's name.
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "\u{2026}" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

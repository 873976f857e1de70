//! Alarms end to end: rules on templates and assets, evaluated as readings arrive through the real ingest
//! endpoint; the ISA-18.2 lifecycle through REST; roll-up counts; grants; a restart in the middle of an on-delay;
//! webhooks that fail before they succeed; the live feed of server-sent events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{send, spawn_app, spawn_app_with, test_config, Backend, TestApp};
use crate::{backend_tests, tdengine_tests};

backend_tests!(
    limit_alarms_follow_the_isa_lifecycle,
    shelving_service_comments_and_grants,
    asset_rules_add_to_the_template_and_are_checked,
    no_data_rules_raise_after_the_silence,
    webhooks_are_signed_retried_and_delivered_once,
    the_live_feed_streams_alarms_the_caller_may_see,
    pages_show_alarms_rollups_and_current_values,
);
// The same against TDengine, the store of the HA form.
tdengine_tests!(
    limit_alarms_follow_the_isa_lifecycle,
    shelving_service_comments_and_grants,
    asset_rules_add_to_the_template_and_are_checked,
    no_data_rules_raise_after_the_silence,
    webhooks_are_signed_retried_and_delivered_once,
    the_live_feed_streams_alarms_the_caller_may_see,
    pages_show_alarms_rollups_and_current_values,
);

/// A boiler with pressure limits and alarm rules on them, under `/Plant/Boiler 1`, and a device token for it.
struct Plant {
    app: TestApp,
    engineer: reqwest::Client,
    plant: i64,
    boiler: i64,
    token: String,
}

fn boiler_template(on_delay: u32, extra_rules: Value) -> Value {
    let mut rules = json!([
        { "name": "High", "condition": { "type": "limit", "level": "hi", "deadband": 0.5 },
          "severity": "high", "on_delay_seconds": on_delay },
        { "name": "Very high", "condition": { "type": "limit", "level": "hihi" }, "severity": "critical",
          "message": "{asset}: pressure {value} {unit} over {limit}!" }
    ]);
    rules
        .as_array_mut()
        .unwrap()
        .extend(extra_rules.as_array().cloned().unwrap_or_default());
    json!({ "name": "Boiler", "attributes": [
        { "name": "pressure", "value_type": "float", "unit": "bar",
          "limits": { "lo": 1.0, "hi": 8.0, "hihi": 10.0 }, "alarms": rules },
        { "name": "flow", "value_type": "float", "unit": "m³/h", "limits": { "hi": 50.0 } },
        { "name": "tripped", "value_type": "boolean" }
    ]})
}

async fn plant_on(app: TestApp, template: Value) -> Plant {
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Plant" })),
    )
    .await;
    let plant = body["asset"]["id"].as_i64().unwrap();
    let asset = json!({ "parent_id": plant, "name": "Boiler 1", "template": "Boiler" });
    let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
    assert_eq!(status, 201, "{body}");
    let boiler = body["asset"]["id"].as_i64().unwrap();
    let device = json!({ "name": "boiler-1", "asset_id": boiler });
    let (status, body) = send(engineer.post(app.url("/api/v1/devices")).json(&device)).await;
    assert_eq!(status, 201, "{body}");
    let device = body["device"]["id"].as_i64().unwrap();
    let (_, body) = send(
        engineer
            .post(app.url(&format!("/api/v1/devices/{device}/tokens")))
            .json(&json!({ "name": "t" })),
    )
    .await;
    let token = body["secret"].as_str().unwrap().to_string();
    Plant {
        app,
        engineer,
        plant,
        boiler,
        token,
    }
}

fn now_ms() -> i64 {
    server::metadata::now_ms()
}

/// Posts one reading and checks it was acknowledged.
async fn post(plant: &Plant, field: &str, value: Value, ts: i64) {
    let body = json!({ "readings": [{ "field": field, "value": value, "ts": ts }] });
    let (status, answer) = send(
        plant
            .app
            .client
            .post(plant.app.url("/api/v1/ingest"))
            .bearer_auth(&plant.token)
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

async fn alarms(plant: &Plant, client: &reqwest::Client, query: &str) -> Vec<Value> {
    let (status, body) = send(client.get(plant.app.url(&format!("/api/v1/alarms{query}")))).await;
    assert_eq!(status, 200, "{body}");
    body["alarms"].as_array().unwrap().clone()
}

async fn counts(plant: &Plant, asset: i64) -> Value {
    let url = plant.app.url(&format!("/api/v1/assets/{asset}/alarm-counts"));
    let (status, body) = send(plant.engineer.get(url)).await;
    assert_eq!(status, 200, "{body}");
    body["counts"].clone()
}

/// Polls until `check` holds or 10 s pass.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn limit_alarms_follow_the_isa_lifecycle(backend: Backend) {
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, json!([]))).await;
    let operator = plant.app.api_client(Role::Operator, vec![]).await.0;
    let viewer = plant.app.api_client(Role::Viewer, vec![]).await.0;
    let t = now_ms() - 60_000;
    post(&plant, "pressure", json!(5.0), t).await;
    assert!(alarms(&plant, &operator, "").await.is_empty());

    // Over Hi: raised before the reading is acknowledged, so it is listed at once.
    post(&plant, "pressure", json!(9.0), t + 1000).await;
    let listed = alarms(&plant, &operator, "").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let alarm = &listed[0];
    assert_eq!(alarm["state"], "unacknowledged_active");
    assert_eq!(alarm["severity"], "high");
    assert_eq!(alarm["rule"], "High");
    assert_eq!(alarm["asset_path"], "/Plant/Boiler 1");
    assert_eq!(alarm["started_at"], t + 1000);
    assert_eq!(alarm["start_value"], 9.0);
    assert_eq!(
        alarm["message"],
        "/Plant/Boiler 1 pressure is 9 bar, above High limit 8"
    );
    let first = alarm["id"].as_i64().unwrap();
    let rolled_up = counts(&plant, plant.plant).await;
    assert_eq!(
        rolled_up,
        json!({ "critical": 0, "high": 1, "medium": 0, "low": 0, "unacknowledged": 1 })
    );

    // Over HiHi too: a second, critical alarm with the rule's own message.
    post(&plant, "pressure", json!(10.5), t + 2000).await;
    let listed = alarms(&plant, &operator, "?severity=critical").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["message"], "/Plant/Boiler 1: pressure 10.5 bar over 10!");
    assert_eq!(counts(&plant, plant.boiler).await["critical"], 1);

    // 7.8 is inside Hi's deadband (8 - 0.5): still active; HiHi returns. 7 returns Hi.
    post(&plant, "pressure", json!(7.8), t + 3000).await;
    let high = alarms(&plant, &operator, "?severity=high").await;
    assert_eq!(high[0]["state"], "unacknowledged_active");
    post(&plant, "pressure", json!(7.0), t + 4000).await;
    let (_, detail) = send(operator.get(plant.app.url(&format!("/api/v1/alarms/{first}")))).await;
    assert_eq!(detail["alarm"]["state"], "unacknowledged_returned", "{detail}");
    assert_eq!(detail["alarm"]["ended_at"], t + 4000);
    assert_eq!(detail["alarm"]["end_value"], 7.0);
    assert_eq!(
        counts(&plant, plant.plant).await["high"],
        0,
        "returned alarms are not active"
    );
    assert_eq!(counts(&plant, plant.plant).await["unacknowledged"], 2);

    // Viewers may not acknowledge; operators may, with a comment; acknowledging twice changes nothing.
    let ack = |client: &reqwest::Client, id: i64, body: Value| {
        client
            .post(plant.app.url(&format!("/api/v1/alarms/{id}/ack")))
            .json(&body)
    };
    let (status, _) = send(ack(&viewer, first, json!({}))).await;
    assert_eq!(status, 403);
    let (status, body) = send(ack(&operator, first, json!({ "comment": "valve checked" }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alarm"]["state"], "normal");
    let acknowledged_at = body["alarm"]["acknowledged_at"].clone();
    let (_, body) = send(ack(&operator, first, json!({}))).await;
    assert_eq!(body["alarm"]["acknowledged_at"], acknowledged_at);
    // Ended occurrences leave the open list but stay in the history.
    let open: Vec<i64> = alarms(&plant, &operator, "")
        .await
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert!(!open.contains(&first));
    let history = alarms(&plant, &operator, "?state=all").await;
    let old = history.iter().find(|a| a["id"] == first).unwrap();
    assert!(
        old["acknowledged_by"].as_str().unwrap().starts_with("operator"),
        "{old}"
    );
    let (_, detail) = send(operator.get(plant.app.url(&format!("/api/v1/alarms/{first}")))).await;
    assert_eq!(detail["comments"][0]["text"], "valve checked");

    // Re-triggering opens a new occurrence; acknowledging it while active keeps it active.
    post(&plant, "pressure", json!(9.5), t + 5000).await;
    let high = alarms(&plant, &operator, "?state=active&severity=high").await;
    assert_eq!(high.len(), 1);
    let second = high[0]["id"].as_i64().unwrap();
    assert_ne!(second, first);
    let (_, body) = send(ack(&operator, second, json!(null))).await;
    assert_eq!(body["alarm"]["state"], "acknowledged_active", "{body}");
    // Several at once, through the bulk endpoint.
    let critical = alarms(&plant, &operator, "?severity=critical&state=all").await;
    let ids: Vec<i64> = critical.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    let (status, body) = send(
        operator
            .post(plant.app.url("/api/v1/alarms/ack"))
            .json(&json!({ "ids": ids })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&plant, plant.plant).await["unacknowledged"], 0);
    // Old readings arriving late do not replay history.
    post(&plant, "pressure", json!(2.0), t + 500).await;
    assert_eq!(alarms(&plant, &operator, "?state=active").await.len(), 1);

    // Bad queries are 400s with a JSON body.
    let (status, body) = send(operator.get(plant.app.url("/api/v1/alarms?state=bogus"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("bogus"));
    let (status, _) = send(operator.get(plant.app.url("/api/v1/alarms?severity=urgent"))).await;
    assert_eq!(status, 400);
    let (status, _) = send(operator.get(plant.app.url("/api/v1/alarms/999999"))).await;
    assert_eq!(status, 404);
}

async fn shelving_service_comments_and_grants(backend: Backend) {
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, json!([]))).await;
    let app = &plant.app;
    let operator = app.api_client(Role::Operator, vec![]).await.0;
    post(&plant, "pressure", json!(9.0), now_ms()).await;
    let id = alarms(&plant, &operator, "").await[0]["id"].as_i64().unwrap();

    // A refused request changes nothing: the reason is checked before the point is shelved.
    let (status, body) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/shelve")))
            .json(&json!({ "minutes": 30, "reason": "x".repeat(2_001) })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        alarms(&plant, &operator, "?state=shelved").await.is_empty(),
        "a refused shelve shelved"
    );
    let (status, body) = send(
        plant
            .engineer
            .post(app.url(&format!("/api/v1/alarms/{id}/service")))
            .json(&json!({ "in_service": false, "reason": "y".repeat(2_001) })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(alarms(&plant, &operator, "").await[0]["out_of_service"], false);

    let (status, body) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/shelve")))
            .json(&json!({ "minutes": 30, "reason": "sensor being replaced" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let until = body["alarm"]["shelved_until"].as_i64().unwrap();
    assert!((until - now_ms() - 30 * 60_000).abs() < 10_000);
    assert_eq!(alarms(&plant, &operator, "?state=shelved").await.len(), 1);
    let (status, _) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/shelve")))
            .json(&json!({ "minutes": 100000 })),
    )
    .await;
    assert_eq!(status, 400, "shelving is limited");
    let (_, body) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/shelve")))
            .json(&json!({ "minutes": 0 })),
    )
    .await;
    assert_eq!(body["alarm"]["shelved_until"], Value::Null);

    // Out of service is for engineers.
    let service = |client: &reqwest::Client, in_service: bool| {
        client
            .post(app.url(&format!("/api/v1/alarms/{id}/service")))
            .json(&json!({ "in_service": in_service }))
    };
    let (status, _) = send(service(&operator, false)).await;
    assert_eq!(status, 403);
    let (status, body) = send(service(&plant.engineer, false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alarm"]["out_of_service"], true);
    let (_, body) = send(service(&plant.engineer, true)).await;
    assert_eq!(body["alarm"]["out_of_service"], false);

    let (status, body) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/comments")))
            .json(&json!({ "text": "<script>alert(1)</script> called the vendor" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{id}/comments")))
            .json(&json!({ "text": "  " })),
    )
    .await;
    assert_eq!(status, 400);
    let (_, detail) = send(operator.get(app.url(&format!("/api/v1/alarms/{id}")))).await;
    let texts: Vec<&str> = detail["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![
            "Shelved for 30 min: sensor being replaced",
            "<script>alert(1)</script> called the vendor"
        ]
    );

    // An operator granted another subtree sees none of it: not in lists, counts or by id.
    let (_, other) = send(
        plant
            .engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Elsewhere" })),
    )
    .await;
    let elsewhere = other["asset"]["id"].as_i64().unwrap();
    let outsider = app.api_client(Role::Operator, vec![elsewhere]).await.0;
    assert!(alarms(&plant, &outsider, "").await.is_empty());
    let (status, _) = send(outsider.get(app.url(&format!("/api/v1/alarms/{id}")))).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        outsider
            .post(app.url(&format!("/api/v1/alarms/{id}/ack")))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, body) = send(outsider.get(app.url("/api/v1/alarms/counts"))).await;
    assert_eq!(body["counts"]["high"], 0);
    // One granted the plant sees it, also by subtree path.
    let insider = app.api_client(Role::Viewer, vec![plant.plant]).await.0;
    assert_eq!(alarms(&plant, &insider, "?subtree=/Plant/Boiler%201").await.len(), 1);
    assert!(alarms(&plant, &plant.engineer, &format!("?subtree={elsewhere}"))
        .await
        .is_empty());
}

async fn asset_rules_add_to_the_template_and_are_checked(backend: Backend) {
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, json!([]))).await;
    let app = &plant.app;
    let url = app.url(&format!("/api/v1/assets/{}/rules", plant.boiler));
    let own = json!({ "rules": [
        { "attribute": "flow", "rule": { "name": "Flow high", "condition": { "type": "limit", "level": "hi" },
          "severity": "medium" } },
        { "attribute": "tripped", "rule": { "name": "Tripped", "condition": { "type": "state", "equals": 1 },
          "severity": "critical" } }
    ]});
    let (status, body) = send(plant.engineer.put(&url).json(&own)).await;
    assert_eq!(status, 200, "{body}");
    let rules = body["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "two from the template, two of the asset: {body}");
    assert_eq!(rules[0]["template"], "Boiler");
    assert_eq!(rules[3]["template"], Value::Null);

    // The new rules apply at once.
    let t = now_ms();
    post(&plant, "flow", json!(60.0), t).await;
    post(&plant, "tripped", json!(true), t).await;
    let engineer = &plant.engineer;
    let listed = alarms(&plant, engineer, "").await;
    let mut rules: Vec<&str> = listed.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    rules.sort();
    assert_eq!(rules, vec!["Flow high", "Tripped"]);

    // Rules that cannot work are refused whole, with the reason: 400 for what the OpenAPI document states, 422
    // for a rule that does not fit its attribute.
    for (bad, expected, why) in [
        (
            json!({ "attribute": "pressure", "rule": { "name": "Low low", "condition": { "type": "limit", "level": "lolo" }, "severity": "high" } }),
            422,
            "lolo",
        ),
        (
            json!({ "attribute": "tripped", "rule": { "name": "R", "condition": { "type": "rate_of_change", "max_per_minute": 1 }, "severity": "high" } }),
            422,
            "number",
        ),
        (
            json!({ "attribute": "nope", "rule": { "name": "R", "condition": { "type": "no_data", "after_seconds": 5 }, "severity": "high" } }),
            422,
            "nope",
        ),
        (
            json!({ "attribute": "flow", "rule": { "name": "R", "condition": { "type": "no_data", "after_seconds": 0 }, "severity": "high" } }),
            400,
            "after_seconds",
        ),
    ] {
        let (status, body) = send(plant.engineer.put(&url).json(&json!({ "rules": [bad] }))).await;
        assert_eq!(status, expected, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{body}");
    }
    let (status, body) = send(
        plant
            .engineer
            .put(&url)
            .json(&json!({ "rules": [{ "attribute": "flow" }] })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Operators may not change rules.
    let operator = app.api_client(Role::Operator, vec![]).await.0;
    let (status, _) = send(operator.put(&url).json(&own)).await;
    assert_eq!(status, 403);
    // Template rules through the template, and a template whose rule does not fit is refused.
    let (_, templates) = send(engineer.get(app.url("/api/v1/templates"))).await;
    let boiler = templates["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Boiler")
        .unwrap();
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/templates/{}/rules", boiler["id"])))).await;
    assert_eq!(status, 200);
    assert_eq!(body["rules"].as_array().unwrap().len(), 2);
    let mut bad = boiler_template(0, json!([]));
    bad["name"] = json!("Bad boiler");
    bad["attributes"][0]["limits"] = json!({});
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&bad)).await;
    assert_eq!(status, 422, "a limit rule without its limit: {body}");
}

async fn no_data_rules_raise_after_the_silence(backend: Backend) {
    let silent =
        json!([{ "name": "Silent", "condition": { "type": "no_data", "after_seconds": 1 }, "severity": "low" }]);
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, silent)).await;
    let t = now_ms();
    post(&plant, "pressure", json!(5.0), t).await;
    let engineer = plant.engineer.clone();
    eventually("the silence raises an alarm", || {
        let (plant, engineer) = (&plant, &engineer);
        async move { !alarms(plant, engineer, "?state=active").await.is_empty() }
    })
    .await;
    let alarm = alarms(&plant, &engineer, "").await[0].clone();
    assert_eq!(alarm["rule"], "Silent");
    assert_eq!(
        alarm["started_at"],
        t + 1000,
        "raised when the silence began to count as one"
    );
    assert_eq!(alarm["message"], "/Plant/Boiler 1 pressure has sent no data");
    post(&plant, "pressure", json!(5.0), now_ms()).await;
    let alarm = alarms(&plant, &engineer, "?state=all").await[0].clone();
    assert_eq!(alarm["state"], "unacknowledged_returned");
}

/// One attempt as the receiver saw it: delivery id, signature header, body, the status it answered.
type Attempt = (String, String, String, u16);

/// A webhook receiver that answers 500 to the first `failures` attempts, then 200; it records every attempt.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Attempt>>>) {
    let seen: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let log = seen.clone();
    let handler = move |headers: axum::http::HeaderMap, body: String| {
        let log = log.clone();
        async move {
            let mut log = log.lock().unwrap();
            let status = if log.len() < failures { 500 } else { 200 };
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            log.push((header("x-gantry-delivery"), header("x-gantry-signature"), body, status));
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

async fn webhooks_are_signed_retried_and_delivered_once(backend: Backend) {
    let (mut config, data_dir) = test_config(backend).await;
    config.alarms.webhook_retry_ms = 100;
    let plant = plant_on(spawn_app_with(config, data_dir).await, boiler_template(0, json!([]))).await;
    let app = &plant.app;
    let admin = app.api_client(Role::Admin, vec![]).await.0;
    let (url, seen) = receiver(2).await;
    let (status, body) = send(
        plant
            .engineer
            .post(app.url("/api/v1/webhooks"))
            .json(&json!({ "name": "pager", "url": url })),
    )
    .await;
    assert_eq!(status, 403, "webhooks are for admins");
    let (status, created) = send(
        admin
            .post(app.url("/api/v1/webhooks"))
            .json(&json!({ "name": "pager", "url": url, "min_severity": "high" })),
    )
    .await;
    assert_eq!(status, 201, "{created} {body}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let hook = created["webhook"]["id"].as_i64().unwrap();
    let (status, _) = send(
        admin
            .post(app.url("/api/v1/webhooks"))
            .json(&json!({ "name": "x", "url": "ftp://example.org" })),
    )
    .await;
    assert_eq!(status, 400);

    post(&plant, "pressure", json!(9.0), now_ms()).await;
    let deliveries_url = app.url(&format!("/api/v1/webhooks/{hook}/deliveries"));
    eventually("the delivery succeeds", || {
        let (admin, deliveries_url) = (&admin, &deliveries_url);
        async move {
            let (_, body) = send(admin.get(deliveries_url)).await;
            body["deliveries"][0]["status"] == "delivered"
        }
    })
    .await;
    // Give a wrongly repeated delivery the time to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let attempts = seen.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "two failures, then one success: {attempts:?}");
    let id = &attempts[0].0;
    assert!(attempts.iter().all(|a| &a.0 == id), "one delivery id throughout");
    assert_eq!(
        attempts.iter().filter(|a| a.3 == 200).count(),
        1,
        "delivered exactly once"
    );
    for (_, signature, body, _) in &attempts {
        assert_eq!(signature, &server::alarms::signature(&secret, body.as_bytes()));
    }
    let event: Value = serde_json::from_str(&attempts[2].2).unwrap();
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["kind"], "raised");
    assert_eq!(event["alarm"]["asset_path"], "/Plant/Boiler 1");
    let (_, log) = send(admin.get(&deliveries_url)).await;
    assert_eq!(log["deliveries"][0]["attempts"], 3, "{log}");
    assert!(log["deliveries"][0]["last_error"].as_str().unwrap().contains("500"));
    // The list of webhooks never shows the secret again.
    let (_, listed) = send(admin.get(app.url("/api/v1/webhooks"))).await;
    assert!(!listed.to_string().contains(&secret));
    // Acknowledging is a notification too; a low-severity webhook filter is honoured (only high and above here).
    let (status, _) = send(admin.delete(app.url(&format!("/api/v1/webhooks/{hook}")))).await;
    assert_eq!(status, 204);
}

async fn the_live_feed_streams_alarms_the_caller_may_see(backend: Backend) {
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, json!([]))).await;
    let app = &plant.app;
    let operator = app.api_client(Role::Operator, vec![]).await.0;
    let (_, other) = send(
        plant
            .engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Elsewhere" })),
    )
    .await;
    let outsider = app
        .api_client(Role::Operator, vec![other["asset"]["id"].as_i64().unwrap()])
        .await
        .0;
    let open = |client: &reqwest::Client| client.get(app.url("/api/v1/alarms/events")).send();
    let feed = open(&operator).await.unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let outside_feed = open(&outsider).await.unwrap();
    let unauthenticated = app.client.get(app.url("/api/v1/alarms/events")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    post(&plant, "pressure", json!(10.5), now_ms()).await;
    let mut feed = feed;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(text.contains("High") && text.contains("Very high")) {
        assert!(Instant::now() < deadline, "no alarm events arrived: {text}");
        if let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(1), feed.chunk())
            .await
            .map(Result::unwrap)
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("event: alarm"), "{text}");
    let data = text.lines().find(|l| l.starts_with("data: ")).unwrap();
    let event: Value = serde_json::from_str(&data["data: ".len()..]).unwrap();
    assert_eq!(event["kind"], "raised");
    // The outsider's feed carries nothing of it.
    let mut outside_feed = outside_feed;
    if let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(500), outside_feed.chunk())
        .await
        .map(Result::unwrap)
    {
        let chunk = String::from_utf8_lossy(&chunk).to_string();
        assert!(!chunk.contains("Boiler"), "{chunk}");
    }
}

/// A restart while an on-delay runs: the alarm is raised at the deadline, not lost and not late by the downtime.
#[tokio::test]
async fn an_on_delay_that_ends_during_a_restart_fires_at_its_deadline() {
    let data = tempfile::tempdir().unwrap();
    let (mut config, _unused) = test_config(Backend::Sqlite).await;
    config.data_dir = data.path().to_path_buf();
    let plant = plant_on(
        spawn_app_with(config.clone(), tempfile::tempdir().unwrap()).await,
        boiler_template(3, json!([])),
    )
    .await;
    let t = now_ms();
    post(&plant, "pressure", json!(9.0), t).await;
    assert!(
        alarms(&plant, &plant.engineer, "").await.is_empty(),
        "still within the on-delay"
    );
    plant.app.shutdown.cancel();
    let Plant { app, engineer, .. } = plant;
    app.server.await.unwrap().unwrap();
    // The test's handles on the stores go too, so the store's lock is free for the next instance.
    drop(app.timeseries);
    // Down past the deadline.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut config = config;
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let app = spawn_app_with(config, tempfile::tempdir().unwrap()).await;
    // The engineer's API token lives in the same database.
    let deadline = Instant::now() + Duration::from_secs(5);
    let raised = loop {
        let (status, body) = send(engineer.get(app.url("/api/v1/alarms"))).await;
        assert_eq!(status, 200, "{body}");
        if let Some(alarm) = body["alarms"].as_array().unwrap().first() {
            break alarm.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the delayed alarm never fired after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started = raised["started_at"].as_i64().unwrap();
    assert!(
        (started - (t + 3000)).abs() <= 1000,
        "raised at {started}, deadline {}",
        t + 3000
    );
    assert_eq!(raised["start_value"], 9.0);
}

/// The server-rendered pages: the alarm list and its filters, an alarm's page with the readings around it, the
/// asset page's roll-up and its current value coloured by the limit band it is in.
async fn pages_show_alarms_rollups_and_current_values(backend: Backend) {
    let plant = plant_on(spawn_app(backend).await, boiler_template(0, json!([]))).await;
    post(&plant, "pressure", json!(9.25), now_ms()).await;
    let browser = plant.app.signed_in(Role::Viewer).await;
    let page = |path: String| {
        let request = browser.get(plant.app.url(&path));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let html = page("/alarms".into()).await;
    let id = alarms(&plant, &plant.engineer, "").await[0]["id"].as_i64().unwrap();
    assert!(html.contains(&format!("data-alarm=\"{id}\"")), "{html}");
    assert!(html.contains("Active, unacknowledged"), "{html}");
    assert!(html.contains("id=\"alarm-load\""), "the load figure: {html}");
    assert!(html.contains("1 alarm; "), "{html}");
    let html = page("/alarms?severity=critical".into()).await;
    assert!(html.contains("No alarms match"), "{html}");
    assert!(!html.contains("data-alarm="), "{html}");

    let html = page(format!("/alarms/{id}")).await;
    assert!(html.contains("<table id=\"alarm-readings\">"), "{html}");
    assert!(html.contains("9.25 bar"), "{html}");

    let html = page(format!("/assets/{}", plant.boiler)).await;
    assert!(html.contains("class=\"value hi\""), "pressure is over Hi: {html}");
    assert!(html.contains("9.25 bar"), "{html}");
    assert!(html.contains("class=\"sev high\""), "the roll-up: {html}");
    let html = page(format!("/assets/{}", plant.plant)).await;
    assert!(
        html.contains("class=\"sev high\""),
        "the parent rolls up its subtree: {html}"
    );
}

//! Devices and ingestion through the real HTTP endpoints: JSON and both line-protocol endpoints deliver readings
//! that the query API then returns; every bad-input case of the brief answers its status with the JSON error body;
//! grants, tokens (gateway, revoked) and the bounded queue behave, on every metadata backend.

use std::io::Write;

use app::auth::Role;
use serde_json::{json, Value};

pub use crate::helpers::send;
use crate::helpers::{spawn_app, spawn_app_with, test_config, Backend, TestApp};
use crate::{backend_tests, tdengine_tests};

backend_tests!(
    devices_are_managed_and_tokens_shown_once,
    json_readings_arrive_in_the_query_api,
    line_protocol_v1_and_v2_deliver_readings,
    bad_input_gets_its_status_and_a_json_body,
    a_gateway_token_writes_for_its_devices_only,
    a_full_queue_answers_503_with_retry_after,
    assets_with_devices_cannot_be_deleted,
);
// The same against TDengine, the store of the HA form.
tdengine_tests!(
    json_readings_arrive_in_the_query_api,
    line_protocol_v1_and_v2_deliver_readings,
    bad_input_gets_its_status_and_a_json_body,
    a_gateway_token_writes_for_its_devices_only,
    a_full_queue_answers_503_with_retry_after,
);

pub struct Site {
    pub app: TestApp,
    pub engineer: reqwest::Client,
    pub pump: i64,
    pub device: i64,
    pub token: String,
}

/// A pump (flow, pressure, a static serial) with a device `pump-1` (field `q` mapped to `flow`) and its token.
pub async fn site_on(app: TestApp) -> Site {
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let template = json!({ "name": "Pump", "attributes": [
        { "name": "flow", "value_type": "float", "unit": "m³/h" },
        { "name": "pressure", "value_type": "float", "unit": "bar" },
        { "name": "running", "value_type": "boolean" },
        { "name": "serial", "value_type": "string", "is_series": false }
    ]});
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Plant" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let plant = body["asset"]["id"].as_i64().unwrap();
    let asset = json!({ "parent_id": plant, "name": "Pump 1", "template": "Pump" });
    let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
    assert_eq!(status, 201, "{body}");
    let pump = body["asset"]["id"].as_i64().unwrap();
    let device = json!({ "name": "pump-1", "asset_path": "/Plant/Pump 1", "field_map": { "q": "flow" } });
    let (status, body) = send(engineer.post(app.url("/api/v1/devices")).json(&device)).await;
    assert_eq!(status, 201, "{body}");
    let device = body["device"]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .post(app.url(&format!("/api/v1/devices/{device}/tokens")))
            .json(&json!({ "name": "first" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["secret"].as_str().unwrap().to_string();
    Site {
        app,
        engineer,
        pump,
        device,
        token,
    }
}

async fn site(backend: Backend) -> Site {
    site_on(spawn_app(backend).await).await
}

pub fn now_ms() -> i64 {
    server::metadata::now_ms()
}

/// The raw readings of one attribute over the last two days, as the query API returns them.
pub async fn readings(site: &Site, attribute: &str) -> Vec<(i64, f64)> {
    let now = now_ms();
    let url = site.app.url(&format!(
        "/api/v1/assets/{}/attributes/{attribute}/data?from={}&to={}&points=5000",
        site.pump,
        now - 2 * 86_400_000,
        now + 86_400_000
    ));
    let (status, body) = send(site.engineer.get(url)).await;
    assert_eq!(status, 200, "{body}");
    body["points"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .map(|p| (p["ts"].as_i64().unwrap(), p["value"].as_f64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

async fn devices_are_managed_and_tokens_shown_once(backend: Backend) {
    let site = site(backend).await;
    let (app, engineer) = (&site.app, &site.engineer);
    let (status, body) = send(engineer.get(app.url("/api/v1/devices"))).await;
    assert_eq!(status, 200, "{body}");
    let listed = &body["devices"][0];
    assert_eq!(listed["name"], "pump-1");
    assert_eq!(listed["asset_path"], "/Plant/Pump 1");
    assert_eq!(listed["online"], false);
    assert_eq!(listed["active_tokens"], 1);
    // A refused device names the input at fault, so forms can show the reason beside it.
    for (device, field) in [
        (json!({ "name": "pump 2!", "asset_path": "/Plant/Pump 1" }), "name"),
        (
            json!({ "name": "pump-2", "asset_path": "/Plant/Pump 99" }),
            "asset_path",
        ),
        (
            json!({ "name": "pump-2", "asset_path": "/Plant/Pump 1", "field_map": { "q": "nothing" } }),
            "field_map",
        ),
    ] {
        let (status, body) = send(engineer.post(app.url("/api/v1/devices")).json(&device)).await;
        assert!((400..500).contains(&status), "{device}: {status} {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{device}: {body}");
    }
    // The token list never shows the secret again.
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/devices/{}/tokens", site.device)))).await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains(&site.token));
    assert!(site.token.starts_with(body["tokens"][0]["prefix"].as_str().unwrap()));
    // A second token for rotation; revoking the first leaves the second working.
    let (_, second) = send(
        engineer
            .post(app.url(&format!("/api/v1/devices/{}/tokens", site.device)))
            .json(&json!({ "name": "second" })),
    )
    .await;
    let second_secret = second["secret"].as_str().unwrap();
    let first_id = body["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/device-tokens/{first_id}")))).await;
    assert_eq!(status, 204);
    let reading = json!({ "readings": [{ "field": "flow", "value": 1.0 }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .json(&reading),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(second_secret)
            .json(&reading),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Last seen and online once it sent something (written in the background, shown at once).
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/devices/{}", site.device)))).await;
    assert_eq!(body["device"]["online"], true, "{body}");
    // Edits are checked against the asset's attributes.
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/devices/{}", site.device)))
            .json(&json!({ "field_map": { "x": "serial" } })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "pump-1", "asset_id": site.pump })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "bad name", "asset_id": site.pump })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Viewers may list but not create.
    let viewer = app.api_client(Role::Viewer, vec![]).await.0;
    let (status, _) = send(viewer.get(app.url("/api/v1/devices"))).await;
    assert_eq!(status, 200);
    let (status, _) = send(
        viewer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "x", "asset_id": site.pump })),
    )
    .await;
    assert_eq!(status, 403);
    // Deleting the device ends its tokens.
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/devices/{}", site.device)))).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(second_secret)
            .json(&reading),
    )
    .await;
    assert_eq!(status, 401);
}

async fn json_readings_arrive_in_the_query_api(backend: Backend) {
    let site = site(backend).await;
    let app = &site.app;
    let t = now_ms() - 60_000;
    let body = json!({ "readings": [
        { "field": "q", "value": 12.5, "ts": t },
        { "field": "pressure", "value": 3, "ts": t },
        { "field": "running", "value": true, "ts": t },
        { "field": "q", "value": 13.0, "ts": t + 1000 }
    ]});
    let (status, answer) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .json(&body),
    )
    .await;
    assert_eq!((status, answer), (200, json!({ "accepted": 4 })));
    assert_eq!(readings(&site, "flow").await, vec![(t, 12.5), (t + 1000, 13.0)]);
    assert_eq!(readings(&site, "pressure").await, vec![(t, 3.0)]);
    assert_eq!(readings(&site, "running").await, vec![(t, 1.0)]);
    // Re-sending the same request changes nothing; a gzip body works the same.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let (status, _) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .header("content-encoding", "gzip")
            .header("content-type", "application/json")
            .body(gz.finish().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(readings(&site, "flow").await.len(), 2);
    // Without a timestamp the server's time is used; RFC 3339 works too.
    let body = json!({ "device": "pump-1", "readings": [{ "field": "q", "value": 1 }, { "field": "pressure", "value": 2, "ts": "2026-11-21T12:00:00Z" }] });
    let (status, _) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .json(&body),
    )
    .await;
    assert_eq!(status, 200);
    let latest = readings(&site, "flow").await;
    assert!((latest.last().unwrap().0 - now_ms()).abs() < 10_000);
    // The asset's latest values include what arrived.
    let (_, body) = send(
        site.engineer
            .get(app.url(&format!("/api/v1/assets/{}/latest", site.pump))),
    )
    .await;
    assert_eq!(body["values"][0]["value"], 1.0, "{body}");
}

async fn line_protocol_v1_and_v2_deliver_readings(backend: Backend) {
    let site = site(backend).await;
    let app = &site.app;
    let t = now_ms() / 1000 * 1000 - 120_000;
    let lines = format!(
        "pump-1 q=1.5,pressure=2i {}\nplant,device=pump-1 running=t {}\n",
        t * 1_000_000,
        t * 1_000_000
    );
    let response = app
        .client
        .post(app.url("/api/v2/write?org=gantry&bucket=plant&precision=ns"))
        .header("authorization", format!("Token {}", site.token))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    // InfluxDB 1: the token as the `p` parameter, or as Basic auth's password; seconds precision.
    let response = app
        .client
        .post(app.url(&format!("/write?db=plant&u=pump-1&p={}&precision=s", site.token)))
        .body(format!("pump-1 q=2.5 {}", t / 1000 + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let response = app
        .client
        .post(app.url("/write?db=plant&precision=ms"))
        .basic_auth("pump-1", Some(&site.token))
        .body(format!("pump-1 q=3.5 {}", t + 2000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        readings(&site, "flow").await,
        vec![(t, 1.5), (t + 1000, 2.5), (t + 2000, 3.5)]
    );
    assert_eq!(readings(&site, "pressure").await, vec![(t, 2.0)]);
    assert_eq!(readings(&site, "running").await, vec![(t, 1.0)]);
    // A line that does not parse fails the request, naming the line.
    let (status, body) = send(
        app.client
            .post(app.url("/api/v2/write"))
            .header("authorization", format!("Token {}", site.token))
            .body("pump-1 q=1\npump-1 q="),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 2"), "{body}");
}

async fn bad_input_gets_its_status_and_a_json_body(backend: Backend) {
    let (mut config, dir) = test_config(backend).await;
    config.ingest.max_body_bytes = 64 * 1024;
    config.ingest.max_decompressed_bytes = 256 * 1024;
    let site = site_on(spawn_app_with(config, dir).await).await;
    let app = &site.app;
    let ingest = |body: Vec<u8>| {
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .header("content-type", "application/json")
            .body(body)
    };
    let now = now_ms();
    let reading =
        |field: &str, value: Value, ts: i64| json!({ "readings": [{ "field": field, "value": value, "ts": ts }] });
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no token",
            app.client
                .post(app.url("/api/v1/ingest"))
                .json(&reading("q", json!(1), now)),
            401,
            "token",
        ),
        (
            "unknown token",
            app.client
                .post(app.url("/api/v1/ingest"))
                .bearer_auth("gdev_0000")
                .json(&reading("q", json!(1), now)),
            401,
            "unknown",
        ),
        (
            "a user's API token",
            app.client
                .post(app.url("/api/v1/ingest"))
                .bearer_auth("gantry_abc")
                .json(&reading("q", json!(1), now)),
            401,
            "unknown",
        ),
        (
            "malformed JSON",
            ingest(b"{\"readings\": [".to_vec()),
            400,
            "not a valid",
        ),
        (
            "NaN",
            ingest(reading("q", json!("NaN"), now).to_string().into_bytes()),
            400,
            "not a number",
        ),
        (
            "a text value",
            ingest(reading("q", json!("high"), now).to_string().into_bytes()),
            400,
            "text values",
        ),
        (
            "a day and more ahead",
            ingest(reading("q", json!(1), now + 25 * 3_600_000).to_string().into_bytes()),
            422,
            "future",
        ),
        (
            "older than retention",
            ingest(reading("q", json!(1), now - 91 * 86_400_000).to_string().into_bytes()),
            422,
            "retention",
        ),
        (
            "unknown field",
            ingest(reading("nope", json!(1), now).to_string().into_bytes()),
            422,
            "unknown field",
        ),
        (
            "a static attribute",
            ingest(reading("serial", json!(1), now).to_string().into_bytes()),
            422,
            "static",
        ),
        (
            "another device",
            ingest(
                json!({ "device": "pump-9", "readings": [{ "field": "q", "value": 1 }] })
                    .to_string()
                    .into_bytes(),
            ),
            401,
            "pump-9",
        ),
        (
            // The server answers before reading the rest of the body and closes the connection: not one to reuse.
            "oversize body",
            ingest(vec![b' '; 65 * 1024]).header("connection", "close"),
            413,
            "larger than",
        ),
        (
            "bad precision",
            app.client
                .post(app.url("/api/v2/write?precision=fortnight"))
                .header("authorization", format!("Token {}", site.token))
                .body("pump-1 q=1"),
            400,
            "precision",
        ),
    ];
    for (what, request, status, needle) in cases {
        let (got, body) = send(request).await;
        assert_eq!(got, status, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {body}");
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
    }
    // A gzip bomb: 1 MiB of zeros compresses to about a kilobyte, past the decompressed limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 1024 * 1024]).unwrap();
    let (status, body) = send(ingest(gz.finish().unwrap()).header("content-encoding", "gzip")).await;
    assert_eq!(status, 413, "{body}");
    // A mixed request: the good readings are stored, the response lists each refusal.
    let body = json!({ "readings": [
        { "field": "q", "value": 5.5, "ts": now - 1000 },
        { "field": "nope", "value": 1 },
        { "field": "pressure", "value": 1, "ts": now + 2 * 86_400_000 }
    ]});
    let (status, body) = send(ingest(body.to_string().into_bytes())).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["accepted"], 1, "{body}");
    let refused = body["error"]["details"]["refused"].as_array().unwrap();
    assert_eq!(
        refused.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(refused[0]["field"], "nope");
    assert_eq!(readings(&site, "flow").await, vec![(now - 1000, 5.5)]);
    assert!(readings(&site, "pressure").await.is_empty());
}

async fn a_gateway_token_writes_for_its_devices_only(backend: Backend) {
    let site = site(backend).await;
    let (app, engineer) = (&site.app, &site.engineer);
    for name in ["pump-2", "pump-3"] {
        let device = json!({ "name": name, "asset_id": site.pump });
        let (status, body) = send(engineer.post(app.url("/api/v1/devices")).json(&device)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/gateway-tokens"))
            .json(&json!({ "name": "edge-1", "devices": ["pump-1", "pump-2"] })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let gateway = body["secret"].as_str().unwrap().to_string();
    let t = now_ms() - 10_000;
    let batch = json!({ "devices": [
        { "device": "pump-1", "readings": [{ "field": "q", "value": 1.0, "ts": t }] },
        { "device": "pump-2", "readings": [{ "field": "flow", "value": 2.0, "ts": t + 1 }] }
    ]});
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&gateway)
            .json(&batch),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "accepted": 2 })));
    assert_eq!(readings(&site, "flow").await, vec![(t, 1.0), (t + 1, 2.0)]);
    // A device the gateway does not hold, and a reading that names no device.
    let batch = json!({ "devices": [{ "device": "pump-3", "readings": [{ "field": "flow", "value": 3.0 }] }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&gateway)
            .json(&batch),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let single = json!({ "readings": [{ "field": "flow", "value": 3.0 }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&gateway)
            .json(&single),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name the device"),
        "{body}"
    );
}

async fn a_full_queue_answers_503_with_retry_after(backend: Backend) {
    let (mut config, dir) = test_config(backend).await;
    config.ingest.queue_readings = 150;
    let site = site_on(spawn_app_with(config, dir).await).await;
    let app = &site.app;
    let t = now_ms() - 3_600_000;
    let batch = |round: i64, n: i64| json!({ "readings": (0..100).map(|i| json!({ "field": "q", "value": i, "ts": t + (round * 100 + n) * 100 + i })).collect::<Vec<_>>() });
    // A request larger than the whole queue can never fit: 413.
    let huge =
        json!({ "readings": (0..151).map(|i| json!({ "field": "q", "value": i, "ts": t + i })).collect::<Vec<_>>() });
    let (status, _) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&site.token)
            .json(&huge),
    )
    .await;
    assert_eq!(status, 413);
    let mut shed = None;
    let mut stored = 0;
    for round in 0..20 {
        let requests = (0..16).map(|n| {
            app.client
                .post(app.url("/api/v1/ingest"))
                .bearer_auth(&site.token)
                .json(&batch(round, n))
                .send()
        });
        for response in futures::future::join_all(requests).await {
            let response = response.unwrap();
            match response.status().as_u16() {
                200 => stored += 100,
                503 => {
                    shed = Some(
                        response
                            .headers()
                            .get("retry-after")
                            .map(|v| v.to_str().unwrap().to_string()),
                    )
                }
                other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
            }
        }
        if shed.is_some() {
            break;
        }
    }
    assert_eq!(
        shed,
        Some(Some("1".to_string())),
        "no request was shed with Retry-After"
    );
    // Everything acknowledged is there.
    assert_eq!(readings(&site, "flow").await.len(), stored);
}

async fn assets_with_devices_cannot_be_deleted(backend: Backend) {
    let site = site(backend).await;
    let (app, engineer) = (&site.app, &site.engineer);
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{}?confirm=true", site.pump)))).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("devices"), "{body}");
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/devices/{}", site.device)))).await;
    assert_eq!(status, 204);
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{}?confirm=true", site.pump)))).await;
    assert_eq!(status, 200, "{body}");
}

/// On TDengine, a series keeps its attribute's declared type whatever JSON number a device sends: an integer
/// first and a fraction later are both stored (as floats), and one device's readings never fail another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdengine_readings_take_their_attributes_declared_type() {
    let (mut config, dir) = test_config(Backend::Sqlite).await;
    config.timeseries.kind = server::config::TimeseriesKind::Tdengine;
    config.timeseries.tdengine.dsn = Some(secrecy::SecretString::from(crate::timeseries_store::tdengine_dsn()));
    config.timeseries.tdengine.database = format!("gantry_api_{}", std::process::id());
    let app = spawn_app_with(config, dir).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let template = json!({ "name": "Tank", "attributes": [{ "name": "level", "value_type": "float" }] });
    let (status, body) = crate::helpers::send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let mut tokens = Vec::new();
    for name in ["Tank 1", "Tank 2"] {
        let asset = json!({ "name": name, "template": "Tank" });
        let (_, body) = crate::helpers::send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
        let id = body["asset"]["id"].as_i64().unwrap();
        tokens.push((
            id,
            app.device_token(&engineer, &name.replace(' ', "-").to_lowercase(), id)
                .await,
        ));
    }
    let t0 = server::metadata::now_ms() - 10_000;
    for (i, value) in [json!(20), json!(20.5)].into_iter().enumerate() {
        for (_, token) in &tokens {
            let body = json!({ "readings": [{ "field": "level", "value": value, "ts": t0 + i as i64 * 1000 }] });
            let (status, answer) = crate::helpers::send(
                app.client
                    .post(app.url("/api/v1/ingest"))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await;
            assert_eq!(status, 200, "{value}: {answer}");
        }
    }
    for (asset, _) in &tokens {
        let url = app.url(&format!(
            "/api/v1/assets/{asset}/attributes/level/data?from={t0}&to={}",
            t0 + 5_000
        ));
        let (status, body) = crate::helpers::send(engineer.get(url)).await;
        assert_eq!(status, 200, "{body}");
        let values: Vec<f64> = body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect();
        assert_eq!(values, vec![20.0, 20.5], "{body}");
    }
    // The attribute becomes an integer: its series stays in TDengine's float table, and integers are stored there.
    let (_, templates) = crate::helpers::send(engineer.get(app.url("/api/v1/templates"))).await;
    let tank = templates["templates"][0]["id"].as_i64().unwrap();
    let integer = json!({ "name": "Tank", "attributes": [{ "name": "level", "value_type": "integer" }] });
    let (status, body) = crate::helpers::send(
        engineer
            .put(app.url(&format!("/api/v1/templates/{tank}")))
            .json(&integer),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (asset, token) = &tokens[0];
    let body = json!({ "readings": [{ "field": "level", "value": 21, "ts": t0 + 2000 }] });
    let (status, answer) = crate::helpers::send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "after the type change: {answer}");
    let url = app.url(&format!(
        "/api/v1/assets/{asset}/attributes/level/data?from={}&to={}",
        t0 + 2000,
        t0 + 3000
    ));
    let (_, body) = crate::helpers::send(engineer.get(url)).await;
    assert_eq!(body["points"][0]["value"], json!(21.0), "{body}");
}

/// A request whose readings TDengine refuses gets 422 with the reason, and the other requests written in the same
/// group commit are stored and acknowledged as if it were not there. (The refusal: a meter's attribute changed
/// from integer to float after its series was made; TDengine keeps a series in one type, and 0.5 is no integer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_tdengine_refuses_fail_their_own_request_only() {
    let app = spawn_app(Backend::Tdengine).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let mut devices = Vec::new();
    for (template, value_type) in [("Meter", "integer"), ("Tank", "float")] {
        let body = json!({ "name": template, "attributes": [{ "name": "level", "value_type": value_type }] });
        let (status, body) = crate::helpers::send(engineer.post(app.url("/api/v1/templates")).json(&body)).await;
        assert_eq!(status, 201, "{body}");
    }
    for n in 0..20 {
        let template = if n == 0 { "Meter" } else { "Tank" };
        let asset = json!({ "name": format!("{template} {n}"), "template": template });
        let (_, body) = crate::helpers::send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
        let id = body["asset"]["id"].as_i64().unwrap();
        devices.push((id, app.device_token(&engineer, &format!("device-{n}"), id).await));
    }
    let now = server::metadata::now_ms();
    let post = |token: &str, value: f64, ts: i64| {
        let body = json!({ "readings": [{ "field": "level", "value": value, "ts": ts }] });
        let request = app
            .client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(token)
            .json(&body);
        async move { crate::helpers::send(request).await }
    };
    let (status, body) = post(&devices[0].1, 1.0, now - 60_000).await;
    assert_eq!(status, 200, "{body}");
    let (_, meter) = crate::helpers::send(engineer.get(app.url("/api/v1/templates"))).await;
    let meter_id = meter["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Meter")
        .and_then(|t| t["id"].as_i64())
        .unwrap();
    let float = json!({ "name": "Meter", "attributes": [{ "name": "level", "value_type": "float" }] });
    let (status, body) = crate::helpers::send(
        engineer
            .put(app.url(&format!("/api/v1/templates/{meter_id}")))
            .json(&float),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Every round, the meter and the tanks post at once, so that the writer groups them.
    for round in 0..5 {
        let answers = futures::future::join_all(
            devices
                .iter()
                .enumerate()
                .map(|(n, (_, token))| post(token, n as f64 + 0.5, now - 10_000 + round)),
        )
        .await;
        let (status, body) = &answers[0];
        assert_eq!(*status, 422, "round {round}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stored in TDengine as int readings"),
            "{body}"
        );
        for (n, (status, body)) in answers.iter().enumerate().skip(1) {
            assert_eq!(*status, 200, "tank {n} failed with the refused meter: {body}");
        }
    }
    // Every acknowledged reading is stored, and only those.
    for (n, (asset, _)) in devices.iter().enumerate() {
        let url = app.url(&format!(
            "/api/v1/assets/{asset}/attributes/level/data?from={}&to={now}",
            now - 20_000
        ));
        let (_, body) = crate::helpers::send(engineer.get(url)).await;
        let expected = if n == 0 { 0 } else { 5 };
        assert_eq!(
            body["points"].as_array().map_or(0, Vec::len),
            expected,
            "device {n}: {body}"
        );
    }
}

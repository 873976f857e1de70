//! Trend charts through `/api/v1/charts`: the resolution chosen from the width, limits and alarm markers, the
//! errors and grants, and the server's pictures: SVG text and a PNG compared with a stored reference image;
//! latest values for dashboard panels, and dashboards: who sees and changes which, their checks, the model file.

use app::auth::Role;
use serde_json::{json, Value};
use server::timeseries::{Reading, Value as StoredValue, HOUR_MS};

use crate::helpers::{assert_matches_reference, decode_png, send, spawn_app, Backend, TestApp};
use crate::{backend_tests, tdengine_tests};

backend_tests!(
    trends_pick_the_resolution_from_the_width_and_carry_limits_and_alarms,
    bad_trend_queries_get_clear_errors_and_grants_apply,
    panel_values_carry_unit_and_band_and_say_which_series_cannot_be_read,
    personal_dashboards_are_their_owners_and_shared_ones_are_engineers_to_change,
    bad_dashboards_are_refused_with_the_reason,
    shared_dashboards_travel_in_the_model_file,
);
// The same against TDengine, the store of the HA form.
tdengine_tests!(
    trends_pick_the_resolution_from_the_width_and_carry_limits_and_alarms,
    bad_trend_queries_get_clear_errors_and_grants_apply,
    panel_values_carry_unit_and_band_and_say_which_series_cannot_be_read,
);

/// The series colour of the first series and the HiHi zone, as `draw.rs` defines them.
const FIRST_SERIES: (u8, u8, u8) = app::charts::draw::SERIES_COLORS[0];

struct Plant {
    app: TestApp,
    engineer: reqwest::Client,
    boiler: i64,
    token: String,
}

/// `/Plant/Boiler 1` with pressure limits (Lo 1, Hi 8, HiHi 10) and a High rule, and a device token for it.
async fn plant(backend: Backend) -> Plant {
    let app = spawn_app(backend).await;
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let template = json!({ "name": "Boiler", "attributes": [
        { "name": "pressure", "value_type": "float", "unit": "bar",
          "limits": { "lo": 1.0, "hi": 8.0, "hihi": 10.0 },
          "alarms": [{ "name": "High", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] },
        { "name": "serial", "value_type": "string", "is_series": false }
    ]});
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
    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "boiler-1", "asset_id": boiler })),
    )
    .await;
    let device = body["device"]["id"].as_i64().unwrap();
    let (_, body) = send(
        engineer
            .post(app.url(&format!("/api/v1/devices/{device}/tokens")))
            .json(&json!({ "name": "t" })),
    )
    .await;
    Plant {
        app,
        engineer,
        boiler,
        token: body["secret"].as_str().unwrap().to_string(),
    }
}

/// A viewer granted only `/Elsewhere`, a site beside the plant.
async fn outsider(plant: &Plant) -> reqwest::Client {
    let (status, body) = send(
        plant
            .engineer
            .post(plant.app.url("/api/v1/assets"))
            .json(&json!({ "name": "Elsewhere" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let elsewhere = body["asset"]["id"].as_i64().unwrap();
    plant.app.api_client(Role::Viewer, vec![elsewhere]).await.0
}

fn trend_url(plant: &Plant, extra: &str) -> String {
    plant.app.url(&format!(
        "/api/v1/charts/trend?s=%2FPlant%2FBoiler%201%7Cpressure&{extra}"
    ))
}

async fn trends_pick_the_resolution_from_the_width_and_carry_limits_and_alarms(backend: Backend) {
    let plant = plant(backend).await;
    // An hour of readings every 10 s through the real pipeline, two minutes of them over Hi in the middle.
    let t0 = (server::metadata::now_ms() - 2 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let readings: Vec<Value> = (0..360)
        .map(|i| {
            let value = if (180..192).contains(&i) {
                9.0
            } else {
                5.0 + (i as f64 / 20.0).sin()
            };
            json!({ "field": "pressure", "value": value, "ts": t0 + i * 10_000 })
        })
        .collect();
    post_readings(&plant, json!(readings)).await;
    let range = format!("from={t0}&to={}", t0 + HOUR_MS);

    // Wide enough for every reading: raw, with the template's limits and the High occurrence as a marker.
    let (status, trend) = send(plant.engineer.get(trend_url(&plant, &format!("{range}&width=1000")))).await;
    assert_eq!(status, 200, "{trend}");
    let series = &trend["series"][0];
    assert_eq!(series["data"]["resolution"], "raw");
    assert_eq!(series["data"]["points"].as_array().unwrap().len(), 360);
    assert_eq!(series["unit"], "bar");
    assert_eq!(series["limits"], json!({ "lo": 1.0, "hi": 8.0, "hihi": 10.0 }));
    let markers = trend["alarms"].as_array().unwrap();
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(markers[0]["severity"], "high");
    assert_eq!(markers[0]["started_at"], t0 + 180 * 10_000);
    assert_eq!(markers[0]["ended_at"], t0 + 192 * 10_000);

    // 200 pixels for 360 readings: buckets, at most one per pixel, each consistent.
    let (status, trend) = send(plant.engineer.get(trend_url(&plant, &format!("{range}&width=200")))).await;
    assert_eq!(status, 200, "{trend}");
    let data = &trend["series"][0]["data"];
    let buckets = data["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 200, "{} buckets", buckets.len());
    assert!(data["points"].is_null(), "buckets replace raw points");
    assert_eq!(
        data["bucket_ms"], 30_000,
        "3.6 s a pixel rounds up to the rollups' 30 s step"
    );
    let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 360, "every reading is in one bucket");
    assert!(buckets
        .iter()
        .all(|b| b["min"].as_f64() <= b["max"].as_f64() && b["max"].as_f64().unwrap() <= 9.0));

    // The same trend as SVG: the series in its colour, the unit, the legend.
    let response = plant
        .engineer
        .get(trend_url(&plant, &format!("{range}&width=800&height=300")).replace("/trend?", "/trend.svg?"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.unwrap();
    let (r, g, b) = FIRST_SERIES;
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    assert!(
        svg.to_uppercase().contains(&format!("#{r:02X}{g:02X}{b:02X}")),
        "the series is drawn in its colour"
    );
    assert!(svg.contains("Boiler 1 · pressure [bar]"), "the legend names the series");

    // And as PNG: the series' colour and the Hi zone are there.
    let response = plant
        .engineer
        .get(trend_url(&plant, &format!("{range}&width=800&height=300")).replace("/trend?", "/trend.png?"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let (width, height, rgb) = decode_png(&response.bytes().await.unwrap());
    assert_eq!((width, height), (800, 300));
    assert!(count_near(&rgb, FIRST_SERIES, 24) > 500, "the series line is drawn");
    assert!(
        count_near(&rgb, blend(app::charts::draw::WARNING_ZONE), 6) > 1000,
        "the Hi zone is shaded"
    );
}

async fn bad_trend_queries_get_clear_errors_and_grants_apply(backend: Backend) {
    let plant = plant(backend).await;
    let cases = [
        ("/api/v1/charts/trend", 400, "name at least one series"),
        (
            "/api/v1/charts/trend?s=%2FPlant%2FNowhere%7Cpressure",
            404,
            "no asset at \"/Plant/Nowhere\"",
        ),
        (
            "/api/v1/charts/trend?s=%2FPlant%2FBoiler%201%7Cflow",
            404,
            "has no attribute named \"flow\"",
        ),
        (
            "/api/v1/charts/trend?s=%2FPlant%2FBoiler%201%7Cserial",
            422,
            "static value",
        ),
        (
            "/api/v1/charts/trend?s=%2FPlant%2FBoiler%201%7Cpressure&width=99999",
            400,
            "`width` must be",
        ),
        (
            "/api/v1/charts/trend?s=%2FPlant%2FBoiler%201%7Cpressure&from=10&to=5",
            400,
            "must be before",
        ),
        (
            "/api/v1/charts/trend.png?s=%2FPlant%2FBoiler%201%7Cpressure&range=2w",
            400,
            "`range` is one of",
        ),
        (
            "/api/v1/charts/live?s=%2FPlant%2FNowhere%7Cpressure",
            404,
            "no asset at",
        ),
    ];
    for (path, expected, message) in cases {
        let (status, body) = send(plant.engineer.get(plant.app.url(path))).await;
        assert_eq!(status, expected, "{path}: {body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{path}: {text}");
    }
    // A viewer granted another subtree sees no such asset; anonymous callers are refused.
    let outsider = outsider(&plant).await;
    let (status, _) = send(outsider.get(trend_url(&plant, "range=1h"))).await;
    assert_eq!(status, 404);
    let (status, _) = send(plant.app.client.get(trend_url(&plant, "range=1h"))).await;
    assert_eq!(status, 401);
}

/// The server's PNG of a fixed trend matches the stored reference image, within a tolerance for small drawing
/// differences. `GANTRY_BLESS=1` rewrites the reference after an intended change of the picture.
#[tokio::test]
async fn the_server_png_matches_the_reference_image() {
    let plant = plant(Backend::Sqlite).await;
    let series = plant
        .app
        .timeseries
        .registry()
        .ensure(plant.boiler, "pressure")
        .await
        .unwrap();
    // 2026-01-01 00:00 UTC, six hours every 30 s: a daily-cycle-like wave, a gap, and an excursion over HiHi.
    let t0 = 1_767_225_600_000;
    let readings: Vec<Reading> = (0..720)
        .filter(|i| !(300..360).contains(i))
        .map(|i| {
            let value = if (500..520).contains(&i) {
                10.5
            } else {
                5.0 + 2.5 * (i as f64 / 60.0).sin()
            };
            Reading {
                series,
                ts: t0 + i * 30_000,
                value: StoredValue::Float(value),
            }
        })
        .collect();
    plant.app.timeseries.store().write(readings).await.unwrap();
    let url = trend_url(
        &plant,
        &format!("from={t0}&to={}&width=640&height=240", t0 + 6 * HOUR_MS),
    )
    .replace("/trend?", "/trend.png?");
    let response = plant.engineer.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let png = response.bytes().await.unwrap();
    let expected = assert_matches_reference(&png, "trend-reference.png", 0.005);
    // The reference itself shows what the chart must: the series and the HiHi zone.
    assert!(count_near(&expected, FIRST_SERIES, 24) > 300);
    assert!(count_near(&expected, blend(app::charts::draw::ALARM_ZONE), 6) > 500);
}

/// A zone colour drawn over white with the zones' transparency.
fn blend((r, g, b): (u8, u8, u8)) -> (u8, u8, u8) {
    let alpha = app::charts::draw::ZONE_ALPHA;
    let mix = |c: u8| (f64::from(c) * alpha + 255.0 * (1.0 - alpha)).round() as u8;
    (mix(r), mix(g), mix(b))
}

fn count_near(rgb: &[u8], (r, g, b): (u8, u8, u8), tolerance: u8) -> usize {
    rgb.chunks(3)
        .filter(|p| p[0].abs_diff(r) <= tolerance && p[1].abs_diff(g) <= tolerance && p[2].abs_diff(b) <= tolerance)
        .count()
}

async fn post_readings(plant: &Plant, readings: Value) {
    let (status, body) = send(
        plant
            .app
            .client
            .post(plant.app.url("/api/v1/ingest"))
            .bearer_auth(&plant.token)
            .json(&json!({ "readings": readings })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn panel_values_carry_unit_and_band_and_say_which_series_cannot_be_read(backend: Backend) {
    let plant = plant(backend).await;
    let now = server::metadata::now_ms();
    post_readings(
        &plant,
        json!([{ "field": "pressure", "value": 4.0, "ts": now - 2000 }, { "field": "pressure", "value": 8.5, "ts": now - 1000 }]),
    )
    .await;
    let url = plant.app.url(
        "/api/v1/charts/values?s=%2FPlant%2FBoiler%201%7Cpressure&s=%2FPlant%2FNowhere%7Cpressure\
         &s=%2FPlant%2FBoiler%201%7Cserial",
    );
    let (status, body) = send(plant.engineer.get(&url)).await;
    assert_eq!(status, 200, "{body}");
    let values = body["values"].as_array().unwrap();
    assert_eq!(values.len(), 3, "{body}");
    assert_eq!(values[0]["value"], 8.5, "the latest reading: {body}");
    assert_eq!(values[0]["ts"], now - 1000);
    assert_eq!(values[0]["unit"], "bar");
    assert_eq!(values[0]["band"], "hi", "8.5 is over Hi (8) and under HiHi (10)");
    assert!(values[0]["error"].is_null());
    assert!(values[1]["error"].as_str().unwrap().contains("no asset at"), "{body}");
    assert!(values[2]["error"].as_str().unwrap().contains("static value"), "{body}");

    // Outside one's grants a series reads as absent, never as its value.
    let outsider = outsider(&plant).await;
    let (status, body) = send(outsider.get(&url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["values"][0]["value"].is_null(), "{body}");
    assert!(body["values"][0]["error"].as_str().unwrap().contains("no asset at"));
    let (status, body) = send(plant.engineer.get(plant.app.url("/api/v1/charts/values"))).await;
    assert_eq!(status, 400, "{body}");
}

fn boiler_dashboard(name: &str, shared: bool) -> Value {
    json!({ "name": name, "shared": shared, "panels": [
        { "title": "Pressure", "x": 0, "y": 0, "w": 12, "h": 4,
          "content": { "kind": "trend", "series": [{ "asset": "/Plant/Boiler 1", "attribute": "pressure" }], "range": "8h" } },
        { "title": "Now", "x": 0, "y": 4, "w": 3, "h": 1,
          "content": { "kind": "value", "series": { "asset": "/Plant/Boiler 1", "attribute": "pressure" } } },
        { "title": "Alarms", "x": 3, "y": 4, "w": 9, "h": 2, "content": { "kind": "alarms", "subtree": "/Plant" } }
    ]})
}

async fn engineer_creates(plant: &Plant, dashboard: Value) -> (u16, Value) {
    send(
        plant
            .engineer
            .post(plant.app.url("/api/v1/dashboards"))
            .json(&dashboard),
    )
    .await
}

async fn personal_dashboards_are_their_owners_and_shared_ones_are_engineers_to_change(backend: Backend) {
    let plant = plant(backend).await;
    let app = &plant.app;
    let (viewer, _) = app.api_client(Role::Viewer, vec![]).await;
    let (other_viewer, _) = app.api_client(Role::Viewer, vec![]).await;

    // A viewer keeps a personal dashboard; nobody else sees it, not even by id.
    let (status, mine) = send(
        viewer
            .post(app.url("/api/v1/dashboards"))
            .json(&boiler_dashboard("Mine", false)),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    let mine_id = mine["id"].as_i64().unwrap();
    assert_eq!(mine["can_edit"], true);
    assert_eq!(mine["panels"].as_array().unwrap().len(), 3);
    let mine_url = app.url(&format!("/api/v1/dashboards/{mine_id}"));
    for client in [&other_viewer, &plant.engineer] {
        let (status, _) = send(client.get(&mine_url)).await;
        assert_eq!(status, 404);
        let (status, _) = send(client.put(&mine_url).json(&boiler_dashboard("Taken", false))).await;
        assert_eq!(status, 404);
        let (_, list) = send(client.get(app.url("/api/v1/dashboards"))).await;
        assert!(list["dashboards"].as_array().unwrap().is_empty(), "{list}");
    }

    // Only engineers share; everyone sees a shared dashboard; viewers cannot change it.
    let (status, body) = send(
        viewer
            .post(app.url("/api/v1/dashboards"))
            .json(&boiler_dashboard("Ours", true)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("share"));
    let (status, shared) = engineer_creates(&plant, boiler_dashboard("Boilers", true)).await;
    assert_eq!(status, 201, "{shared}");
    let shared_url = app.url(&format!("/api/v1/dashboards/{}", shared["id"]));
    let (status, seen) = send(other_viewer.get(&shared_url)).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["can_edit"], false);
    assert_eq!(seen["panels"], shared["panels"]);
    let (status, _) = send(other_viewer.put(&shared_url).json(&boiler_dashboard("Boilers", true))).await;
    assert_eq!(status, 403);
    let (status, _) = send(other_viewer.delete(&shared_url)).await;
    assert_eq!(status, 403);
    let (_, list) = send(viewer.get(app.url("/api/v1/dashboards"))).await;
    let names: Vec<&str> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Boilers", "Mine"]);

    // Arranging: the owner moves a panel and drops one; the change is kept.
    let mut changed = boiler_dashboard("Mine", false);
    changed["panels"][1]["x"] = json!(6);
    changed["panels"].as_array_mut().unwrap().pop();
    let (status, body) = send(viewer.put(&mine_url).json(&changed)).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = send(viewer.get(&mine_url)).await;
    assert_eq!(body["panels"].as_array().unwrap().len(), 2);
    assert_eq!(body["panels"][1]["x"], 6);
    let (status, _) = send(viewer.delete(&mine_url)).await;
    assert_eq!(status, 204);
    let (status, _) = send(viewer.get(&mine_url)).await;
    assert_eq!(status, 404);
    let (status, _) = send(app.client.get(app.url("/api/v1/dashboards"))).await;
    assert_eq!(status, 401);
}

async fn bad_dashboards_are_refused_with_the_reason(backend: Backend) {
    let plant = plant(backend).await;
    let app = &plant.app;
    let create = |body: Value| engineer_creates(&plant, body);
    let mut wide = boiler_dashboard("Wide", false);
    wide["panels"][1]["x"] = json!(10);
    let mut range = boiler_dashboard("Range", false);
    range["panels"][0]["content"]["range"] = json!("2w");
    let mut unknown = boiler_dashboard("Unknown", false);
    unknown["panels"][0]["colour"] = json!("red");
    let cases = [
        (json!({ "name": "" }), 400, "1 to 100 characters"),
        (wide, 422, "fit in the grid's 12 columns"),
        (range, 400, "the range is one of"),
        (unknown, 400, "colour"),
        (
            json!({ "name": "Bad", "panels": [{ "title": "x", "x": 0, "y": 0, "w": 2, "h": 1,
            "content": { "kind": "table", "series": [] } }] }),
            400,
            "a table shows 1 to 50 series",
        ),
    ];
    for (body, expected, message) in cases {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        let text = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}: {text}");
    }
    let (status, _) = create(boiler_dashboard("Boilers", true)).await;
    assert_eq!(status, 201);
    let (status, body) = create(boiler_dashboard("Boilers", true)).await;
    assert_eq!(status, 409, "shared names are unique: {body}");
    let (status, _) = create(boiler_dashboard("Boilers", false)).await;
    assert_eq!(status, 201, "a personal dashboard may share a shared one's name");
    let (status, _) = send(plant.engineer.get(app.url("/api/v1/dashboards/999999"))).await;
    assert_eq!(status, 404);
}

async fn shared_dashboards_travel_in_the_model_file(backend: Backend) {
    let plant = plant(backend).await;
    let app = &plant.app;
    for (name, shared) in [("Boilers", true), ("Scratch", false)] {
        let (status, body) = engineer_creates(&plant, boiler_dashboard(name, shared)).await;
        assert_eq!(status, 201, "{body}");
    }
    let export = |client: &reqwest::Client, url: String| {
        let request = client.get(url);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let yaml = export(&plant.engineer, app.url("/api/v1/model/export")).await;
    assert!(yaml.contains("dashboards:") && yaml.contains("name: Boilers"), "{yaml}");
    assert!(!yaml.contains("Scratch"), "personal dashboards stay out: {yaml}");
    let subtree = export(&plant.engineer, app.url("/api/v1/model/export?subtree=%2FPlant")).await;
    assert!(!subtree.contains("dashboards:"), "{subtree}");

    // Into an empty system: the dashboard arrives, and exporting again gives the same bytes.
    let other = spawn_app(backend).await;
    let importer = other.api_client(Role::Engineer, vec![]).await.0;
    let import = |dry_run: bool| {
        send(
            importer
                .post(other.url(&format!("/api/v1/model/import?dry_run={dry_run}")))
                .body(yaml.clone()),
        )
    };
    let (status, report) = import(true).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["changes"]
            .as_array()
            .unwrap()
            .contains(&json!("create dashboard \"Boilers\"")),
        "{report}"
    );
    let (_, list) = send(importer.get(other.url("/api/v1/dashboards"))).await;
    assert!(
        list["dashboards"].as_array().unwrap().is_empty(),
        "a dry run writes nothing"
    );
    let (status, report) = import(false).await;
    assert_eq!(status, 200, "{report}");
    let (_, list) = send(importer.get(other.url("/api/v1/dashboards"))).await;
    assert_eq!(list["dashboards"][0]["name"], "Boilers");
    assert_eq!(list["dashboards"][0]["shared"], true);
    assert_eq!(export(&importer, other.url("/api/v1/model/export")).await, yaml);
    let (_, report) = import(false).await;
    assert!(
        report["changes"].as_array().unwrap().is_empty(),
        "a second import changes nothing: {report}"
    );

    // A bad dashboard refuses the whole file.
    let bad = yaml.replace("w: 12", "w: 13");
    let (status, body) = send(importer.post(other.url("/api/v1/model/import")).body(bad)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dashboard \"Boilers\""),
        "{body}"
    );
}

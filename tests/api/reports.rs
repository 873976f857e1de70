//! Reports over the REST API, on every metadata backend: definitions made, versioned, checked and deleted; a
//! table worked out per asset and per interval from the time-series store, within the runner's grants, as JSON,
//! CSV and XLSX.

use app::auth::Role;
use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{send, spawn_app, Backend, TestApp};

backend_tests!(
    reports_are_defined_versioned_and_checked,
    a_table_aggregates_each_asset_per_interval_within_grants,
);

const HOUR: i64 = 3_600_000;

struct Plant {
    app: TestApp,
    engineer: reqwest::Client,
    pumps: Vec<i64>,
}

async fn post(client: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> Value {
    let (status, body) = send(client.post(app.url(path)).json(&body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

/// /Plant/Line 1/Pump 1 and Pump 2, /Plant/Line 2/Pump 3, of a template with flow (m³/h) and a static rating.
async fn plant(backend: Backend) -> Plant {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let pump = json!({ "name": "Pump", "attributes": [
        { "name": "flow", "value_type": "float", "unit": "m³/h" },
        { "name": "rating", "value_type": "float", "is_series": false }
    ]});
    post(&engineer, &app, "/api/v1/templates", pump).await;
    let asset = |parent: Option<i64>, name: &str, template: Option<&str>| json!({ "parent_id": parent, "name": name, "template": template });
    let id = |body: Value| body["asset"]["id"].as_i64().unwrap();
    let site = id(post(&engineer, &app, "/api/v1/assets", asset(None, "Plant", None)).await);
    let line_1 = id(post(&engineer, &app, "/api/v1/assets", asset(Some(site), "Line 1", None)).await);
    let line_2 = id(post(&engineer, &app, "/api/v1/assets", asset(Some(site), "Line 2", None)).await);
    let mut pumps = Vec::new();
    for (line, name) in [(line_1, "Pump 1"), (line_1, "Pump 2"), (line_2, "Pump 3")] {
        pumps.push(id(post(
            &engineer,
            &app,
            "/api/v1/assets",
            asset(Some(line), name, Some("Pump")),
        )
        .await));
    }
    Plant { app, engineer, pumps }
}

fn daily(name: &str, under: &str) -> Value {
    json!({
        "name": name,
        "scope": { "under": under, "template": "Pump" },
        "range": { "kind": "last", "period": "day" },
        "time_zone": "Europe/Berlin",
        "sections": [
            { "kind": "text", "heading": "Flows of {scope}" },
            { "kind": "table", "title": "Flow per hour", "attributes": ["flow"],
              "aggregates": ["average", "min", "max", "count", "first", "last"], "interval": "hour" }
        ]
    })
}

async fn reports_are_defined_versioned_and_checked(backend: Backend) {
    let Plant { app, engineer, .. } = plant(backend).await;
    let (status, made) = send(
        engineer
            .post(app.url("/api/v1/reports"))
            .json(&daily("Line 1 daily", "/Plant/Line 1")),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["version"], 1);
    assert_eq!(made["spec"]["time_zone"], "Europe/Berlin");
    let id = made["id"].as_i64().unwrap();
    let url = app.url(&format!("/api/v1/reports/{id}"));

    // A write names the version it read; a stale one is refused with the current version.
    let mut changed = daily("Line 1 daily", "/Plant");
    changed["range"] = json!({ "kind": "hours", "hours": 8 });
    let (status, body) = send(engineer.put(&url).header("if-match", "1").json(&changed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let (status, body) = send(engineer.put(&url).header("if-match", "1").json(&changed)).await;
    assert_eq!(status, 409, "{body}");

    // Bad definitions say what is wrong and which field.
    let mut bad = daily("", "/Plant");
    let (status, body) = send(engineer.post(app.url("/api/v1/reports")).json(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "name", "{body}");
    bad = daily("Zoned", "/Plant");
    bad["time_zone"] = json!("Mars/Olympus");
    let (status, body) = send(engineer.post(app.url("/api/v1/reports")).json(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "time_zone", "{body}");
    bad = daily("Empty table", "/Plant");
    bad["sections"][1]["attributes"] = json!([]);
    let (status, body) = send(engineer.post(app.url("/api/v1/reports")).json(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "sections", "{body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/reports"))
            .json(&daily("Line 1 daily", "/Plant")),
    )
    .await;
    assert_eq!(status, 409, "the name is taken: {body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/reports"))
            .body("{\"name\": 3}")
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Viewers read and run reports; they do not make or change them.
    let (viewer, _) = app.api_client(Role::Viewer, vec![]).await;
    let (status, body) = send(viewer.get(app.url("/api/v1/reports"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reports"][0]["spec"]["name"], "Line 1 daily", "{body}");
    assert_eq!(body["reports"][0]["can_edit"], false, "{body}");
    let (status, _) = send(viewer.put(&url).json(&changed)).await;
    assert_eq!(status, 403);
    let (status, _) = send(viewer.delete(&url)).await;
    assert_eq!(status, 403);

    let (status, _) = send(engineer.delete(&url)).await;
    assert_eq!(status, 204);
    let (status, body) = send(engineer.get(&url)).await;
    assert_eq!(status, 404, "{body}");
}

async fn a_table_aggregates_each_asset_per_interval_within_grants(backend: Backend) {
    let Plant { app, engineer, pumps } = plant(backend).await;
    // Two hours of yesterday (UTC), readings every half hour.
    let start = (server::metadata::now_ms() / (24 * HOUR) - 1) * 24 * HOUR + 6 * HOUR;
    let half = HOUR / 2;
    for (pump, values) in [(pumps[0], vec![10.0, 20.0, 30.0, 40.0]), (pumps[1], vec![1.0, 2.0])] {
        let token = app.device_token(&engineer, &format!("meter-{pump}"), pump).await;
        let readings: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, value)| json!({ "field": "flow", "value": value, "ts": start + i as i64 * half }))
            .collect();
        let (status, body) = send(
            app.client
                .post(app.url("/api/v1/ingest"))
                .bearer_auth(&token)
                .json(&json!({ "readings": readings })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut spec = daily("Line 1 daily", "/Plant/Line 1");
    spec["time_zone"] = json!("UTC");
    spec["range"] = json!({ "kind": "absolute", "from": start, "to": start + 2 * HOUR });
    let made = post(&engineer, &app, "/api/v1/reports", spec).await;
    let id = made["id"].as_i64().unwrap();

    let (status, report) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/rendered")))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sections"][0]["heading"], "Flows of /Plant/Line 1", "{report}");
    let table = &report["sections"][1];
    assert_eq!(table["columns"][0]["unit"], "m³/h", "{table}");
    assert_eq!(table["columns"].as_array().unwrap().len(), 6, "{table}");
    let rows = table["rows"].as_array().unwrap();
    let row = |i: usize| -> (String, i64, Vec<Value>) {
        (
            rows[i]["asset"].as_str().unwrap().to_string(),
            rows[i]["from"].as_i64().unwrap(),
            rows[i]["cells"].as_array().unwrap().clone(),
        )
    };
    assert_eq!(rows.len(), 4, "two pumps of line 1 × two hours: {table}");
    // average, min, max, count, first, last
    assert_eq!(
        row(0),
        (
            "/Plant/Line 1/Pump 1".into(),
            start,
            vec![
                json!(15.0),
                json!(10.0),
                json!(20.0),
                json!(2.0),
                json!(10.0),
                json!(20.0)
            ]
        )
    );
    assert_eq!(
        row(1).2,
        vec![
            json!(35.0),
            json!(30.0),
            json!(40.0),
            json!(2.0),
            json!(30.0),
            json!(40.0)
        ]
    );
    assert_eq!(row(1).1, start + HOUR);
    assert_eq!(row(2).0, "/Plant/Line 1/Pump 2");
    assert_eq!(row(2).2[0], json!(1.5));
    assert!(
        row(3).2.iter().all(Value::is_null),
        "no readings in Pump 2's second hour: {table}"
    );

    // Another range, given with the run; the whole range is one piece per hour still.
    let (status, report) = send(engineer.get(app.url(&format!(
        "/api/v1/reports/{id}/rendered?from={}&to={}",
        start + HOUR,
        start + 2 * HOUR
    ))))
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sections"][1]["rows"][0]["cells"][0], json!(35.0), "{report}");
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/rendered?from={start}")))).await;
    assert_eq!(status, 400, "{body}");

    // As CSV: a header naming attribute, aggregate and unit, times with their offset.
    let response = engineer
        .get(app.url(&format!("/api/v1/reports/{id}/report.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "Flow per hour");
    assert_eq!(
        lines[1],
        "asset,from,to,flow average (m³/h),flow min (m³/h),flow max (m³/h),flow count (m³/h),flow first (m³/h),flow last (m³/h)"
    );
    assert!(lines[2].starts_with("/Plant/Line 1/Pump 1,"), "{text}");
    assert!(lines[2].ends_with(",15,10,20,2,10,20"), "{text}");
    assert!(lines[2].contains("T06:00:00+00:00,"), "{text}");

    // As a workbook: a sheet per table, real numbers and dates, units in the header.
    let response = engineer
        .get(app.url(&format!("/api/v1/reports/{id}/report.xlsx")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), vec!["Report", "Flow per hour"]);
    let sheet = book.worksheet_range("Flow per hour").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows[0][3], Data::String("flow average (m³/h)".into()));
    assert_eq!(rows[1][0], Data::String("/Plant/Line 1/Pump 1".into()));
    assert_eq!(&rows[1][3..], &[15.0, 10.0, 20.0, 2.0, 10.0, 20.0].map(Data::Float)[..]);
    let Data::DateTime(from) = &rows[1][1] else {
        panic!("a date, not {:?}", rows[1][1]);
    };
    let serial = start as f64 / (24 * HOUR) as f64 + 25_569.0;
    assert!((from.as_f64() - serial).abs() < 1e-6, "{from:?} is not {serial}");
    assert_eq!(rows[4][3], Data::Empty, "no reading: an empty cell, not a zero");

    // A viewer granted Pump 2 sees only Pump 2's rows.
    let (viewer, _) = app.api_client(Role::Viewer, vec![pumps[1]]).await;
    let (status, report) = send(viewer.get(app.url(&format!("/api/v1/reports/{id}/rendered")))).await;
    assert_eq!(status, 200, "{report}");
    let assets: Vec<&str> = report["sections"][1]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["asset"].as_str().unwrap())
        .collect();
    assert_eq!(assets, vec!["/…/…/Pump 2", "/…/…/Pump 2"], "{report}");
    assert_ne!(
        report["scope"], "/Plant/Line 1",
        "the scope's names above the grant stay hidden: {report}"
    );
    // One granted nothing of the scope gets an empty table, not someone else's rows.
    let (other, _) = app.api_client(Role::Viewer, vec![pumps[2]]).await;
    let (status, report) = send(other.get(app.url(&format!("/api/v1/reports/{id}/rendered")))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sections"][1]["rows"], json!([]), "{report}");
}

//! Reports over the REST API, on every metadata backend: definitions made, versioned, checked and deleted; a
//! table worked out per asset and per interval from the time-series store, within the runner's grants, as JSON,
//! CSV and XLSX; trend and alarm sections, as PDF (its text extracted and page 1 compared with a reference
//! picture, with poppler's tools), XLSX (a chart) and pictures.

use app::auth::Role;
use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_matches_reference, send, spawn_app, Backend, TestApp};

backend_tests!(
    reports_are_defined_versioned_and_checked,
    a_table_aggregates_each_asset_per_interval_within_grants,
    trends_and_alarm_summaries_in_every_format,
    runs_work_in_the_background_and_keep_their_files,
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
        { "name": "flow", "value_type": "float", "unit": "m³/h", "limits": { "hi": 25.0 },
          "alarms": [{ "name": "High flow", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] },
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
    // A schedule is five or six cron fields (400 otherwise), and a pattern cron reads (422 otherwise).
    bad = daily("Scheduled", "/Plant");
    bad["schedule"] = json!({ "cron": "every morning" });
    let (status, body) = send(engineer.post(app.url("/api/v1/reports")).json(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "schedule", "{body}");
    bad["schedule"] = json!({ "cron": "99 6 * * *" });
    let (status, body) = send(engineer.post(app.url("/api/v1/reports")).json(&bad)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "schedule", "{body}");
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

/// Two hours of yesterday (UTC), readings every half hour: Pump 1 10, 20, 30, 40 (over its high limit from the
/// third), Pump 2 1, 2. Returns the first reading's time.
async fn yesterdays_flows(app: &TestApp, engineer: &reqwest::Client, pumps: &[i64]) -> i64 {
    let start = (server::metadata::now_ms() / (24 * HOUR) - 1) * 24 * HOUR + 6 * HOUR;
    let half = HOUR / 2;
    for (pump, values) in [(pumps[0], vec![10.0, 20.0, 30.0, 40.0]), (pumps[1], vec![1.0, 2.0])] {
        let token = app.device_token(engineer, &format!("meter-{pump}"), pump).await;
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
    start
}

async fn a_table_aggregates_each_asset_per_interval_within_grants(backend: Backend) {
    let Plant { app, engineer, pumps } = plant(backend).await;
    let start = yesterdays_flows(&app, &engineer, &pumps).await;
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

async fn download(client: &reqwest::Client, app: &TestApp, path: &str, media: &str) -> Vec<u8> {
    let response = client.get(app.url(path)).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], media, "{path}");
    bytes
}

/// The text of a PDF's pages (`first..=last`), as poppler's `pdftotext` extracts it.
fn pdf_text(pdf: &[u8], first: u32, last: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = std::process::Command::new("pdftotext")
        .args(["-layout", "-f", &first.to_string(), "-l", &last.to_string()])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian's poppler-utils; the README's test command installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

async fn trends_and_alarm_summaries_in_every_format(backend: Backend) {
    let Plant { app, engineer, pumps } = plant(backend).await;
    let start = yesterdays_flows(&app, &engineer, &pumps).await;
    let spec = json!({
        "name": "Line 1 shift",
        "scope": { "under": "/Plant/Line 1" },
        "range": { "kind": "absolute", "from": start, "to": start + 2 * HOUR },
        "sections": [
            { "kind": "table", "title": "Flows", "attributes": ["flow"], "aggregates": ["average", "max"] },
            { "kind": "trend", "title": "Flow trend", "series": [
                { "asset": "/Plant/Line 1/Pump 1", "attribute": "flow" },
                { "asset": "/Plant/Line 2/Pump 3", "attribute": "flow" }
            ] },
            { "kind": "alarms", "title": "Alarms of the shift" }
        ]
    });
    let made = post(&engineer, &app, "/api/v1/reports", spec.clone()).await;
    let id = made["id"].as_i64().unwrap();

    let (status, report) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/rendered")))).await;
    assert_eq!(status, 200, "{report}");
    let trend = &report["sections"][1];
    assert_eq!(trend["kind"], "trend", "{trend}");
    assert_eq!(trend["hidden"], 0);
    assert_eq!(trend["trend"]["series"].as_array().unwrap().len(), 2, "{trend}");
    assert_eq!(
        trend["trend"]["series"][0]["data"]["points"].as_array().unwrap().len(),
        4
    );
    assert_eq!(
        trend["trend"]["series"][0]["limits"]["hi"], 25.0,
        "limit bands come along: {trend}"
    );
    assert_eq!(
        trend["trend"]["alarms"].as_array().unwrap().len(),
        1,
        "the alarm marker: {trend}"
    );
    let summary = &report["sections"][2]["summary"];
    assert_eq!(summary["raised"], 1, "{summary}");
    assert_eq!(
        summary["by_severity"][1],
        json!({ "severity": "high", "count": 1 }),
        "{summary}"
    );
    assert_eq!(
        summary["most_frequent"][0]["asset_path"], "/Plant/Line 1/Pump 1",
        "{summary}"
    );
    assert_eq!(summary["most_frequent"][0]["rule"], "High flow", "{summary}");
    assert_eq!(summary["acknowledged"], 0, "{summary}");

    // A viewer granted only Pump 2 sees neither series (both counted as hidden) nor Pump 1's alarm.
    let (viewer, _) = app.api_client(Role::Viewer, vec![pumps[1]]).await;
    let (status, theirs) = send(viewer.get(app.url(&format!("/api/v1/reports/{id}/rendered")))).await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["sections"][1]["hidden"], 2, "{theirs}");
    assert_eq!(theirs["sections"][1]["trend"]["series"], json!([]), "{theirs}");
    assert_eq!(theirs["sections"][2]["summary"]["raised"], 0, "{theirs}");

    // The PDF: its text has the title block, the table, the trend's legend and the alarm figures.
    let pdf = download(
        &engineer,
        &app,
        &format!("/api/v1/reports/{id}/report.pdf"),
        "application/pdf",
    )
    .await;
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let text = pdf_text(&pdf, 1, 9);
    for expected in [
        "Line 1 shift",
        "/Plant/Line 1",
        "flow average (m³/h)",
        "/Plant/Line 1/Pump 1",
        "25.00",
        "Flow trend",
        "Pump 1 · flow",
        "Alarms of the shift",
        "Raised: 1 (0 critical, 1 high, 0 medium, 0 low).",
        "High flow",
        "page 1 of",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} is not in the PDF's text:\n{text}"
        );
    }
    // The trend's pictures, and the workbook's trend sheet with its chart.
    let svg = download(
        &engineer,
        &app,
        &format!("/api/v1/reports/{id}/trend.svg"),
        "image/svg+xml",
    )
    .await;
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Pump 1 · flow"), "{svg}");
    let png = download(
        &engineer,
        &app,
        &format!("/api/v1/reports/{id}/trend.png?section=2"),
        "image/png",
    )
    .await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/trend.svg?section=1")))).await;
    assert_eq!(status, 400, "section 1 is a table: {body}");
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/trend.svg?section=9")))).await;
    assert_eq!(status, 404, "{body}");
    let xlsx = download(
        &engineer,
        &app,
        &format!("/api/v1/reports/{id}/report.xlsx"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    .await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(xlsx.clone())).unwrap();
    assert!(archive.by_name("xl/charts/chart1.xml").is_ok(), "the trend's chart");
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    assert_eq!(
        book.sheet_names(),
        vec!["Report", "Flows", "Flow trend", "Alarms of the shift"]
    );
    let sheet = book.worksheet_range("Flow trend").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows[0][1], Data::String("Pump 1 · flow (m³/h)".into()));
    assert_eq!(rows[3][1], Data::Float(30.0));
    let sheet = book.worksheet_range("Alarms of the shift").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows[0][..2], [Data::String("Raised".into()), Data::Float(1.0)]);

    // A trend naming an attribute the asset lacks is a bad definition, said when run.
    let mut bad = spec;
    bad["name"] = json!("Broken trend");
    bad["sections"][1]["series"][0]["attribute"] = json!("no such thing");
    let made = post(&engineer, &app, "/api/v1/reports", bad).await;
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/reports/{}/rendered", made["id"])))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "sections", "{body}");
}

/// A fixed report's PDF: page 1 rendered by poppler matches the stored reference picture within a tolerance,
/// and a long table continues on the next pages with its header repeated and every page numbered.
/// `GANTRY_BLESS=1` rewrites the reference after an intended change of the layout.
#[test]
fn a_pdf_is_paginated_and_page_one_matches_the_reference() {
    use app::reports::{Aggregate, RenderedReport, RenderedSection, TableColumn, TableRow};
    let t0 = 1_767_225_600_000; // 2026-01-01 00:00 UTC
    let rows = (0..150)
        .map(|i| TableRow {
            asset: format!("/North Plant/Line {}/Pump {}", i / 10 + 1, i % 10 + 1),
            from: t0,
            to: t0 + 24 * HOUR,
            cells: vec![Some(f64::from(i) * 1.5), Some(f64::from(i) * 2.0), None],
        })
        .collect();
    let report = RenderedReport {
        name: "North Plant daily".into(),
        scope: "/North Plant".into(),
        from: t0,
        to: t0 + 24 * HOUR,
        time_zone: "UTC".into(),
        generated_at: t0 + 25 * HOUR,
        sections: vec![
            RenderedSection::Text {
                heading: "The day in brief".into(),
                body: "Every pump of the plant, with its average and highest flow over the day. ".repeat(4),
            },
            RenderedSection::Trend {
                title: "Pump 1".into(),
                trend: fixed_trend(t0),
                hidden: 0,
            },
            RenderedSection::Table {
                title: "Pumps".into(),
                columns: vec![
                    TableColumn {
                        attribute: "flow".into(),
                        aggregate: Aggregate::Average,
                        unit: Some("m³/h".into()),
                    },
                    TableColumn {
                        attribute: "flow".into(),
                        aggregate: Aggregate::Max,
                        unit: Some("m³/h".into()),
                    },
                    TableColumn {
                        attribute: "speed".into(),
                        aggregate: Aggregate::Average,
                        unit: Some("rpm".into()),
                    },
                ],
                rows,
            },
        ],
    };
    let pdf = server::reports::pdf::write(&report, &jiff::tz::TimeZone::UTC).unwrap();
    let pages = pdf_text(&pdf, 1, 99);
    let count = pages.matches("page ").count();
    assert!(count >= 3, "150 rows take three pages: {pages}");
    assert!(pages.contains(&format!("page {count} of {count}")), "{pages}");
    let page_two = pdf_text(&pdf, 2, 2);
    assert!(
        page_two.trim_start().starts_with("Asset") && page_two.contains("flow max (m³/h)"),
        "the header is repeated: {page_two}"
    );
    assert!(page_two.contains("page 2 of"), "{page_two}");
    assert!(pages.contains("/North Plant/Line 15/Pump 10"), "the last row: {pages}");

    // Page 1 as pixels, against the reference.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let status = std::process::Command::new("pdftoppm")
        .args(["-r", "60", "-png", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&path)
        .arg(dir.path().join("page"))
        .status()
        .expect("pdftoppm (Debian's poppler-utils)");
    assert!(status.success());
    let png = std::fs::read(dir.path().join("page.png")).unwrap();
    let expected = assert_matches_reference(&png, "report-page1-reference.png", 0.01);
    // The reference itself is a page with text on it, not a blank one, and the trend's line in its colour.
    let (r, g, b) = app::charts::draw::SERIES_COLORS[0];
    let line = expected
        .chunks(3)
        .filter(|p| p[0].abs_diff(r) < 40 && p[1].abs_diff(g) < 40 && p[2].abs_diff(b) < 40)
        .count();
    assert!(line > 150, "{line} pixels of the series' colour");
    let inked = expected.chunks(3).filter(|p| p.iter().all(|c| *c < 128)).count();
    assert!(inked > 1_000, "{inked} dark pixels");
}

/// A day of Pump 1's flow every 10 minutes: a wave, an excursion over its high limit with its alarm marker.
fn fixed_trend(t0: i64) -> app::charts::Trend {
    use app::timeseries::{Point, Resolution, SeriesData};
    let points: Vec<Point> = (0..144)
        .map(|i| Point {
            ts: t0 + i * 600_000,
            value: if (80..90).contains(&i) {
                120.0
            } else {
                60.0 + 30.0 * (i as f64 / 12.0).sin()
            },
        })
        .collect();
    app::charts::Trend {
        from: t0,
        to: t0 + 24 * HOUR,
        series: vec![app::charts::TrendSeries {
            asset_id: 1,
            asset_path: "/North Plant/Line 1/Pump 1".into(),
            attribute: "flow".into(),
            unit: Some("m³/h".into()),
            limits: app::assets::Limits {
                hi: Some(110.0),
                ..Default::default()
            },
            data: SeriesData {
                asset_id: 1,
                attribute: "flow".into(),
                unit: Some("m³/h".into()),
                from: t0,
                to: t0 + 24 * HOUR,
                resolution: Resolution::Raw,
                bucket_ms: None,
                points,
                buckets: Vec::new(),
            },
        }],
        alarms: vec![app::charts::AlarmMarker {
            series: 0,
            alarm_id: 1,
            severity: app::alarms::Severity::High,
            started_at: t0 + 80 * 600_000,
            ended_at: Some(t0 + 90 * 600_000),
            message: "High flow".into(),
        }],
    }
}

/// Polls a run until it is over (or 30 s pass).
pub async fn finished_run(client: &reqwest::Client, app: &TestApp, report: i64, run: i64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = send(client.get(app.url(&format!("/api/v1/reports/{report}/runs/{run}")))).await;
        assert_eq!(status, 200, "{body}");
        if ["done", "failed", "cancelled"].contains(&body["status"].as_str().unwrap()) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "the run is still {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn runs_work_in_the_background_and_keep_their_files(backend: Backend) {
    let Plant { app, engineer, pumps } = plant(backend).await;
    let start = yesterdays_flows(&app, &engineer, &pumps).await;
    let mut spec = daily("Line 1 daily", "/Plant/Line 1");
    spec["time_zone"] = json!("UTC");
    let made = post(&engineer, &app, "/api/v1/reports", spec.clone()).await;
    let id = made["id"].as_i64().unwrap();

    // A run of a given range: accepted at once, worked out in the background.
    let (status, run) = send(engineer.post(app.url(&format!(
        "/api/v1/reports/{id}/runs?from={start}&to={}",
        start + 2 * HOUR
    ))))
    .await;
    assert_eq!(status, 202, "{run}");
    assert!(
        ["queued", "running", "done"].contains(&run["status"].as_str().unwrap()),
        "{run}"
    );
    let run_id = run["id"].as_i64().unwrap();
    let done = finished_run(&engineer, &app, id, run_id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["formats"], json!(["pdf", "xlsx", "csv", "zip"]), "{done}");
    assert_eq!(done["from"], start);
    let (_, listed) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/runs")))).await;
    assert_eq!(listed["runs"][0]["id"], run_id, "{listed}");

    // Its files: the CSV has the range's rows, the archive holds all three.
    let base = format!("/api/v1/reports/{id}/runs/{run_id}");
    let csv = download(
        &engineer,
        &app,
        &format!("{base}/report.csv"),
        "text/csv; charset=utf-8",
    )
    .await;
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.contains("/Plant/Line 1/Pump 1,") && csv.contains(",15,10,20,2,10,20"),
        "{csv}"
    );
    let pdf = download(&engineer, &app, &format!("{base}/report.pdf"), "application/pdf").await;
    assert!(pdf.starts_with(b"%PDF-"));
    let zip = download(&engineer, &app, &format!("{base}/report.zip"), "application/zip").await;
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut names: Vec<String> = archive.file_names().map(|name| name.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["Line_1_daily.csv", "Line_1_daily.pdf", "Line_1_daily.xlsx"]);

    // The files hold what the engineer may see: a viewer granted one pump may list the run, not take its files.
    let (viewer, _) = app.api_client(Role::Viewer, vec![pumps[1]]).await;
    let (status, body) = send(viewer.get(app.url(&format!("{base}/report.pdf")))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(viewer.get(app.url(&base))).await;
    assert_eq!(status, 200, "{body}");
    // Nor cancel it; and a run that is over cannot be cancelled.
    let (status, body) = send(viewer.delete(app.url(&base))).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(engineer.delete(app.url(&base))).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/reports/{id}/runs/{}", run_id + 1000)))).await;
    assert_eq!(status, 404, "{body}");

    // A longer run (two weeks of hourly rows in ten tables) is cancelled while it works: it ends cancelled,
    // without files, however far it had got.
    let mut long = spec;
    long["name"] = json!("Long");
    long["range"] = json!({ "kind": "hours", "hours": 336 });
    long["sections"] = json!((0..10)
        .map(
            |i| json!({ "kind": "table", "title": format!("Part {i}"), "attributes": ["flow"],
            "aggregates": ["average"], "interval": "hour" })
        )
        .collect::<Vec<_>>());
    let made = post(&engineer, &app, "/api/v1/reports", long).await;
    let long_id = made["id"].as_i64().unwrap();
    let (status, run) = send(engineer.post(app.url(&format!("/api/v1/reports/{long_id}/runs")))).await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_i64().unwrap();
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/reports/{long_id}/runs/{run_id}")))).await;
    assert_eq!(status, 200, "cancelled before it was done: {body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let over = finished_run(&engineer, &app, long_id, run_id).await;
    assert_eq!(over["status"], "cancelled", "{over}");
    assert_eq!(over["formats"], json!([]), "{over}");
    let (status, _) = send(engineer.get(app.url(&format!("/api/v1/reports/{long_id}/runs/{run_id}/report.pdf")))).await;
    assert_eq!(status, 409);
}

//! The query API over real readings: resolution chosen from the range and points, CSV export, latest values,
//! and the errors and grants around them, on every metadata backend.

use app::auth::Role;
use serde_json::json;
use server::timeseries::{Reading, Value as Reading_, DAY_MS, HOUR_MS};

use crate::helpers::{send, spawn_app, Backend, TestApp};
use crate::{backend_tests, tdengine_tests};

backend_tests!(
    data_answers_raw_points_or_buckets_by_the_points_asked_for,
    csv_export_streams_every_raw_reading,
    latest_values_cover_every_series_attribute,
    bad_queries_get_clear_errors_and_grants_apply,
);
// The same against TDengine, the store of the HA form.
tdengine_tests!(
    data_answers_raw_points_or_buckets_by_the_points_asked_for,
    csv_export_streams_every_raw_reading,
    latest_values_cover_every_series_attribute,
    bad_queries_get_clear_errors_and_grants_apply,
);

struct Plant {
    app: TestApp,
    engineer: reqwest::Client,
    pump: i64,
    other_site: i64,
    t0: i64,
}

/// A pump with two hours of 1 Hz flow readings (value = seconds since t0), a series attribute without readings and
/// a static attribute; and a second site.
async fn plant(backend: Backend) -> Plant {
    let app = spawn_app(backend).await;
    let engineer = app.api_client(Role::Engineer, vec![]).await.0;
    let template = json!({ "name": "Pump", "attributes": [
        { "name": "flow", "value_type": "float", "unit": "m³/h" },
        { "name": "pressure", "value_type": "float", "unit": "bar" },
        { "name": "serial", "value_type": "string", "is_series": false }
    ]});
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let mut ids = Vec::new();
    for (name, parent, template) in [
        ("Site A", None, None),
        ("Pump 1", Some(0), Some("Pump")),
        ("Site B", None, None),
    ] {
        let parent_id = parent.map(|i: usize| ids[i]);
        let asset = json!({ "parent_id": parent_id, "name": name, "template": template });
        let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["asset"]["id"].as_i64().unwrap());
    }
    let t0 = (server::metadata::now_ms() - DAY_MS) / HOUR_MS * HOUR_MS;
    let series = app.timeseries.registry().ensure(ids[1], "flow").await.unwrap();
    let readings: Vec<Reading> = (0..7200)
        .map(|i| Reading {
            series,
            ts: t0 + i * 1000,
            value: Reading_::Float(i as f64),
        })
        .collect();
    app.timeseries.store().write(readings).await.unwrap();
    Plant {
        app,
        engineer,
        pump: ids[1],
        other_site: ids[2],
        t0,
    }
}

async fn data_answers_raw_points_or_buckets_by_the_points_asked_for(backend: Backend) {
    let Plant {
        app,
        engineer,
        pump,
        t0,
        ..
    } = plant(backend).await;
    let data = |from: i64, to: i64, points: usize| {
        app.url(&format!(
            "/api/v1/assets/{pump}/attributes/flow/data?from={from}&to={to}&points={points}"
        ))
    };
    // Ten minutes, up to 1,000 points: 600 raw readings fit.
    let (status, body) = send(engineer.get(data(t0, t0 + 600_000, 1000))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "raw");
    assert_eq!(body["unit"], "m³/h");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 600);
    assert_eq!(points[10], json!({ "ts": t0 + 10_000, "value": 10.0 }));
    // Two hours in 100 points: 2-minute buckets from the minute rollups (both stores).
    let (status, body) = send(engineer.get(data(t0, t0 + 2 * HOUR_MS, 100))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "minute");
    assert_eq!(body["bucket_ms"], 120_000);
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 7200);
    assert_eq!(buckets[1]["min"], 120.0);
    assert_eq!(buckets[1]["max"], 239.0);
    assert_eq!(buckets[1]["first"], 120.0);
    assert_eq!(buckets[1]["last"], 239.0);
    // A day in 10 points: 3-hour buckets from the hour rollups; RFC 3339 instants work too.
    let from = time::OffsetDateTime::from_unix_timestamp(t0 / 1000).unwrap();
    let to = from + time::Duration::days(1);
    let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, body) = send(engineer.get(app.url(&format!(
        "/api/v1/assets/{pump}/attributes/flow/data?from={}&to={}&points=10",
        rfc(from),
        rfc(to)
    ))))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolution"], "hour");
    assert_eq!(
        body["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        7200
    );
    // A series attribute without readings answers empty, not an error.
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/assets/{pump}/attributes/pressure/data")))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("points").is_none() && body.get("buckets").is_none(), "{body}");
}

async fn csv_export_streams_every_raw_reading(backend: Backend) {
    let Plant {
        app,
        engineer,
        pump,
        t0,
        ..
    } = plant(backend).await;
    let response = engineer
        .get(app.url(&format!(
            "/api/v1/assets/{pump}/attributes/flow/data.csv?from={t0}&to={}",
            t0 + DAY_MS
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".csv"));
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7201, "a header and every reading (more than one page)");
    assert_eq!(lines[0], "timestamp,value");
    let second = time::OffsetDateTime::from_unix_timestamp(t0 / 1000 + 1).unwrap();
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    assert_eq!(lines[2], format!("{},1", second.format(&format).unwrap()));
    assert!(lines[7200].ends_with(",7199"));
}

async fn latest_values_cover_every_series_attribute(backend: Backend) {
    let Plant {
        app,
        engineer,
        pump,
        t0,
        ..
    } = plant(backend).await;
    let (status, body) = send(engineer.get(app.url(&format!("/api/v1/assets/{pump}/latest")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["values"],
        json!([
            { "attribute": "flow", "unit": "m³/h", "ts": t0 + 7_199_000, "value": 7199.0 },
            { "attribute": "pressure", "unit": "bar", "ts": null, "value": null }
        ])
    );
}

async fn bad_queries_get_clear_errors_and_grants_apply(backend: Backend) {
    let Plant {
        app,
        engineer,
        pump,
        other_site,
        t0,
    } = plant(backend).await;
    let base = format!("/api/v1/assets/{pump}/attributes");
    for (path, status, needle) in [
        (format!("{base}/flow/data?from=yesterday"), 400, "`from`"),
        (format!("{base}/flow/data?from={t0}&to={t0}"), 400, "empty"),
        (format!("{base}/flow/data?points=0"), 400, "`points`"),
        (format!("{base}/flow/data?points=100000"), 400, "`points`"),
        (format!("{base}/flow/data?bogus=1"), 400, "bogus"),
        (format!("{base}/nope/data"), 404, "no attribute"),
        (format!("{base}/serial/data"), 422, "static"),
        (format!("{base}/serial/data.csv"), 422, "static"),
        ("/api/v1/assets/999999/latest".to_string(), 404, "no such asset"),
        ("/api/v1/assets/x/latest".to_string(), 400, ""),
    ] {
        let (got, body) = send(engineer.get(app.url(&path))).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    // A viewer granted the other site cannot tell the pump exists.
    let outsider = app.api_client(Role::Viewer, vec![other_site]).await.0;
    for path in [
        format!("{base}/flow/data"),
        format!("{base}/flow/data.csv"),
        format!("/api/v1/assets/{pump}/latest"),
    ] {
        let (got, body) = send(outsider.get(app.url(&path))).await;
        assert_eq!(got, 404, "{path}: {body}");
    }
    // Without credentials: 401.
    let (got, _) = send(app.client.get(app.url(&format!("{base}/flow/data")))).await;
    assert_eq!(got, 401);
}

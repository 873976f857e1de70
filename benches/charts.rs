//! The chart data API (issue 8's targets, embedded store: one series, ~1,000 points out, p99 ≤ 15 / 10 / 20 ms for
//! 1 day / 1 week / 1 year of 1 Hz data): a year of readings ending now is written straight into the store of a
//! real application (31.5M readings), then a signed-in client times `GET /api/v1/charts/trend` over loopback for
//! each range at a 1,000-pixel width, and the server's SVG and PNG of the day and the asset page with its chart.
//!
//! Run: `cargo bench -p server --bench charts` (about 2 minutes; results go in BENCHMARKS.md).
//! `GANTRY_BENCH_DAYS=8` writes only 8 days (no year row). `GANTRY_BENCH_STORE=tdengine` runs the same against
//! TDengine (`source scripts/lib.sh && ensure_tdengine` first; about 6 minutes): the readings go through Gantry's
//! TDengine store, then maintenance passes build the rollups before the requests are timed.

#[path = "common.rs"]
mod common;

use std::time::Instant;

use app::assets::{AttributeTemplate, Limits, NewAsset, TemplateSpec, ValueType};
use app::auth::Role;
use app::services::ModelService;
use server::{
    config::Config,
    startup::Application,
    timeseries::{Reading, Value, DAY_MS},
};

const REQUESTS: usize = 300;

fn main() {
    let days: i64 = std::env::var("GANTRY_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(365);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::ephemeral(data_dir.path());
        // Keep every tier for the whole run: a retention pass would otherwise start deleting the raw year.
        config.timeseries.retention.raw_days = 0;
        config.timeseries.retention.minute_days = 0;
        config.timeseries.retention.hour_days = 0;
        // Warnings (a lost connection, a failed pass) belong in the bench's output.
        config.log.level = "warn".into();
        server::telemetry::init(&config.log);
        let tdengine = std::env::var("GANTRY_BENCH_STORE").is_ok_and(|store| store == "tdengine");
        if tdengine {
            let dsn = std::env::var("GANTRY_TEST_TDENGINE_DSN")
                .expect("GANTRY_TEST_TDENGINE_DSN is not set: `source scripts/lib.sh && ensure_tdengine` first");
            config.timeseries.kind = server::config::TimeseriesKind::Tdengine;
            config.timeseries.tdengine.dsn = Some(secrecy::SecretString::from(dsn));
            config.timeseries.tdengine.database = format!("gantry_bench_charts_{}", std::process::id());
        }
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        common::create_user(&app, Role::Admin).await;
        let actor = app.accounts().cli_actor(common::USER).await.unwrap();
        let model = app.model();
        let spec = TemplateSpec {
            name: "Boiler".into(),
            base: None,
            description: String::new(),
            naming_pattern: None,
            categories: Vec::new(),
            attributes: vec![AttributeTemplate {
                name: "pressure".into(),
                value_type: ValueType::Float,
                unit: Some("bar".into()),
                description: String::new(),
                limits: Limits {
                    lo: Some(1.0),
                    hi: Some(8.0),
                    hihi: Some(10.0),
                    ..Limits::default()
                },
                display_min: None,
                display_max: None,
                is_series: true,
                retention_tier: None,
                alarms: Vec::new(),
            }],
        };
        model.create_template(&actor, spec).await.unwrap();
        let plant = model
            .create_asset(
                &actor,
                NewAsset {
                    parent_id: None,
                    name: "Plant".into(),
                    template: None,
                    description: String::new(),
                    labels: Vec::new(),
                },
            )
            .await
            .unwrap();
        let boiler = model
            .create_asset(
                &actor,
                NewAsset {
                    parent_id: Some(plant.summary.id),
                    name: "Boiler 1".into(),
                    template: Some("Boiler".into()),
                    description: String::new(),
                    labels: Vec::new(),
                },
            )
            .await
            .unwrap();
        let timeseries = app.timeseries();
        let series = timeseries
            .registry()
            .ensure(boiler.summary.id, "pressure")
            .await
            .unwrap();
        let store = timeseries.store();
        let end = server::metadata::now_ms() / 1000 * 1000;
        let start = end - days * DAY_MS;
        let started = Instant::now();
        for day in 0..days {
            let readings: Vec<Reading> = (0..86_400)
                .map(|second| {
                    let ts = start + day * DAY_MS + second * 1000;
                    let value = 5.0 + 2.0 * ((ts / 1000) as f64 / 43_200.0 * std::f64::consts::PI).sin() + noise(ts);
                    Reading {
                        series,
                        ts,
                        value: Value::Float((value * 100.0).round() / 100.0),
                    }
                })
                .collect();
            for chunk in readings.chunks(10_000) {
                store.write(chunk.to_vec()).await.unwrap();
            }
        }
        store.flush().await.unwrap();
        eprintln!("wrote {} readings in {:.1?}", days * 86_400, started.elapsed());
        let started = Instant::now();
        while !store.maintain().await.unwrap() {}
        eprintln!("maintenance caught up in {:.1?}", started.elapsed());
        if tdengine {
            // The marks of the last writes are taken once they settle: until then their hours read raw readings.
            tokio::time::sleep(std::time::Duration::from_secs(31)).await;
            store.maintain().await.unwrap();
        }

        tokio::spawn(app.run_until_stopped());
        let client = common::signed_in_client(&base, common::USER, common::PASSWORD).await;
        let s = "s=%2FPlant%2FBoiler%201%7Cpressure";
        println!(
            "{days} days of 1 Hz readings in one series ({} readings), ending now, {} store\n",
            days * 86_400,
            store.kind()
        );
        println!("| request | n | p50 | p95 | p99 | max | answer |");
        println!("|---|---|---|---|---|---|---|");
        let mut ranges = vec![("1 day", DAY_MS), ("1 week", 7 * DAY_MS)];
        if days >= 365 {
            ranges.push(("1 year", 365 * DAY_MS));
        }
        for (label, span) in ranges {
            let url = format!("{base}/api/v1/charts/trend?{s}&from={}&to={end}&width=1000", end - span);
            let answer: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            let data = &answer["series"][0]["data"];
            let out = data["buckets"]
                .as_array()
                .or(data["points"].as_array())
                .map_or(0, Vec::len);
            let what = format!("{out} values, {} ms buckets, {}", data["bucket_ms"], data["resolution"]);
            let (latencies, _) = common::measure(&client, &url, 20, REQUESTS).await;
            println!(
                "| trend JSON, {label}, width 1000 | {REQUESTS} | {} | {what} |",
                common::percentile_cells(&latencies)
            );
        }
        let day = format!("{s}&from={}&to={end}&width=900&height=320", end - DAY_MS);
        for (label, path) in [
            ("trend SVG, 1 day, 900×320", format!("/api/v1/charts/trend.svg?{day}")),
            ("trend PNG, 1 day, 900×320", format!("/api/v1/charts/trend.png?{day}")),
            (
                "asset page (HTML, chart as picture)",
                format!("/assets/{}", boiler.summary.id),
            ),
        ] {
            let (latencies, _) = common::measure(&client, &format!("{base}{path}"), 10, 100).await;
            println!("| {label} | 100 | {} | |", common::percentile_cells(&latencies));
        }
        if tdengine {
            let (dsn, database) = (
                std::env::var("GANTRY_TEST_TDENGINE_DSN").unwrap(),
                format!("gantry_bench_charts_{}", std::process::id()),
            );
            let store = server::timeseries::tdengine::TdengineStore::connect_for_tests(&dsn, &database);
            store.await.unwrap().drop_database_blocking();
        }
    });
}

/// Sensor-like noise, deterministic per instant.
fn noise(ts: i64) -> f64 {
    let x = (ts / 1000).wrapping_mul(2_654_435_761) % 1000;
    (x as f64 / 1000.0 - 0.5) * 0.5
}

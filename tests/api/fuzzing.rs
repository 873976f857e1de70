//! Fuzzing on stable Rust, bounded in time: proptest mutates known-good inputs (and makes up new ones) for every
//! parser a stranger can reach — line protocol, the JSON ingest body, a chart's query string (then drawn), and
//! the model file importer (through the real server, as a dry run). Each must answer a value or a typed error:
//! never a panic, never a 5xx. The cargo-fuzz targets in `fuzz/` drive the same entry points for longer runs.

use proptest::{prelude::*, test_runner::TestRunner};

use app::auth::Role;
use server::{
    charts::{render, routes::ChartParams},
    ingest::parse::{json, line_protocol, Precision},
};

/// A seed with a few random edits: bytes replaced, inserted or removed, or a stretch repeated.
fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    let edit = (0usize..10_000, 0u8..4, any::<u8>());
    let edits = prop::collection::vec(edit, 0..8);
    let made_up = prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let from_seed = (prop::sample::select(seeds), edits).prop_map(|(seed, edits)| {
        let mut bytes = seed.as_bytes().to_vec();
        for (at, op, byte) in edits {
            let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
            match op {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => {
                    let stretch: Vec<u8> = bytes[at..].iter().take(16).copied().collect();
                    for _ in 0..(byte % 8) {
                        bytes.splice(at..at, stretch.iter().copied());
                    }
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    prop_oneof![4 => from_seed, 1 => made_up]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

const LINES: &[&str] = &[
    "pump,device=p1,site=a flow=1.5,on=true,count=3i 1700000000000000000\n",
    "weather,location=us-midwest temperature=82 1465839830100400200",
    "m,tag\\ key=va\\,lue field=\"text \\\"q\\\"\",u=3u -1\nm f=-.5e3 0",
];
const JSON: &[&str] = &[
    r#"{"device":"d","readings":[{"field":"flow","value":1.5,"ts":1700000000000},{"field":"on","value":true}]}"#,
    r#"{"devices":[{"device":"a","readings":[{"field":"x","value":"NaN","ts":"2026-01-01T00:00:00Z"}]}]}"#,
];
const CHART_QUERIES: &[&str] = &[
    "s=%2FPlant%2FPump%201%7CFlow&range=24h&width=900&height=320&utc_offset=60",
    "s=/a|b&s=/c|d&from=0&to=7258118400000&width=4000",
    "s=/a|b&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B01:00&width=100",
];
const MODEL_FILES: &[&str] = &[
    "schema_version: 1\ntemplates:\n- name: Pump\n  attributes:\n  - name: flow\n    value_type: float\n    unit: m³/h\n    limits:\n      hi: 5.0\n    alarms:\n    - name: High\n      condition:\n        type: limit\n        level: hi\n      severity: high\nassets:\n- path: /Site\n- path: /Site/Pump 1\n  template: Pump\n",
    "schema_version: 1\ntemplates: []\nassets:\n- path: /A\n  labels: [x]\n  description: \"d\"\ndashboards:\n- name: D\n  shared: true\n  panels: []\n",
];

#[test]
fn ingest_parsers_answer_items_or_errors_for_any_input() {
    let strategy = (mutated(LINES), mutated(JSON));
    runner(4_000)
        .run(&strategy, |(lines, body)| {
            for precision in [Precision::Nanoseconds, Precision::Milliseconds, Precision::Hours] {
                let _ = line_protocol(&lines, precision);
            }
            let _ = json(body.as_bytes());
            Ok(())
        })
        .unwrap();
}

#[test]
fn chart_queries_parse_and_draw_within_bounds_for_any_input() {
    runner(2_000)
        .run(&mutated(CHART_QUERIES), |query| {
            let Ok(params) = ChartParams::parse(Some(&query), 1_767_225_600_000) else {
                return Ok(());
            };
            if params.query().validate().is_err() {
                return Ok(());
            }
            let trend = app::charts::Trend {
                from: params.from,
                to: params.to,
                series: Vec::new(),
                alarms: Vec::new(),
            };
            let svg = render::svg(&trend, params.width, params.height, &params.draw_options());
            prop_assert!(svg.is_ok_and(|svg| svg.len() < 2_000_000));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_model_importer_never_fails_with_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, engineer) = runtime.block_on(async {
        let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
        let engineer = app.api_client(Role::Engineer, vec![]).await.0;
        (app, engineer)
    });
    let url = app.url("/api/v1/model/import?dry_run=true");
    runner(1_000)
        .run(&mutated(MODEL_FILES), |file| {
            let status = runtime.block_on(async {
                engineer
                    .post(&url)
                    .header("content-type", "application/yaml")
                    .body(file.clone())
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
            prop_assert!(!status.is_server_error(), "{status} for {file:?}");
            Ok(())
        })
        .unwrap();
    drop(app);
}

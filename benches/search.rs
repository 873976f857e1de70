//! Search at plant-group scale (issue 17's targets): seeds N assets (default 1,000,000; 100 sites × 100 areas ×
//! 100 machines of three templates with 10 time-series attributes each) straight into SQLite, and one current
//! value per machine into the embedded store; then measures
//! - the index built from scratch (assets/s; target ≥ 50,000), its size on disk and the process's memory;
//! - each query kind through the REST API, as a signed-in client (p95 target ≤ 5 ms): words, a prefix, a typo,
//!   filters, a facet narrowing, an attribute condition;
//! - a change until searchable, at 1,000 changes/s (p99 target ≤ 1 s).
//!
//! Run: `RUST_LOG=warn,server::search=info cargo bench -p server --bench search` (`GANTRY_BENCH_SEARCH_ASSETS=100000`
//! for a quicker run); results go in BENCHMARKS.md.

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use app::assets::{AttributeTemplate, Limits, TemplateSpec, ValueType};
use app::auth::Role;
use app::services::ModelService;
use server::{config::Config, startup::Application, timeseries::Reading};

const REQUESTS: usize = 300;
/// Sites and areas per site; machines fill the rest.
const SITES: usize = 100;
const AREAS: usize = 100;
const KINDS: [&str; 3] = ["Pump", "Compressor", "Fan"];
const SIDES: [&str; 4] = ["North", "South", "East", "West"];
/// The rate and length of the change run.
const CHANGES_PER_SECOND: u64 = 1_000;
const CHANGE_SECONDS: u64 = 10;
/// Every this many changes one is searched for, every [`PROBE_PERIOD`] until found.
const PROBE_EVERY: usize = 100;
const PROBE_PERIOD: Duration = Duration::from_millis(20);
/// A change not searchable after this long is counted as missing.
const PROBE_PATIENCE: Duration = Duration::from_secs(30);

fn attributes(names: &[(&str, &str)]) -> Vec<AttributeTemplate> {
    names
        .iter()
        .map(|(name, unit)| AttributeTemplate {
            name: (*name).into(),
            value_type: ValueType::Float,
            unit: Some((*unit).into()),
            description: String::new(),
            limits: Limits::default(),
            display_min: None,
            display_max: None,
            is_series: true,
            retention_tier: None,
            alarms: Vec::new(),
        })
        .collect()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>()
        })
        .unwrap_or(0) as f64
        / 1_048_576.0
}

fn main() {
    // A failed assertion ends the benchmark (the runtime would otherwise wait on the index's threads).
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
    // Done: the index's merge threads need not finish.
    std::process::exit(0);
}

async fn run() {
    let total: usize = std::env::var("GANTRY_BENCH_SEARCH_ASSETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let machines_per_area = (total / (SITES * AREAS)).max(1);
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config::ephemeral(data_dir.path());
    // The build's phases are in its log line (run with RUST_LOG=warn,server::search=info to see them).
    server::telemetry::init(&config.log);
    let app = Application::build(config.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    common::create_user(&app, Role::Admin).await;
    let actor = app.accounts().cli_actor(common::USER).await.unwrap();
    let model = app.model();
    let common_attributes = [
        ("outlet temperature", "°C"),
        ("inlet temperature", "°C"),
        ("speed", "rpm"),
        ("vibration", "mm/s"),
        ("power", "kW"),
    ];
    model
        .create_template(
            &actor,
            TemplateSpec {
                name: "Machine".into(),
                base: None,
                description: String::new(),
                naming_pattern: None,
                categories: vec!["rotating".into()],
                attributes: attributes(&common_attributes),
            },
        )
        .await
        .unwrap();
    for (kind, category) in KINDS.iter().zip(["utilities", "process", "ventilation"]) {
        let own = [
            ("discharge pressure", "bar"),
            ("flow", "m³/h"),
            ("current", "A"),
            ("running hours", "h"),
            ("bearing temperature", "°C"),
        ];
        model
            .create_template(
                &actor,
                TemplateSpec {
                    name: (*kind).into(),
                    base: Some("Machine".into()),
                    description: format!("A {kind} of the plant"),
                    naming_pattern: None,
                    categories: vec![category.into()],
                    attributes: attributes(&own),
                },
            )
            .await
            .unwrap();
    }
    let templates = app.model().list_templates(&actor).await.unwrap();
    let template_id = |name: &str| templates.iter().find(|t| t.spec.name == name).unwrap().id;
    let kind_ids: Vec<i64> = KINDS.iter().map(|k| template_id(k)).collect();

    // Seed straight into SQLite, in big transactions: the model store inserts one asset per commit (7,800/s), which
    // would make this benchmark about seeding.
    let started = Instant::now();
    let pool = sqlx::sqlite::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.path().join("gantry.db"))
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
    )
    .await
    .unwrap();
    let now = server::metadata::now_ms();
    let mut next_id: i64 = 1_000;
    let mut machines: Vec<(i64, usize)> = Vec::with_capacity(total);
    let mut target = String::new();
    let mut rows: Vec<(i64, Option<i64>, String, Option<i64>)> = Vec::with_capacity(total + SITES * (AREAS + 1));
    for s in 0..SITES {
        let site = next_id;
        next_id += 1;
        rows.push((site, None, format!("{} Site {s:02}", SIDES[s % 4]), None));
        for a in 0..AREAS {
            let area = next_id;
            next_id += 1;
            rows.push((area, Some(site), format!("Area {a:02}"), None));
            for m in 0..machines_per_area {
                let id = next_id;
                next_id += 1;
                let kind = (s + a + m) % KINDS.len();
                let name = format!("{} {:05}", KINDS[kind], (s * AREAS + a) * machines_per_area + m);
                if machines.len() == total / 2 {
                    // The machine the word query looks for: its name and its site's side.
                    target = format!("{} {}", name.to_lowercase(), SIDES[s % 4].to_lowercase());
                }
                rows.push((id, Some(area), name, Some(kind_ids[kind])));
                machines.push((id, kind));
            }
        }
    }
    for chunk in rows.chunks(50_000) {
        let mut tx = pool.begin().await.unwrap();
        for (id, parent, name, template) in chunk {
            sqlx::query(
                "INSERT INTO assets (id, parent_id, name, template_id, labels, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, '[\"bench\"]', ?, ?)",
            )
            .bind(id)
            .bind(parent)
            .bind(name)
            .bind(template)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // One current value per machine: its outlet temperature, 20–120 °C.
    let mut tx = pool.begin().await.unwrap();
    for (i, (id, _)) in machines.iter().enumerate() {
        sqlx::query("INSERT INTO series (id, asset_id, attribute, created_at) VALUES (?, ?, 'outlet temperature', ?)")
            .bind(i as i64 + 1)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        if i % 50_000 == 49_999 {
            tx.commit().await.unwrap();
            tx = pool.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    let store = app.timeseries().store();
    for chunk in (0..machines.len()).collect::<Vec<_>>().chunks(10_000) {
        let batch = chunk
            .iter()
            .map(|i| Reading {
                series: *i as i64 + 1,
                ts: now - 60_000,
                value: server::timeseries::Value::Float(20.0 + (*i % 1_000) as f64 / 10.0),
            })
            .collect();
        store.write(batch).await.unwrap();
    }
    let seeding = started.elapsed();
    let assets = rows.len();
    eprintln!("seeded {assets} assets and {} values in {seeding:.1?}", machines.len());

    // Built from scratch, as at start or after `gantry search reindex`.
    let search = app.search();
    let rss_before = rss_mib();
    let started = Instant::now();
    let documents = search.rebuild().await.unwrap();
    let build = started.elapsed();
    let rss_after = rss_mib();
    let index_size = dir_mib(&data_dir.path().join("search"));

    tokio::spawn(app.run_until_stopped());
    let client = common::signed_in_client(&base, common::USER, common::PASSWORD).await;

    println!(
        "{assets} assets ({} machines of 3 templates with 10 attributes each, one current value each); \
         seeded in {:.1} s",
        machines.len(),
        seeding.as_secs_f64()
    );
    println!();
    println!(
        "Index built from scratch: {documents} documents in {:.1} s = **{:.0} assets/s** (target ≥ 50,000); \
         index {index_size:.0} MiB on disk; process memory {rss_before:.0} MiB before the build, \
         {rss_after:.0} MiB after.",
        build.as_secs_f64(),
        assets as f64 / build.as_secs_f64()
    );
    println!();
    println!("| query kind | q | total | n | p50 | p95 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    let cases = [
        ("words", target.clone()),
        ("prefix", "compr 0042".to_string()),
        ("typo", "compresor 00421".to_string()),
        (
            "filter",
            "template:Machine under:\"/North Site 04/Area 07\"".to_string(),
        ),
        ("facet narrowing", "category:ventilation label:bench".to_string()),
        ("attribute condition", "\"outlet temperature\" > 119.5 °C".to_string()),
    ];
    for (kind, q) in cases {
        let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/search"), &[("q", q.as_str())]).unwrap();
        let answer: serde_json::Value = client.get(url.clone()).send().await.unwrap().json().await.unwrap();
        let found = answer["total"].as_u64().unwrap_or_else(|| panic!("{q}: {answer}"));
        assert!(found > 0, "{q} found nothing: {answer}");
        let (latencies, _) = common::measure(&client, url.as_str(), 20, REQUESTS).await;
        println!(
            "| {kind} | `{}` | {found} | {REQUESTS} | {} |",
            q.replace('|', "\\|"),
            common::percentile_cells(&latencies)
        );
    }

    // Renames at 1,000/s, written to the metadata database and handed to the index as the change feed hands
    // them (the REST API's own write rate on SQLite is its own figure); every 100th is searched for through the
    // REST API until found.
    let database = server::metadata::connect(&config.database, &config.data_dir)
        .await
        .unwrap();
    let models = database.model_store();
    let interval = Duration::from_micros(1_000_000 / CHANGES_PER_SECOND);
    let count = (CHANGES_PER_SECOND * CHANGE_SECONDS) as usize;
    let started = Instant::now();
    // One prober, one search at a time (a poller per change would load the instance more than the changes do):
    // it takes the probed changes in order and searches for each until found.
    let (probed, mut to_probe) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let prober = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let (mut latencies, mut missing) = (Vec::new(), 0usize);
            while let Some((k, written)) = to_probe.recv().await {
                let q = format!("renamed {k:05}x");
                let query = [("q", q.as_str()), ("facets", "false")];
                let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/search"), &query).unwrap();
                // Its neighbours match too (one typo away); the renamed asset must be among the hits.
                let name = format!("Renamed {k:05}x");
                loop {
                    let answer: serde_json::Value = client.get(url.clone()).send().await.unwrap().json().await.unwrap();
                    let found = answer["hits"]
                        .as_array()
                        .is_some_and(|hits| hits.iter().any(|hit| hit["name"] == name.as_str()));
                    if found {
                        latencies.push(written.elapsed());
                        break;
                    }
                    if written.elapsed() > PROBE_PATIENCE {
                        missing += 1;
                        break;
                    }
                    tokio::time::sleep(PROBE_PERIOD).await;
                }
            }
            (latencies, missing)
        })
    };
    for k in 0..count {
        let due = started + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let (id, _) = machines[(k * 7_919) % machines.len()];
        let mut row = models.asset_by_id(id).await.unwrap().unwrap();
        row.name = format!("Renamed {k:05}x");
        models
            .update_asset(&row, None, server::metadata::now_ms())
            .await
            .unwrap();
        search.changed(&[server::changes::Change {
            id: k as i64,
            action: "asset.update".into(),
            target_type: "asset".into(),
            target_id: Some(id.to_string()),
        }]);
        if k % PROBE_EVERY == 0 {
            probed.send((k, Instant::now())).unwrap();
        }
    }
    let sent = started.elapsed();
    drop(probed);
    let (mut latencies, missing) = prober.await.unwrap();
    latencies.sort();
    println!();
    if latencies.is_empty() {
        latencies.push(PROBE_PATIENCE);
    }
    println!(
        "Change to searchable: {count} renames at {CHANGES_PER_SECOND}/s offered, written in {:.1} s ({:.0}/s); \
         every 100th searched for (one search at a time, every 20 ms): {missing} of {} not searchable within {} s; \
         of the others \
         | n | p50 | p95 | p99 | max | = | {} | {} |",
        sent.as_secs_f64(),
        count as f64 / sent.as_secs_f64(),
        missing + latencies.len(),
        PROBE_PATIENCE.as_secs(),
        latencies.len(),
        common::percentile_cells(&latencies)
    );
    println!("Process memory after the run: {:.0} MiB.", rss_mib());
}

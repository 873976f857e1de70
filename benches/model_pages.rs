//! Model pages with 100k assets (issue 4's target: tree page and asset page ≤ 50 ms server time): seeds
//! 10 sites × 10 areas × 1,000 pumps from a template through the model store, then times, for a signed-in user
//! over loopback, the explorer's top level, an area page listing 1,000 children, an asset page with inherited
//! attributes, and the REST listing of those 1,000 children.
//!
//! Run: `cargo bench -p server --bench model_pages` (results go in BENCHMARKS.md).

#[path = "common.rs"]
mod common;

use std::time::Instant;

use app::assets::{AttributeTemplate, Limits, TemplateSpec, ValueType};
use app::auth::Role;
use app::services::ModelService;
use server::{config::Config, metadata, startup::Application};

const SITES: usize = 10;
const AREAS: usize = 10;
const MACHINES: usize = 1_000;
const REQUESTS: usize = 300;

fn attribute(name: &str, unit: &str, hi: f64) -> AttributeTemplate {
    AttributeTemplate {
        name: name.into(),
        value_type: ValueType::Float,
        unit: Some(unit.into()),
        description: String::new(),
        limits: Limits {
            hi: Some(hi),
            ..Limits::default()
        },
        display_min: None,
        display_max: None,
        is_series: true,
        retention_tier: None,
        alarms: Vec::new(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral(data_dir.path());
        let app = Application::build(config.clone()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        common::create_user(&app, Role::Admin).await;
        let actor = app.accounts().cli_actor(common::USER).await.unwrap();
        let model = app.model();
        for (name, base_name) in [("Machine", None), ("Pump", Some("Machine"))] {
            let spec = TemplateSpec {
                name: name.into(),
                base: base_name.map(Into::into),
                description: String::new(),
                naming_pattern: None,
                categories: Vec::new(),
                attributes: vec![
                    attribute(&format!("{name} speed"), "rpm", 3000.0),
                    attribute(&format!("{name} flow"), "m³/h", 110.0),
                ],
            };
            model.create_template(&actor, spec).await.unwrap();
        }

        // Seed through the store (one insert per asset, as imports will), timing it.
        let database = metadata::connect(&config.database, &config.data_dir).await.unwrap();
        let store = database.model_store();
        let pump_template = store.template_by_name("Pump").await.unwrap().unwrap().id;
        let started = Instant::now();
        let mut area_ids = Vec::new();
        let mut machine_ids = Vec::new();
        let now = metadata::now_ms();
        let row = |parent_id, name: String, template_id| server::assets::AssetRow {
            id: 0,
            parent_id,
            name,
            template_id,
            description: String::new(),
            labels: Vec::new(),
            child_count: 0,
            version: 0,
        };
        for s in 1..=SITES {
            let site = store
                .insert_asset(&row(None, format!("Site {s}"), None), now)
                .await
                .unwrap();
            for a in 1..=AREAS {
                let area = store
                    .insert_asset(&row(Some(site), format!("Area {a}"), None), now)
                    .await
                    .unwrap();
                area_ids.push(area);
                for m in 1..=MACHINES {
                    let id = store
                        .insert_asset(&row(Some(area), format!("Pump {m:04}"), Some(pump_template)), now)
                        .await
                        .unwrap();
                    machine_ids.push(id);
                }
            }
        }
        let total = SITES + SITES * AREAS + SITES * AREAS * MACHINES;
        let seeding = started.elapsed();
        eprintln!(
            "seeded {total} assets in {seeding:.1?} ({:.0} assets/s)",
            total as f64 / seeding.as_secs_f64()
        );

        tokio::spawn(app.run_until_stopped());
        let client = common::signed_in_client(&base, common::USER, common::PASSWORD).await;

        let area = area_ids[area_ids.len() / 2];
        let machine = machine_ids[machine_ids.len() / 2];
        println!(
            "{total} assets; seeding {:.1} s ({:.0} assets/s)",
            seeding.as_secs_f64(),
            total as f64 / seeding.as_secs_f64()
        );
        println!();
        println!("| request | n | p50 | p95 | p99 | max |");
        println!("|---|---|---|---|---|---|");
        let cases = [
            ("explorer top level (page)", "/assets".to_string()),
            ("area page with 1,000 children", format!("/assets/{area}")),
            ("asset page (inherited attributes)", format!("/assets/{machine}")),
            ("REST: 1,000 children", format!("/api/v1/assets?parent={area}")),
            ("REST: asset", format!("/api/v1/assets/{machine}")),
        ];
        for (label, path) in cases {
            let (latencies, _) = common::measure(&client, &format!("{base}{path}"), 20, REQUESTS).await;
            println!(
                "| GET {path} ({label}) | {REQUESTS} | {} |",
                common::percentile_cells(&latencies)
            );
        }
    });
}

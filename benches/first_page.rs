//! First page, server render (brief §5: ≤ 50 ms): latency of `GET /` for a signed-in user against a real Gantry on
//! the embedded defaults, over loopback, sequential requests after a warm-up. Every request passes the whole stack:
//! session lookup, identity, CSRF and security-header layers, the render. Also `/healthz` as the floor.
//!
//! Run: `cargo bench -p server --bench first_page` (results go in BENCHMARKS.md).

#[path = "common.rs"]
mod common;

use app::auth::Role;
use server::{config::Config, startup::Application};

const WARM_UP: usize = 200;
const REQUESTS: usize = 2_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().unwrap();
        let app = Application::build(Config::ephemeral(data_dir.path())).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        common::create_user(&app, Role::Viewer).await;
        tokio::spawn(app.run_until_stopped());
        let client = common::signed_in_client(&base, common::USER, common::PASSWORD).await;

        println!("| request | n | p50 | p95 | p99 | max | requests/s (1 client) |");
        println!("|---|---|---|---|---|---|---|");
        for path in ["/", "/assets", "/healthz"] {
            let (latencies, total) = common::measure(&client, &format!("{base}{path}"), WARM_UP, REQUESTS).await;
            println!(
                "| GET {path} | {REQUESTS} | {} | {:.0} |",
                common::percentile_cells(&latencies),
                REQUESTS as f64 / total.as_secs_f64()
            );
        }
    });
}

//! First page, server render (brief §5: ≤ 50 ms): latency of `GET /` for a signed-in user against a real Gantry on
//! the embedded defaults, over loopback, sequential requests after a warm-up. Every request passes the whole stack:
//! session lookup, identity, CSRF and security-header layers, the render. Also `/healthz` as the floor.
//!
//! Run: `cargo bench -p server --bench first_page` (results go in BENCHMARKS.md).

use std::time::{Duration, Instant};

use app::auth::{NewUser, Role, CSRF_HEADER};
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
        let password = "benchmark password 1";
        let user = NewUser {
            username: "bench".into(),
            display_name: "Bench".into(),
            password: password.into(),
            role: Role::Viewer,
            grants: Vec::new(),
        };
        app.accounts().create_user_from_cli(user).await.unwrap();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = client
            .post(format!("{base}/api/v1/auth/login"))
            .header("origin", &base)
            .header(CSRF_HEADER, "1")
            .json(&serde_json::json!({ "username": "bench", "password": password }))
            .send()
            .await
            .unwrap();
        assert!(login.status().is_success(), "sign-in failed: {}", login.status());

        println!("| request | n | p50 | p95 | p99 | max | requests/s (1 client) |");
        println!("|---|---|---|---|---|---|---|");
        for path in ["/", "/assets", "/healthz"] {
            let url = format!("{base}{path}");
            for _ in 0..WARM_UP {
                fetch(&client, &url).await;
            }
            let mut latencies = Vec::with_capacity(REQUESTS);
            let started = Instant::now();
            for _ in 0..REQUESTS {
                let t = Instant::now();
                fetch(&client, &url).await;
                latencies.push(t.elapsed());
            }
            let total = started.elapsed();
            latencies.sort();
            let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
            println!(
                "| GET {path} | {REQUESTS} | {} | {} | {} | {} | {:.0} |",
                ms(pct(0.50)),
                ms(pct(0.95)),
                ms(pct(0.99)),
                ms(*latencies.last().unwrap()),
                REQUESTS as f64 / total.as_secs_f64()
            );
        }
    });
}

async fn fetch(client: &reqwest::Client, url: &str) {
    let response = client.get(url).send().await.unwrap();
    // Redirects are not followed: a 303 to the sign-in page would be measuring the wrong page.
    assert!(response.status().is_success(), "{url}: {}", response.status());
    // The whole body, as a browser would wait for it.
    response.bytes().await.unwrap();
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

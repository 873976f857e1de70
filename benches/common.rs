//! What the HTTP benchmarks share: a signed-in client, timed requests and the table row they print.

use std::time::{Duration, Instant};

use app::auth::{NewUser, Role, CSRF_HEADER};
use server::startup::Application;

/// The benchmarks' user name and password.
pub const USER: &str = "bench";
pub const PASSWORD: &str = "benchmark password 1";

/// Creates the benchmark user with `role` in `app`.
pub async fn create_user(app: &Application, role: Role) {
    let user = NewUser {
        username: USER.into(),
        display_name: "Bench".into(),
        password: PASSWORD.into(),
        role,
        grants: Vec::new(),
        whole_plant: None,
    };
    app.accounts().create_user_from_cli(user).await.unwrap();
}

/// A client signed in as `username`, keeping the session cookie and never following redirects (a redirect to the
/// sign-in page must fail the benchmark, not pass for a page).
pub async fn signed_in_client(base: &str, username: &str, password: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("origin", base)
        .header(CSRF_HEADER, "1")
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success(), "sign-in failed: {}", login.status());
    client
}

async fn fetch(client: &reqwest::Client, url: &str) {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    // The whole body, as a browser would wait for it.
    response.bytes().await.unwrap();
}

/// Latencies of `requests` sequential GETs after `warm_up` untimed ones, sorted, and the total time.
pub async fn measure(
    client: &reqwest::Client,
    url: &str,
    warm_up: usize,
    requests: usize,
) -> (Vec<Duration>, Duration) {
    for _ in 0..warm_up {
        fetch(client, url).await;
    }
    let mut latencies = Vec::with_capacity(requests);
    let started = Instant::now();
    for _ in 0..requests {
        let t = Instant::now();
        fetch(client, url).await;
        latencies.push(t.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    (latencies, total)
}

/// `| p50 | p95 | p99 | max |` cells of sorted latencies.
pub fn percentile_cells(latencies: &[Duration]) -> String {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    format!(
        "{} | {} | {} | {}",
        ms(pct(0.50)),
        ms(pct(0.95)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    )
}

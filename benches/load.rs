//! The HTTP load generator the ingest and alarm benchmarks share: a real `gantry serve` (release build, embedded
//! store) started as a child process with 100 devices × 10 float attributes, sensor-like readings, and open- or
//! closed-loop load from keep-alive connections.

// Each benchmark that includes this module uses part of it.
#![allow(dead_code)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

pub const DEVICES: u64 = 100;
pub const FIELDS: u64 = 10;
/// Lines per request: 10 lines × 10 fields = 100 readings.
pub const LINES: u64 = 10;
/// Two days ago, to the second: inside Gantry's default retention, not in the future.
pub fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        (now - 2 * 86_400_000) / 1000 * 1000
    })
}

pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sensor-like value with two decimals.
pub fn value(device: u64, field: u64, second: u64) -> f64 {
    let mut x = (device * 31 + field).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ second.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    let noise = (x % 1000) as f64 / 1000.0 - 0.5;
    let cycle = 10.0 * ((second as f64) / 3600.0 + field as f64).sin();
    ((50.0 + field as f64 + cycle + noise) * 100.0).round() / 100.0
}

/// Request `n`: one device, ten consecutive seconds, ten fields each.
pub fn request_lines(n: u64) -> String {
    let device = n % DEVICES;
    let first_second = (n / DEVICES) * LINES;
    let mut body = String::with_capacity(1200);
    for s in first_second..first_second + LINES {
        body.push_str(&format!("dev{device}"));
        for f in 0..FIELDS {
            body.push_str(if f == 0 { " " } else { "," });
            body.push_str(&format!("f{f}={}", value(device, f, s)));
        }
        body.push_str(&format!(" {}\n", t0() + s as i64 * 1000));
    }
    body
}

pub fn request_json(n: u64) -> String {
    let device = n % DEVICES;
    let first_second = (n / DEVICES) * LINES;
    let mut readings = Vec::with_capacity(100);
    for s in first_second..first_second + LINES {
        for f in 0..FIELDS {
            readings.push(format!(
                r#"{{"field":"f{f}","value":{},"ts":{}}}"#,
                value(device, f, s),
                t0() + s as i64 * 1000
            ));
        }
    }
    format!(r#"{{"device":"dev{device}","readings":[{}]}}"#, readings.join(","))
}

pub struct Gantry {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Gantry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Gantry with the bench plant; `with_alarms` gives every attribute Hi and HiHi limit rules (with a
/// deadband), at limits the readings cross now and then.
pub async fn start_gantry(with_alarms: bool) -> Gantry {
    start_gantry_with(with_alarms, &[]).await
}

/// As [`start_gantry`], with extra configuration for `gantry serve` (`GANTRY__…` variables).
pub async fn start_gantry_with(with_alarms: bool, env: &[(&str, &str)]) -> Gantry {
    let dir = tempfile::tempdir().unwrap();
    let rules = if with_alarms {
        "    limits: { hi: 59.0, hihi: 64.0 }\n    alarms:\n\
         \x20   - name: High\n      condition: { type: limit, level: hi, deadband: 1.0 }\n      severity: high\n\
         \x20   - name: Very high\n      condition: { type: limit, level: hihi, deadband: 1.0 }\n      severity: critical\n"
    } else {
        ""
    };
    let attributes: String = (0..FIELDS)
        .map(|f| format!("  - name: f{f}\n    value_type: float\n{rules}"))
        .collect();
    let assets: String = (0..DEVICES)
        .map(|d| format!("- path: /Bench/Meter {d}\n  template: Meter\n"))
        .collect();
    let model = dir.path().join("model.yaml");
    std::fs::write(
        &model,
        format!("schema_version: 1\ntemplates:\n- name: Meter\n  attributes:\n{attributes}assets:\n- path: /Bench\n{assets}"),
    )
    .unwrap();
    run(dir.path(), &["model", "import", model.to_str().unwrap()], &[]);
    run(
        dir.path(),
        &["user", "create", "bench", "--admin"],
        &[("GANTRY_PASSWORD", "a long bench password")],
    );
    let admin = run(dir.path(), &["token", "create", "--user", "bench"], &[]);
    for d in 0..DEVICES {
        run(
            dir.path(),
            &[
                "device",
                "create",
                &format!("dev{d}"),
                "--asset",
                &format!("/Bench/Meter {d}"),
            ],
            &[],
        );
    }
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("GANTRY__LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let devices: Vec<String> = (0..DEVICES).map(|d| format!("dev{d}")).collect();
    let created: serde_json::Value = client
        .post(format!("{url}/api/v1/gateway-tokens"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "name": "bench", "devices": devices }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["secret"].as_str().expect("a gateway token").to_string();
    Gantry { child, url, token, dir }
}

/// The result of one load run.
pub struct Run {
    pub readings_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Posts requests from `concurrency` keep-alive connections for `seconds`, optionally paced to `rate` requests/s;
/// `make(n)` builds request n.
pub async fn load(
    concurrency: usize,
    seconds: u64,
    rate: Option<f64>,
    start_at: u64,
    make: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>,
) -> (Run, u64) {
    let next = Arc::new(AtomicU64::new(start_at));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, stop, latencies, errors, make) = (
            next.clone(),
            stop.clone(),
            latencies.clone(),
            errors.clone(),
            make.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if let Some(rate) = rate {
                    // Open-loop pacing: request n is due at n / rate seconds.
                    let due = started + Duration::from_secs_f64((n - start_at) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                match make(n).send().await {
                    Ok(r) if r.status().is_success() => mine.push(sent.elapsed()),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let pick = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let run = Run {
        readings_per_sec: latencies.len() as f64 * (LINES * FIELDS) as f64 / elapsed,
        p50_ms: ms(pick(0.5)),
        p99_ms: ms(pick(0.99)),
        errors: errors.load(Ordering::Relaxed),
    };
    (run, next.load(Ordering::Relaxed))
}

/// Seconds per measurement: `GANTRY_BENCH_SECONDS`, 10 by default.
pub fn bench_seconds() -> u64 {
    std::env::var("GANTRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Request `n` as a JSON batch to `POST /api/v1/ingest` of `gantry`.
/// Requests of line protocol to `gantry`'s InfluxDB 2 write endpoint: request `n` is [`request_lines`]`(n)`.
pub fn line_requests(
    client: &reqwest::Client,
    gantry: &Gantry,
) -> Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> {
    let (client, url, token) = (client.clone(), gantry.url.clone(), gantry.token.clone());
    Arc::new(move |n: u64| {
        client
            .post(format!("{url}/api/v2/write?precision=ms"))
            .header("authorization", format!("Token {token}"))
            .body(request_lines(n))
    })
}

pub fn json_requests(
    client: &reqwest::Client,
    gantry: &Gantry,
) -> Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> {
    let (client, url, token) = (client.clone(), gantry.url.clone(), gantry.token.clone());
    Arc::new(move |n: u64| {
        client
            .post(format!("{url}/api/v1/ingest"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(request_json(n))
    })
}

//! The ingest load generator. It starts a real `gantry serve` (release build, embedded store) as a child process and
//! posts from this second process batches of 100 readings over keep-alive connections, each acknowledged only
//! after its readings are durable:
//! 1. JSON (`POST /api/v1/ingest`) flat out, then paced at 50 % and 100 % of the 300k readings/s target, with
//!    p50 / p99 latency;
//! 2. the same readings as line protocol to Gantry, InfluxDB 1.6 and VictoriaMetrics (Debian's `influxdb` and
//!    `victoria-metrics`; `scripts/bench-peers` installs them), one after another on this machine: readings/s and
//!    bytes on disk.
//!
//! `cargo bench -p server --bench ingest`; `GANTRY_BENCH_SECONDS` (default 10) per measurement.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const DEVICES: u64 = 100;
const FIELDS: u64 = 10;
/// Lines per request: 10 lines × 10 fields = 100 readings.
const LINES: u64 = 10;
/// Two days ago, to the second: inside Gantry's default retention, not in the future.
fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        (now - 2 * 86_400_000) / 1000 * 1000
    })
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A sensor-like value with two decimals.
fn value(device: u64, field: u64, second: u64) -> f64 {
    let mut x = (device * 31 + field).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ second.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    let noise = (x % 1000) as f64 / 1000.0 - 0.5;
    let cycle = 10.0 * ((second as f64) / 3600.0 + field as f64).sin();
    ((50.0 + field as f64 + cycle + noise) * 100.0).round() / 100.0
}

/// Request `n`: one device, ten consecutive seconds, ten fields each.
fn request_lines(n: u64) -> String {
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

fn request_json(n: u64) -> String {
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

struct Gantry {
    child: Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gantry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_gantry() -> Gantry {
    let dir = tempfile::tempdir().unwrap();
    let attributes: String = (0..FIELDS)
        .map(|f| format!("  - name: f{f}\n    value_type: float\n"))
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
    Gantry {
        child,
        url,
        token,
        _dir: dir,
    }
}

/// The result of one load run.
struct Run {
    readings_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Posts requests from `concurrency` keep-alive connections for `seconds`, optionally paced to `rate` requests/s;
/// `make(n)` builds request n.
async fn load(
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

async fn wait_http(url: &str) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(url).send().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::var("GANTRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let concurrency = 32;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    println!("## HTTP ingest: batches of 100 readings, {concurrency} keep-alive connections, {seconds} s per row\n");

    let gantry = start_gantry().await;
    let (url, token) = (gantry.url.clone(), gantry.token.clone());
    let json = {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        Arc::new(move |n: u64| {
            client
                .post(format!("{url}/api/v1/ingest"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(request_json(n))
        }) as Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>
    };
    // Warm-up, then flat out.
    let (_, next) = load(concurrency, 2, None, 0, json.clone()).await;
    let (max, next) = load(concurrency, seconds, None, next, json.clone()).await;
    println!("| load | readings/s acknowledged | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    println!(
        "| JSON, flat out | {:.0} | {:.2} ms | {:.2} ms | {} |",
        max.readings_per_sec, max.p50_ms, max.p99_ms, max.errors
    );
    let mut next = next;
    for share in [0.5, 1.0] {
        let target = 300_000.0 * share;
        let (paced, after) = load(concurrency * 2, seconds, Some(target / 100.0), next, json.clone()).await;
        next = after;
        println!(
            "| JSON, paced at {:.0}k readings/s ({:.0} % of target) | {:.0} | {:.2} ms | {:.2} ms | {} |",
            target / 1000.0,
            share * 100.0,
            paced.readings_per_sec,
            paced.p50_ms,
            paced.p99_ms,
            paced.errors
        );
    }
    drop(gantry);

    // Line protocol, same readings, to each store in turn.
    println!("\n## Line protocol, the same 100-reading batches, {seconds} s each, flat out\n");
    println!("| receiver | readings/s acknowledged | p99 | bytes on disk per reading | errors |");
    println!("|---|---|---|---|---|");
    let mut results: Vec<(String, f64, f64)> = Vec::new();
    let gantry = start_gantry().await;
    let lines = {
        let (client, url, token) = (client.clone(), gantry.url.clone(), gantry.token.clone());
        Arc::new(move |n: u64| {
            client
                .post(format!("{url}/api/v2/write?precision=ms"))
                .header("authorization", format!("Token {token}"))
                .body(request_lines(n))
        }) as Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>
    };
    let (run, _) = load(concurrency, seconds, None, 0, lines).await;
    // A graceful stop, as for the peers: Gantry flushes its heads into blocks.
    let mut gantry = gantry;
    stop(&mut gantry.child);
    let written = run.readings_per_sec * seconds as f64;
    // The store's own log shares the database file: its freed pages stay in the file for reuse. Count the pages in
    // use, and say how big the file is too.
    let ts_file = gantry._dir.path().join("timeseries.db");
    let free_bytes = {
        let conn = rusqlite::Connection::open(&ts_file).unwrap();
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (free * page) as f64
    };
    let file_bytes = dir_bytes(gantry._dir.path()) as f64;
    println!(
        "(Gantry's data dir: {:.2} bytes per reading in the files, {:.2} in pages in use)",
        file_bytes / written,
        (file_bytes - free_bytes) / written
    );
    let bytes = (file_bytes - free_bytes) / written;
    println!(
        "| Gantry (embedded store) | {:.0} | {:.2} ms | {bytes:.2} | {} |",
        run.readings_per_sec, run.p99_ms, run.errors
    );
    results.push(("Gantry".into(), run.readings_per_sec, bytes));
    drop(gantry);

    if which("influxd") {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("influxdb.conf");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{}\"\n[meta]\ndir = \"{d}/meta\"\n[data]\ndir = \"{d}/data\"\n\
                 wal-dir = \"{d}/wal\"\nwal-fsync-delay = \"0s\"\nquery-log-enabled = false\n[http]\nbind-address = \"127.0.0.1:{port}\"\n\
                 log-enabled = false\n[monitor]\nstore-enabled = false\n",
                free_port()
            ),
        )
        .unwrap();
        let mut child = Command::new("influxd")
            .args(["-config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        if wait_http(&format!("{url}/ping")).await {
            client
                .post(format!("{url}/query?q=CREATE%20DATABASE%20bench"))
                .send()
                .await
                .unwrap();
            let send = {
                let (client, url) = (client.clone(), url.clone());
                Arc::new(move |n: u64| {
                    client
                        .post(format!("{url}/write?db=bench&precision=ms"))
                        .body(request_lines(n))
                }) as Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>
            };
            let (run, _) = load(concurrency, seconds, None, 0, send).await;
            std::thread::sleep(Duration::from_secs(2));
            let bytes = dir_bytes(dir.path()) as f64 / (run.readings_per_sec * seconds as f64);
            println!(
                "| InfluxDB 1.6 (WAL fsync on every write) | {:.0} | {:.2} ms | {bytes:.2} | {} |",
                run.readings_per_sec, run.p99_ms, run.errors
            );
            results.push(("InfluxDB 1.6".into(), run.readings_per_sec, bytes));
        }
        let _ = child.kill();
        let _ = child.wait();
    } else {
        println!("| InfluxDB 1.6 | skipped: `influxd` not installed (scripts/bench-peers) | | | |");
    }

    if which("victoria-metrics") {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        if wait_http(&format!("{url}/health")).await {
            let send = {
                let (client, url) = (client.clone(), url.clone());
                Arc::new(move |n: u64| client.post(format!("{url}/write?precision=ms")).body(request_lines(n)))
                    as Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>
            };
            let (run, _) = load(concurrency, seconds, None, 0, send).await;
            // VictoriaMetrics buffers in memory before writing parts; a graceful stop writes them.
            stop(&mut child);
            let bytes = dir_bytes(dir.path()) as f64 / (run.readings_per_sec * seconds as f64);
            println!(
                "| VictoriaMetrics 1.79 (acknowledges before writing to disk) | {:.0} | {:.2} ms | {bytes:.2} | {} |",
                run.readings_per_sec, run.p99_ms, run.errors
            );
            results.push(("VictoriaMetrics".into(), run.readings_per_sec, bytes));
        }
        let _ = child.kill();
        let _ = child.wait();
    } else {
        println!("| VictoriaMetrics | skipped: `victoria-metrics` not installed (scripts/bench-peers) | | | |");
    }

    if results.len() > 1 {
        println!(
            "\n| ratio (Gantry ÷ peer) | readings/s | bytes per reading (peer ÷ Gantry: > 1 means Gantry is smaller) |"
        );
        println!("|---|---|---|");
        let (_, ours, our_bytes) = results[0].clone();
        for (name, rate, bytes) in &results[1..] {
            println!("| vs {name} | {:.2}× | {:.2}× |", ours / rate, bytes / our_bytes);
        }
    }
}

/// Stops a peer with SIGTERM and waits, so what it buffered is on disk before its bytes are counted.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

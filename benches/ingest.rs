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
    sync::Arc,
    time::Duration,
};

mod load;

use load::*;

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
    let seconds = bench_seconds();
    let concurrency = 32;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    println!("## HTTP ingest: batches of 100 readings, {concurrency} keep-alive connections, {seconds} s per row\n");

    let gantry = start_gantry(false).await;
    let json = json_requests(&client, &gantry);
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
    // Overload: three times the flat-out rate offered open-loop from many connections. Accepted requests must stay
    // fast (p99 < 1 s), the rest be refused at once (503 with Retry-After, counted as errors here), memory bounded.
    let offered = 3.0 * max.readings_per_sec;
    let (over, _) = load(concurrency * 8, seconds, Some(offered / 100.0), next, json.clone()).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", gantry.child.id())).unwrap_or_default();
    let peak_mib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    let healthz = {
        let asked = std::time::Instant::now();
        let ok = client
            .get(format!("{}/healthz", gantry.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        (ok, asked.elapsed())
    };
    println!(
        "| JSON, offered at 3× flat out ({:.0}k readings/s) | {:.0} | {:.2} ms | {:.2} ms | {} refused |",
        offered / 1000.0,
        over.readings_per_sec,
        over.p50_ms,
        over.p99_ms,
        over.errors
    );
    println!(
        "\nUnder that overload: peak RSS {peak_mib} MiB; `/healthz` answered {} in {:.1} ms afterwards.",
        if healthz.0 { "200" } else { "NOT 200" },
        healthz.1.as_secs_f64() * 1000.0
    );
    drop(gantry);

    // Line protocol, same readings, to each store in turn.
    println!("\n## Line protocol, the same 100-reading batches, {seconds} s each, flat out\n");
    println!("| receiver | readings/s acknowledged | p99 | bytes on disk per reading | errors |");
    println!("|---|---|---|---|---|");
    let mut results: Vec<(String, f64, f64)> = Vec::new();
    let gantry = start_gantry(false).await;
    let lines = line_requests(&client, &gantry);
    let (run, _) = load(concurrency, seconds, None, 0, lines).await;
    // A graceful stop, as for the peers: Gantry flushes its heads into blocks.
    let mut gantry = gantry;
    stop(&mut gantry.child);
    let written = run.readings_per_sec * seconds as f64;
    // The store's own log shares the database file: its freed pages stay in the file for reuse. Count the pages in
    // use, and say how big the file is too.
    let ts_file = gantry.dir.path().join("timeseries.db");
    let free_bytes = {
        let conn = rusqlite::Connection::open(&ts_file).unwrap();
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (free * page) as f64
    };
    let file_bytes = dir_bytes(gantry.dir.path()) as f64;
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

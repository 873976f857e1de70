//! Ingest-to-alarm latency, server side: a real `gantry serve` (release build, embedded store) whose 100 devices ×
//! 10 attributes each carry Hi and HiHi limit rules receives JSON batches of 100 readings paced at 50 % of the
//! 300k readings/s ingest target. Gantry measures, for every request, the time from its readings entering the
//! ingest queue to the end of their alarm evaluation (raised or cleared alarms stored and announced), and
//! publishes it at `/metrics` as `gantry_ingest_to_alarm_seconds`; this reads its p50 / p99 after the run.
//!
//! `cargo bench -p server --bench alarms`; `GANTRY_BENCH_SECONDS` (default 10).

use std::time::Duration;

mod load;

use load::*;

/// A quantile of a summary in Prometheus text, in milliseconds.
fn quantile_ms(metrics: &str, name: &str, quantile: &str) -> f64 {
    let prefix = format!("{name}{{quantile=\"{quantile}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |seconds| seconds * 1000.0)
}

/// The sum of a counter over its labels.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = bench_seconds();
    let concurrency = 64;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let gantry = start_gantry(true).await;
    let url = gantry.url.clone();
    let json = json_requests(&client, &gantry);
    let rate = 150_000.0;
    // The summary at /metrics covers the last minute: warm up at the same pace, then measure.
    let (_, next) = load(concurrency, 2, Some(rate / 100.0), 0, json.clone()).await;
    let (run, _) = load(concurrency, seconds, Some(rate / 100.0), next, json).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = "gantry_ingest_to_alarm_seconds";
    println!(
        "## Ingest-to-alarm latency at {:.0}k readings/s, {seconds} s\n",
        rate / 1000.0
    );
    println!("| readings/s acknowledged | server p50 | server p99 | server max | request p50 | request p99 | alarms raised | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {} |",
        run.readings_per_sec,
        quantile_ms(&metrics, name, "0.5"),
        quantile_ms(&metrics, name, "0.99"),
        quantile_ms(&metrics, name, "1"),
        run.p50_ms,
        run.p99_ms,
        counter(&metrics, "gantry_alarms_raised_total"),
        run.errors
    );
}

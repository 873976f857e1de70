//! Ingest into TDengine against the embedded store, in one run: the same load generator as `ingest.rs` (batches of
//! 100 readings of 100 devices × 10 fields, 32 keep-alive connections, each request acknowledged only once its
//! readings are durable) against a release `gantry serve` with each time-series store in turn; TDengine runs on
//! this machine (`ensure_tdengine`: WAL_LEVEL 2 with fsync on every write, as Gantry creates its database).
//!
//! `source scripts/lib.sh && ensure_tdengine && cargo bench -p server --bench ingest_tdengine`;
//! `GANTRY_BENCH_SECONDS` (default 10) per measurement.

use std::path::Path;

mod load;

use load::*;

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dsn = std::env::var("GANTRY_TEST_TDENGINE_DSN")
        .expect("GANTRY_TEST_TDENGINE_DSN is not set: `source scripts/lib.sh && ensure_tdengine` first");
    // ensure_tdengine keeps its server's files here.
    let tdengine_data = Path::new("/tmp/gantry-test-tdengine/data");
    let seconds = bench_seconds();
    let concurrency = 32;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()
        .unwrap();
    println!("## Ingest into TDengine and the embedded store, {concurrency} connections, {seconds} s per row\n");
    println!("| store | load | readings/s acknowledged | p50 | p99 | errors |");
    println!("|---|---|---|---|---|---|");
    let database = format!("gantry_bench_{}", std::process::id());
    let tdengine_env = [
        ("GANTRY__TIMESERIES__KIND", "tdengine"),
        ("GANTRY__TIMESERIES__TDENGINE__DSN", dsn.as_str()),
        ("GANTRY__TIMESERIES__TDENGINE__DATABASE", database.as_str()),
    ];
    let mut flat_out = Vec::new();
    for (store, env) in [("embedded", &[][..]), ("TDengine", &tdengine_env[..])] {
        let before = dir_bytes(tdengine_data);
        let gantry = start_gantry_with(false, env).await;
        let lines = line_requests(&client, &gantry);
        let (_, next) = load(concurrency, 2, None, 0, lines.clone()).await;
        let (max, next) = load(concurrency, seconds, None, next, lines.clone()).await;
        println!(
            "| {store} | line protocol, flat out | {:.0} | {:.2} ms | {:.2} ms | {} |",
            max.readings_per_sec, max.p50_ms, max.p99_ms, max.errors
        );
        let (paced, _) = load(concurrency * 2, seconds, Some(300_000.0 / 100.0), next, lines).await;
        println!(
            "| {store} | line protocol, paced at 300k readings/s | {:.0} | {:.2} ms | {:.2} ms | {} |",
            paced.readings_per_sec, paced.p50_ms, paced.p99_ms, paced.errors
        );
        let written = (max.readings_per_sec + paced.readings_per_sec) * seconds as f64;
        drop(gantry);
        if store == "TDengine" {
            let grown = dir_bytes(tdengine_data).saturating_sub(before) as f64;
            println!(
                "\nTDengine's data dir grew by {:.2} bytes per reading written (WAL included, before compaction).",
                grown / written
            );
        }
        flat_out.push(max.readings_per_sec);
    }
    println!(
        "\nTDengine ÷ embedded, flat out: {:.2}×",
        flat_out[1] / flat_out[0].max(1.0)
    );
}

//! The embedded time-series store against plain SQLite rows, in one run:
//! 1. durable writes in batches of 10,000 readings (1,000 series × 10 s of 1 Hz data per batch);
//! 2. bytes on disk per reading for those sensor-like signals;
//! 3. aggregated queries of one series over 1 day, 1 week and 1 year of 1 Hz data, ~1,000 buckets out.
//!
//! `cargo bench -p server --bench timeseries`; `GANTRY_BENCH_SERIES` (default 1000) and `GANTRY_BENCH_SECONDS`
//! (default 3600) size part 1, `GANTRY_BENCH_YEAR=0` skips part 3's year (it writes 31.5M readings to each store).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use server::timeseries::{
    ceil_to,
    embedded::{EmbeddedOptions, EmbeddedStore},
    Reading, TimeRange, TimeSeriesStore, Value, DAY_MS,
};

const BATCH: usize = 10_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A signal like the demo's devices send: a daily cycle, a slower drift, noise, two decimals of precision.
fn signal(series: i64, second: i64) -> f64 {
    let t = second as f64;
    let base = 20.0 + (series % 50) as f64;
    let daily = 4.0 * (t / 86_400.0 * std::f64::consts::TAU).sin();
    let drift = 0.5 * (t / 3_700.0 + series as f64).sin();
    // A cheap deterministic noise in [-0.25, 0.25).
    let mut x =
        (series as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (second as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    let noise = (x % 10_000) as f64 / 20_000.0 - 0.25;
    ((base + daily + drift + noise) * 100.0).round() / 100.0
}

fn batches(series: i64, seconds: i64) -> impl Iterator<Item = Vec<Reading>> {
    let per_batch = (BATCH as i64 / series).max(1);
    (0..seconds).step_by(per_batch as usize).map(move |start| {
        let mut batch = Vec::with_capacity(BATCH);
        for second in start..(start + per_batch).min(seconds) {
            for s in 0..series {
                batch.push(Reading {
                    series: s,
                    ts: T0 + second * 1000,
                    value: Value::Float(signal(s, second)),
                });
            }
        }
        batch
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Plain SQLite: one row per reading in a `WITHOUT ROWID` table keyed by series and time.
struct SqliteRows {
    conn: rusqlite::Connection,
}

impl SqliteRows {
    fn open(dir: &Path) -> SqliteRows {
        let conn = rusqlite::Connection::open(dir.join("rows.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;
             CREATE TABLE IF NOT EXISTS readings (series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                 PRIMARY KEY (series, ts)) WITHOUT ROWID;",
        )
        .unwrap();
        SqliteRows { conn }
    }

    fn write(&mut self, batch: &[Reading]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR REPLACE INTO readings VALUES (?1, ?2, ?3)")
                .unwrap();
            for r in batch {
                stmt.execute(rusqlite::params![r.series, r.ts, r.value.as_f64()])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    fn aggregate(&self, series: i64, range: TimeRange, width: i64) -> usize {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT (ts / ?4) * ?4 AS bucket, count(*), sum(value), min(value), max(value) FROM readings
                 WHERE series = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY bucket",
            )
            .unwrap();
        let rows = stmt
            .query_map(rusqlite::params![series, range.from, range.to, width], |_| Ok(()))
            .unwrap();
        rows.count()
    }
}

/// Bucket widths a chart would ask for: the range over ~1,000 points, rounded up to a whole minute or hour.
fn width_for(range_ms: i64) -> i64 {
    let raw = range_ms / 1000;
    if raw >= 3_600_000 {
        ceil_to(raw, 3_600_000)
    } else if raw >= 60_000 {
        ceil_to(raw, 60_000)
    } else {
        raw
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let series = env_or("GANTRY_BENCH_SERIES", 1000);
    let seconds = env_or("GANTRY_BENCH_SECONDS", 3600);
    let with_year = env_or("GANTRY_BENCH_YEAR", 1) != 0;
    let total = series * seconds;
    println!(
        "## Time-series store: {series} series × {seconds} s of 1 Hz readings ({total} readings), batches of {BATCH}\n"
    );

    // 1 + 2: writes and bytes per reading.
    let embedded_dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(embedded_dir.path(), EmbeddedOptions::default()).unwrap();
    let started = Instant::now();
    for batch in batches(series, seconds) {
        store.write(batch).await.unwrap();
    }
    let embedded_write = started.elapsed();
    store.flush_all().unwrap();
    // Sustained: until every reading is also compressed into blocks and rollups, not just durable in the log.
    let embedded_sustained = started.elapsed();
    store.vacuum().unwrap();
    let embedded_bytes = store.disk_bytes();
    drop(store);

    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut rows = SqliteRows::open(sqlite_dir.path());
    let started = Instant::now();
    for batch in batches(series, seconds) {
        rows.write(&batch);
    }
    let sqlite_write = started.elapsed();
    rows.conn
        .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let sqlite_bytes = dir_bytes(sqlite_dir.path());
    drop(rows);

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!("| store | durable writes, readings/s | including compression into blocks | bytes on disk per reading |");
    println!("|---|---|---|---|");
    println!(
        "| embedded | {:.0} | {:.0} | {:.2} |",
        rate(embedded_write),
        rate(embedded_sustained),
        embedded_bytes as f64 / total as f64
    );
    println!(
        "| plain SQLite rows | {:.0} | (the same) | {:.2} |",
        rate(sqlite_write),
        sqlite_bytes as f64 / total as f64
    );
    println!(
        "| **ratio** | **{:.1}×** | **{:.1}×** | **{:.1}× smaller** |\n",
        rate(embedded_write) / rate(sqlite_write),
        rate(embedded_sustained) / rate(sqlite_write),
        sqlite_bytes as f64 / embedded_bytes as f64
    );

    // 3: aggregated queries over one series' year.
    let days = if with_year { 365 } else { 8 };
    println!("## Aggregated queries: one series, {days} days of 1 Hz readings, ~1,000 buckets out\n");
    let query_dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(query_dir.path(), EmbeddedOptions::default()).unwrap();
    let mut rows = SqliteRows::open(query_dir.path());
    let one_series = |day: i64| -> Vec<Reading> {
        (day * 86_400..(day + 1) * 86_400)
            .map(|second| Reading {
                series: 1,
                ts: T0 + second * 1000,
                value: Value::Float(signal(1, second)),
            })
            .collect()
    };
    for day in 0..days {
        let readings = one_series(day);
        for chunk in readings.chunks(BATCH) {
            store.write(chunk.to_vec()).await.unwrap();
            rows.write(chunk);
        }
    }
    store.flush_all().unwrap();
    let end = T0 + days * DAY_MS;
    println!("| range | bucket | embedded p50 | embedded p99 | plain SQLite p50 | ratio (p50) |");
    println!("|---|---|---|---|---|---|");
    let mut spans = vec![("1 day", DAY_MS), ("1 week", 7 * DAY_MS)];
    if with_year {
        spans.push(("1 year", 365 * DAY_MS));
    }
    for (label, span) in spans {
        let range = TimeRange::new(end - span, end).unwrap();
        let width = width_for(span);
        let mut timings = Vec::new();
        for i in 0..60 {
            let started = Instant::now();
            let answer = store.read_aggregated(1, range, width).await.unwrap();
            if i >= 10 {
                timings.push(started.elapsed());
            }
            assert!(answer.buckets.len() > 500, "{label}: {} buckets", answer.buckets.len());
        }
        timings.sort();
        let runs = if span > 30 * DAY_MS { 3 } else { 10 };
        let mut baseline = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let n = rows.aggregate(1, range, width);
            baseline.push(started.elapsed());
            assert!(n > 500);
        }
        baseline.sort();
        let (p50, p99, base) = (
            percentile(&timings, 0.5),
            percentile(&timings, 0.99),
            percentile(&baseline, 0.5),
        );
        println!(
            "| {label} | {} s | {:.2} ms | {:.2} ms | {:.1} ms | {:.0}× faster |",
            width / 1000,
            ms(p50),
            ms(p99),
            ms(base),
            ms(base) / ms(p50)
        );
    }
}

//! The time-series store suite: every test is written once against `dyn TimeSeriesStore` and run against each
//! backend: the embedded store and TDengine (the server `GANTRY_TEST_TDENGINE_DSN` names, e.g.
//! `taos://localhost:6030`, which `scripts/test` starts; without it the TDengine tests fail). The embedded store runs here with tiny blocks and a flusher
//! that moves every head to blocks every few milliseconds, so the readings of a test are split between memory and
//! blocks at random points and every answer must be the same either way.

use std::{collections::HashMap, sync::Arc, time::Duration};

use server::timeseries::{
    embedded::{EmbeddedOptions, EmbeddedStore},
    tdengine::TdengineStore,
    Bucket, Point, Reading, Resolution, RetentionPolicy, SeriesId, SharedStore, StoreError, TierRetention, TimeRange,
    TimeSeriesStore, Value, DAY_MS, HOUR_MS, MINUTE_MS,
};
use tempfile::TempDir;

/// A store under test and whatever must live as long as it.
pub struct StoreUnderTest {
    pub store: SharedStore,
    _dir: Option<TempDir>,
    cleanup: Option<TdengineStore>,
}

impl Drop for StoreUnderTest {
    fn drop(&mut self) {
        if let Some(store) = self.cleanup.take() {
            store.drop_database_blocking();
        }
    }
}

pub fn churning_options() -> EmbeddedOptions {
    EmbeddedOptions {
        block_points: 64,
        max_head_points: 10_000,
        max_head_age: Duration::ZERO,
        flush_interval: Duration::from_millis(3),
    }
}

pub fn embedded() -> StoreUnderTest {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), churning_options()).unwrap();
    StoreUnderTest {
        store: Arc::new(store),
        _dir: Some(dir),
        cleanup: None,
    }
}

/// The TDengine server under test. Its absence is a failure, not a pass: `scripts/test` starts one (or leaves
/// these tests out of the run, loudly, when `GANTRY_SKIP_TDENGINE=1`).
pub fn tdengine_dsn() -> String {
    std::env::var("GANTRY_TEST_TDENGINE_DSN").expect(
        "GANTRY_TEST_TDENGINE_DSN is not set: run the tests through scripts/test, which starts TDengine \
         (or `source scripts/lib.sh && ensure_tdengine` first)",
    )
}

pub async fn tdengine() -> StoreUnderTest {
    let dsn = tdengine_dsn();
    let database = format!("gantry_test_{}_{}", std::process::id(), rand_suffix());
    let store = TdengineStore::connect_for_tests(&dsn, &database)
        .await
        .expect("connect to TDengine");
    let cleanup = store.clone();
    StoreUnderTest {
        store: Arc::new(store),
        _dir: None,
        cleanup: Some(cleanup),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) % 1000
}

macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let under_test = super::embedded();
                    super::$name(under_test.store.clone()).await;
                }
            )*
        }
        mod tdengine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let under_test = super::tdengine().await;
                    super::$name(under_test.store.clone()).await;
                }
            )*
        }
    };
}

store_tests!(
    readings_round_trip_in_order,
    the_same_instant_written_twice_keeps_the_last_value,
    aggregates_match_a_naive_computation_at_every_tier,
    bucket_edges_belong_to_the_later_bucket,
    empty_ranges_and_unknown_series_answer_empty,
    many_series_in_one_batch_and_their_latest_values,
    retention_removes_expired_raw_readings_only,
    concurrent_writers_lose_nothing,
    large_batches_are_stored_whole,
    deleting_a_range_removes_it_at_every_resolution,
    nan_and_infinity_are_refused,
    integers_and_booleans_are_stored_as_numbers,
);

pub fn recent_t0() -> i64 {
    // TDengine refuses writes older than its KEEP; tests use the recent past, aligned to the hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3 * DAY_MS) / HOUR_MS * HOUR_MS
}

/// A sensor-like signal: a slow cycle, noise, values at a sensor's precision.
pub fn signal(series: SeriesId, i: i64) -> f64 {
    let x = i as f64;
    let cycle = 20.0 + 5.0 * (x / 3600.0 * std::f64::consts::TAU).sin();
    let noise = ((i * 7919 + series * 104_729) % 1000) as f64 / 1000.0 - 0.5;
    ((cycle + noise) * 100.0).round() / 100.0
}

pub fn readings(series: SeriesId, start: i64, count: i64, step_ms: i64) -> Vec<Reading> {
    (0..count)
        .map(|i| Reading {
            series,
            ts: start + i * step_ms,
            value: Value::Float(signal(series, i)),
        })
        .collect()
}

fn range(from: i64, to: i64) -> TimeRange {
    TimeRange::new(from, to).unwrap()
}

fn naive_buckets(readings: &[(i64, f64)], range: TimeRange, width: i64) -> Vec<Bucket> {
    let mut map: std::collections::BTreeMap<i64, Vec<(i64, f64)>> = Default::default();
    for &(ts, v) in readings {
        if range.contains(ts) {
            map.entry(ts.div_euclid(width) * width).or_default().push((ts, v));
        }
    }
    map.into_iter()
        .map(|(start, mut points)| {
            points.sort_by_key(|p| p.0);
            Bucket {
                start,
                count: points.len() as u64,
                sum: points.iter().map(|p| p.1).sum(),
                min: points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
                max: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
                first: points[0].1,
                last: points[points.len() - 1].1,
            }
        })
        .collect()
}

fn assert_buckets_eq(actual: &[Bucket], expected: &[Bucket], context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: bucket count");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!((a.start, a.count), (e.start, e.count), "{context}: bucket {}", e.start);
        assert!(
            (a.sum - e.sum).abs() < 1e-6 * e.sum.abs().max(1.0),
            "{context}: sum of {}: {a:?} vs {e:?}",
            e.start
        );
        assert_eq!(
            (a.min, a.max, a.first, a.last),
            (e.min, e.max, e.first, e.last),
            "{context}: bucket {}",
            e.start
        );
    }
}

/// Lets an asynchronous store settle between steps (the embedded flusher runs every few ms either way) and runs a
/// maintenance pass, so TDengine's answers after it come from its rollups wherever they reach.
async fn settle(store: &SharedStore) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store.maintain().await.unwrap(),
        "one pass catches up with a test's readings"
    );
}

async fn readings_round_trip_in_order(store: SharedStore) {
    let t0 = recent_t0();
    let mut expected: HashMap<SeriesId, Vec<Point>> = HashMap::new();
    for series in [11, 12, 13] {
        let batch = readings(series, t0, 1000, 1000);
        expected.insert(
            series,
            batch
                .iter()
                .map(|r| Point {
                    ts: r.ts,
                    value: r.value.as_f64(),
                })
                .collect(),
        );
        // In three batches, out of order: the store sorts.
        store.write(batch[500..].to_vec()).await.unwrap();
        store.write(batch[..200].to_vec()).await.unwrap();
        settle(&store).await;
        store.write(batch[200..500].to_vec()).await.unwrap();
    }
    for series in [11, 12, 13] {
        let all = store
            .read_raw(series, range(t0, t0 + 1000 * 1000), 10_000)
            .await
            .unwrap();
        assert_eq!(all, expected[&series], "series {series}");
        let middle = store
            .read_raw(series, range(t0 + 100_500, t0 + 200_000), 10_000)
            .await
            .unwrap();
        assert_eq!(middle, expected[&series][101..200].to_vec());
        let limited = store.read_raw(series, range(t0, t0 + 1000 * 1000), 10).await.unwrap();
        assert_eq!(limited, expected[&series][..10].to_vec());
    }
}

async fn the_same_instant_written_twice_keeps_the_last_value(store: SharedStore) {
    let t0 = recent_t0();
    let batch = readings(21, t0, 300, 1000);
    store.write(batch.clone()).await.unwrap();
    settle(&store).await;
    // A retry of the same batch changes nothing.
    store.write(batch.clone()).await.unwrap();
    // New values for instants already stored (some flushed by now, some not).
    let corrected: Vec<Reading> = batch[100..150]
        .iter()
        .map(|r| Reading {
            value: Value::Float(r.value.as_f64() + 1000.0),
            ..*r
        })
        .collect();
    store.write(corrected).await.unwrap();
    settle(&store).await;
    let raw = store.read_raw(21, range(t0, t0 + 300_000), 1000).await.unwrap();
    assert_eq!(raw.len(), 300, "no duplicates");
    for (i, point) in raw.iter().enumerate() {
        let original = batch[i].value.as_f64();
        let expected = if (100..150).contains(&i) {
            original + 1000.0
        } else {
            original
        };
        assert_eq!(point.value, expected, "reading {i}");
    }
    let minutes = store
        .read_aggregated(21, range(t0, t0 + 300_000), MINUTE_MS)
        .await
        .unwrap();
    let expected: Vec<(i64, f64)> = raw.iter().map(|p| (p.ts, p.value)).collect();
    assert_buckets_eq(
        &minutes.buckets,
        &naive_buckets(&expected, range(t0, t0 + 300_000), MINUTE_MS),
        "after overwrite",
    );
}

async fn aggregates_match_a_naive_computation_at_every_tier(store: SharedStore) {
    let t0 = recent_t0();
    // Three hours at 1 Hz, written in slices as a device would.
    let batch = readings(31, t0, 3 * 3600, 1000);
    for slice in batch.chunks(700) {
        store.write(slice.to_vec()).await.unwrap();
    }
    settle(&store).await;
    let all: Vec<(i64, f64)> = batch.iter().map(|r| (r.ts, r.value.as_f64())).collect();
    // A range that starts and ends inside minutes and hours.
    let query = range(t0 + 17_000, t0 + 3 * HOUR_MS - 23_000);
    for (width, resolution) in [
        (7_000, Resolution::Raw),
        (MINUTE_MS, Resolution::Minute),
        (10 * MINUTE_MS, Resolution::Minute),
        (HOUR_MS, Resolution::Hour),
        (2 * HOUR_MS, Resolution::Hour),
    ] {
        let answer = store.read_aggregated(31, query, width).await.unwrap();
        assert_eq!(answer.resolution, resolution, "width {width}");
        assert_buckets_eq(
            &answer.buckets,
            &naive_buckets(&all, query, width),
            &format!("width {width}"),
        );
    }
}

async fn bucket_edges_belong_to_the_later_bucket(store: SharedStore) {
    let t0 = recent_t0();
    let batch: Vec<Reading> = [0, MINUTE_MS - 1, MINUTE_MS, 2 * MINUTE_MS, HOUR_MS - 1, HOUR_MS]
        .iter()
        .enumerate()
        .map(|(i, offset)| Reading {
            series: 41,
            ts: t0 + offset,
            value: Value::Float(i as f64),
        })
        .collect();
    store.write(batch).await.unwrap();
    settle(&store).await;
    let minutes = store
        .read_aggregated(41, range(t0, t0 + 2 * HOUR_MS), MINUTE_MS)
        .await
        .unwrap();
    let counts: Vec<(i64, u64)> = minutes.buckets.iter().map(|b| (b.start - t0, b.count)).collect();
    assert_eq!(
        counts,
        vec![
            (0, 2),
            (MINUTE_MS, 1),
            (2 * MINUTE_MS, 1),
            (HOUR_MS - MINUTE_MS, 1),
            (HOUR_MS, 1)
        ]
    );
    let hours = store
        .read_aggregated(41, range(t0, t0 + 2 * HOUR_MS), HOUR_MS)
        .await
        .unwrap();
    let counts: Vec<(i64, u64, f64, f64)> = hours
        .buckets
        .iter()
        .map(|b| (b.start - t0, b.count, b.first, b.last))
        .collect();
    assert_eq!(counts, vec![(0, 5, 0.0, 4.0), (HOUR_MS, 1, 5.0, 5.0)]);
    // `to` is exclusive.
    let before_edge = store.read_raw(41, range(t0, t0 + MINUTE_MS), 100).await.unwrap();
    assert_eq!(before_edge.len(), 2);
}

async fn empty_ranges_and_unknown_series_answer_empty(store: SharedStore) {
    let t0 = recent_t0();
    assert!(store
        .read_raw(51, range(t0, t0 + DAY_MS), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read_aggregated(51, range(t0, t0 + DAY_MS), HOUR_MS)
        .await
        .unwrap()
        .buckets
        .is_empty());
    assert!(store.latest(&[51]).await.unwrap().is_empty());
    store.write(readings(52, t0, 10, 1000)).await.unwrap();
    settle(&store).await;
    assert!(store
        .read_raw(52, range(t0 + HOUR_MS, t0 + DAY_MS), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read_aggregated(52, range(t0 - DAY_MS, t0), MINUTE_MS)
        .await
        .unwrap()
        .buckets
        .is_empty());
    assert!(matches!(TimeRange::new(t0, t0), Err(StoreError::Invalid(_))));
    assert!(matches!(
        store.read_aggregated(52, range(t0, t0 + 1), 0).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn many_series_in_one_batch_and_their_latest_values(store: SharedStore) {
    let t0 = recent_t0();
    let ids: Vec<SeriesId> = (1000..1500).collect();
    let batch: Vec<Reading> = ids.iter().flat_map(|&s| readings(s, t0, 20, 1000)).collect();
    store.write(batch).await.unwrap();
    settle(&store).await;
    let latest = store.latest(&ids).await.unwrap();
    assert_eq!(latest.len(), ids.len());
    for &s in &ids {
        assert_eq!(
            latest[&s],
            Point {
                ts: t0 + 19_000,
                value: signal(s, 19)
            },
            "series {s}"
        );
    }
    // An older reading does not change the latest; a newer one does.
    store
        .write(vec![Reading {
            series: 1000,
            ts: t0 - 1000,
            value: Value::Float(-1.0),
        }])
        .await
        .unwrap();
    store
        .write(vec![Reading {
            series: 1001,
            ts: t0 + 60_000,
            value: Value::Float(99.5),
        }])
        .await
        .unwrap();
    settle(&store).await;
    let latest = store.latest(&[1000, 1001, 9999]).await.unwrap();
    assert_eq!(
        latest[&1000],
        Point {
            ts: t0 + 19_000,
            value: signal(1000, 19)
        }
    );
    assert_eq!(
        latest[&1001],
        Point {
            ts: t0 + 60_000,
            value: 99.5
        }
    );
    assert!(!latest.contains_key(&9999));
    let raw = store.read_raw(1234, range(t0, t0 + 20_000), 100).await.unwrap();
    assert_eq!(raw.len(), 20);
}

async fn retention_removes_expired_raw_readings_only(store: SharedStore) {
    let now = recent_t0() + 3 * DAY_MS;
    let old_start = now - 2 * DAY_MS;
    let recent_start = now - HOUR_MS;
    store.write(readings(61, old_start, 600, 1000)).await.unwrap();
    store.write(readings(61, recent_start, 600, 1000)).await.unwrap();
    store.write(readings(62, old_start, 600, 1000)).await.unwrap();
    settle(&store).await;
    let keep_one_day = TierRetention {
        raw_ms: Some(DAY_MS),
        minute_ms: None,
        hour_ms: None,
    };
    let policy = RetentionPolicy {
        default: keep_one_day,
        // Series 62's attribute keeps raw readings for a week.
        overrides: [(
            62,
            TierRetention {
                raw_ms: Some(7 * DAY_MS),
                minute_ms: None,
                hour_ms: None,
            },
        )]
        .into(),
    };
    // Readings still in memory expire at a later pass; let them reach storage first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.apply_retention(&policy, now).await.unwrap();
    let old = store
        .read_raw(61, range(old_start, old_start + DAY_MS), 10_000)
        .await
        .unwrap();
    assert!(old.is_empty(), "{} expired readings remain", old.len());
    assert_eq!(
        store
            .read_raw(61, range(recent_start, now), 10_000)
            .await
            .unwrap()
            .len(),
        600
    );
    assert_eq!(
        store.read_raw(62, range(old_start, now), 10_000).await.unwrap().len(),
        600
    );
}

async fn concurrent_writers_lose_nothing(store: SharedStore) {
    let t0 = recent_t0();
    let mut tasks = Vec::new();
    for writer in 0..8_i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Each writer owns one series and shares series 70 with the others (distinct instants).
            for round in 0..20_i64 {
                let own = readings(71 + writer, t0 + round * 50_000, 50, 1000);
                let shared = vec![Reading {
                    series: 70,
                    ts: t0 + (round * 8 + writer) * 1000,
                    value: Value::Float(writer as f64),
                }];
                store.write([own, shared].concat()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    settle(&store).await;
    for writer in 0..8 {
        let raw = store
            .read_raw(71 + writer, range(t0, t0 + 1_000_000), 10_000)
            .await
            .unwrap();
        assert_eq!(raw.len(), 1000, "writer {writer}");
    }
    let shared = store.read_raw(70, range(t0, t0 + 1_000_000), 10_000).await.unwrap();
    assert_eq!(shared.len(), 160);
    for point in shared {
        let slot = (point.ts - t0) / 1000;
        assert_eq!(point.value, (slot % 8) as f64);
    }
}

async fn large_batches_are_stored_whole(store: SharedStore) {
    let t0 = recent_t0();
    let batch: Vec<Reading> = (0..20).flat_map(|s| readings(80 + s, t0, 10_000, 1000)).collect();
    assert_eq!(batch.len(), 200_000);
    store.write(batch).await.unwrap();
    settle(&store).await;
    for s in [80, 89, 99] {
        let hours = store
            .read_aggregated(s, range(t0, t0 + 10_000_000), HOUR_MS)
            .await
            .unwrap();
        assert_eq!(hours.buckets.iter().map(|b| b.count).sum::<u64>(), 10_000, "series {s}");
    }
}

async fn deleting_a_range_removes_it_at_every_resolution(store: SharedStore) {
    let t0 = recent_t0();
    let batch = readings(91, t0, 2 * 3600, 1000);
    store.write(batch.clone()).await.unwrap();
    settle(&store).await;
    let cut = range(t0 + 30 * MINUTE_MS + 15_000, t0 + 90 * MINUTE_MS + 5_000);
    store.delete_range(91, cut).await.unwrap();
    settle(&store).await;
    let kept: Vec<(i64, f64)> = batch
        .iter()
        .map(|r| (r.ts, r.value.as_f64()))
        .filter(|(ts, _)| !cut.contains(*ts))
        .collect();
    let raw = store.read_raw(91, range(t0, t0 + 2 * HOUR_MS), 10_000).await.unwrap();
    assert_eq!(raw.len(), kept.len());
    assert!(raw.iter().all(|p| !cut.contains(p.ts)));
    let all = range(t0, t0 + 2 * HOUR_MS);
    for width in [MINUTE_MS, HOUR_MS] {
        let answer = store.read_aggregated(91, all, width).await.unwrap();
        assert_buckets_eq(
            &answer.buckets,
            &naive_buckets(&kept, all, width),
            &format!("after delete, width {width}"),
        );
    }
    // Deleting the newest readings moves the latest value back.
    store
        .delete_range(91, range(t0 + 119 * MINUTE_MS, t0 + 2 * HOUR_MS))
        .await
        .unwrap();
    settle(&store).await;
    let latest = store.latest(&[91]).await.unwrap();
    assert_eq!(latest[&91].ts, t0 + 119 * MINUTE_MS - 1000);
}

async fn nan_and_infinity_are_refused(store: SharedStore) {
    let t0 = recent_t0();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let batch = vec![
            Reading {
                series: 101,
                ts: t0,
                value: Value::Float(1.0),
            },
            Reading {
                series: 101,
                ts: t0 + 1000,
                value: Value::Float(bad),
            },
        ];
        assert!(matches!(store.write(batch).await, Err(StoreError::Invalid(_))));
    }
    // Nothing of a refused batch was stored.
    assert!(store
        .read_raw(101, range(t0, t0 + 10_000), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn integers_and_booleans_are_stored_as_numbers(store: SharedStore) {
    let t0 = recent_t0();
    store
        .write(vec![
            Reading {
                series: 111,
                ts: t0,
                value: Value::Integer(42),
            },
            Reading {
                series: 111,
                ts: t0 + 1000,
                value: Value::Integer(-7),
            },
            Reading {
                series: 112,
                ts: t0,
                value: Value::Boolean(true),
            },
            Reading {
                series: 112,
                ts: t0 + 1000,
                value: Value::Boolean(false),
            },
        ])
        .await
        .unwrap();
    settle(&store).await;
    let ints = store.read_raw(111, range(t0, t0 + 2000), 10).await.unwrap();
    assert_eq!(ints.iter().map(|p| p.value).collect::<Vec<_>>(), vec![42.0, -7.0]);
    let bools = store.read_raw(112, range(t0, t0 + 2000), 10).await.unwrap();
    assert_eq!(bools.iter().map(|p| p.value).collect::<Vec<_>>(), vec![1.0, 0.0]);
    // Aggregated too, at every tier (TDengine sums no booleans unless asked to as numbers).
    for width in [1000, MINUTE_MS, HOUR_MS] {
        for (series, expected) in [(111, (2, 35.0, -7.0, 42.0)), (112, (2, 1.0, 0.0, 1.0))] {
            let answer = store
                .read_aggregated(series, range(t0, t0 + HOUR_MS), width)
                .await
                .unwrap();
            let totals = answer.buckets.iter().fold((0, 0.0, f64::MAX, f64::MIN), |acc, b| {
                (acc.0 + b.count, acc.1 + b.sum, acc.2.min(b.min), acc.3.max(b.max))
            });
            assert_eq!(totals, expected, "series {series}, width {width}");
        }
    }
}

/// Embedded store only: what must survive a crash, a restart and a full disk.
mod embedded_durability {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
    };

    use server::timeseries::embedded::synthetic_batch;

    use crate::helpers::Tmpfs;

    use super::*;

    const SERIES: i64 = 50;
    const SECONDS: i64 = 20;

    fn stress(dir: &std::path::Path, start: i64) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args([
                "timeseries",
                "stress",
                "--series",
                &SERIES.to_string(),
                "--seconds",
                &SECONDS.to_string(),
            ])
            .args(["--start", &start.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .env("GANTRY__LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gantry timeseries stress")
    }

    /// Reads `acked N` lines until `wanted` have arrived, then kills the process with SIGKILL; returns the last N.
    fn kill_after(mut child: std::process::Child, wanted: usize) -> i64 {
        let stdout = child.stdout.take().unwrap();
        let mut last = None;
        for line in BufReader::new(stdout).lines().take(wanted) {
            let line = line.unwrap();
            last = Some(
                line.strip_prefix("acked ")
                    .expect("an acked line")
                    .parse::<i64>()
                    .unwrap(),
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        last.expect("the writer acknowledged nothing")
    }

    async fn assert_batches_present(store: &EmbeddedStore, batches: std::ops::RangeInclusive<i64>) {
        for n in batches {
            let expected = synthetic_batch(n, SERIES, SECONDS);
            let (from, to) = (expected[0].ts, expected[expected.len() - 1].ts + 1);
            for s in [0, SERIES / 2, SERIES - 1] {
                let got = store
                    .read_raw(s, TimeRange::new(from, to).unwrap(), 1000)
                    .await
                    .unwrap();
                let want: Vec<Point> = expected
                    .iter()
                    .filter(|r| r.series == s)
                    .map(|r| Point {
                        ts: r.ts,
                        value: r.value.as_f64(),
                    })
                    .collect();
                assert_eq!(got, want, "batch {n}, series {s}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_writes_loses_no_acknowledged_reading() {
        let dir = tempfile::tempdir().unwrap();
        let mut next = 0;
        for cycle in 0..5 {
            let last_acked = kill_after(stress(dir.path(), next), 40 + cycle * 7);
            // Reopen as the next start would: every acknowledged batch is there, exactly once.
            let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
            assert_batches_present(&store, 0..=last_acked).await;
            let all = store
                .read_raw(0, TimeRange::new(0, app::timeseries::LATEST_MS).unwrap(), 1_000_000)
                .await
                .unwrap();
            let mut timestamps: Vec<i64> = all.iter().map(|p| p.ts).collect();
            timestamps.dedup();
            assert_eq!(timestamps.len(), all.len(), "cycle {cycle}: duplicates");
            // At most the batch in flight at the kill went beyond the acknowledged ones.
            assert!(all.len() as i64 <= (last_acked + 2) * SECONDS, "cycle {cycle}");
            drop(store);
            next = last_acked + 1;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_cannot_open_a_store_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["timeseries", "stress", "--batches", "1", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("in use by another Gantry process"), "{stderr}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readings_survive_a_restart_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = recent_t0();
        let range = TimeRange::new(t0, t0 + 2 * HOUR_MS).unwrap();
        let (raw, minutes, hours) = {
            let store = EmbeddedStore::open(dir.path(), churning_options()).unwrap();
            for chunk in readings(7, t0, 7200, 1000).chunks(999) {
                store.write(chunk.to_vec()).await.unwrap();
            }
            // A late correction into flushed data, then a delete.
            tokio::time::sleep(Duration::from_millis(30)).await;
            store
                .write(vec![Reading {
                    series: 7,
                    ts: t0 + 5000,
                    value: Value::Float(-5.0),
                }])
                .await
                .unwrap();
            store
                .delete_range(7, TimeRange::new(t0 + HOUR_MS, t0 + HOUR_MS + 90_000).unwrap())
                .await
                .unwrap();
            (
                store.read_raw(7, range, 100_000).await.unwrap(),
                store.read_aggregated(7, range, MINUTE_MS).await.unwrap(),
                store.read_aggregated(7, range, HOUR_MS).await.unwrap(),
            )
        };
        assert_eq!(raw.len(), 7200 - 90);
        assert_eq!(raw[5].value, -5.0);
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        assert_eq!(store.read_raw(7, range, 100_000).await.unwrap(), raw);
        assert_eq!(store.read_aggregated(7, range, MINUTE_MS).await.unwrap(), minutes);
        assert_eq!(store.read_aggregated(7, range, HOUR_MS).await.unwrap(), hours);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_refuses_writes_and_recovers_once_space_is_freed() {
        let disk = Tmpfs::mount(8);
        let ballast = disk.path().join("ballast");
        let store = EmbeddedStore::open(&disk.path().join("ts"), EmbeddedOptions::default()).unwrap();
        // Fill the disk with something that can be freed later.
        std::fs::write(&ballast, vec![0u8; 5 * 1024 * 1024]).unwrap();
        let mut acked = 0;
        let mut refused = false;
        for n in 0..400 {
            match store.write(synthetic_batch(n, SERIES, SECONDS)).await {
                Ok(()) => acked = n + 1,
                Err(StoreError::DiskFull) => {
                    refused = true;
                    break;
                }
                Err(other) => panic!("expected a disk-full error, got {other}"),
            }
        }
        assert!(refused, "the disk never filled");
        assert!(acked > 0, "nothing fitted before the disk filled");
        assert_batches_present(&store, 0..=acked - 1).await;
        // Space comes back: the next write succeeds without a restart, and so does the refused batch.
        std::fs::remove_file(&ballast).unwrap();
        store
            .write(synthetic_batch(acked, SERIES, SECONDS))
            .await
            .expect("writes resume once space is freed");
        assert_batches_present(&store, 0..=acked).await;
        drop(store);
        let store = EmbeddedStore::open(&disk.path().join("ts"), EmbeddedOptions::default()).unwrap();
        assert_batches_present(&store, 0..=acked).await;
    }
}

/// TDengine only: a primary that does not answer fails over to the secondary, transparently to the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdengine_fails_over_to_the_secondary_endpoint() {
    let dsn = tdengine_dsn();
    let scheme = dsn.split("://").next().unwrap_or("taos");
    let config = server::config::TdengineConfig {
        // Nothing listens on port 1: the primary is lost from the start.
        dsn: Some(secrecy::SecretString::from(format!("{scheme}://127.0.0.1:1"))),
        secondary_dsn: Some(secrecy::SecretString::from(dsn)),
        database: format!("gantry_failover_{}", std::process::id()),
        reconnect_interval_ms: 100,
        retry_count: 2,
    };
    let store = TdengineStore::connect(&config, &server::config::TierConfig::default())
        .await
        .expect("the secondary takes over");
    let t0 = recent_t0();
    store.write(readings(1, t0, 10, 1000)).await.unwrap();
    assert_eq!(
        store
            .read_raw(1, TimeRange::new(t0, t0 + 10_000).unwrap(), 100)
            .await
            .unwrap()
            .len(),
        10
    );
    store.drop_database_blocking();
}

/// TDengine only: charts over long ranges read the rollups Gantry keeps in TDengine, and stay exact while late
/// readings, corrections and deletes land in hours already summarised.
mod tdengine_rollups {
    use super::*;

    fn as_pairs(readings: &[Reading]) -> Vec<(i64, f64)> {
        readings.iter().map(|r| (r.ts, r.value.as_f64())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn summaries_are_kept_and_late_writes_never_leave_a_stale_answer() {
        let under_test = tdengine().await;
        let store = under_test.cleanup.clone().unwrap();
        let t0 = recent_t0();
        let all = range(t0, t0 + 4 * HOUR_MS);
        let mut batch = readings(7, t0, 3 * 3600, 1000);
        for slice in batch.chunks(5_000) {
            store.write(slice.to_vec()).await.unwrap();
        }
        assert!(store.maintain().await.unwrap());
        let rolled = store.rolled_until().await.unwrap();
        assert!(rolled.hour >= t0 + 3 * HOUR_MS, "{rolled:?}");
        // What is stored at each tier is the summary of the readings.
        for (resolution, width) in [(Resolution::Minute, MINUTE_MS), (Resolution::Hour, HOUR_MS)] {
            let stored = store.stored_summaries(7, resolution, all).await.unwrap();
            assert_buckets_eq(
                &stored,
                &naive_buckets(&as_pairs(&batch), all, width),
                "stored summaries",
            );
        }
        assert!(
            store.dirty_hours(7).await.unwrap().is_empty(),
            "the pass took the marks of the writes"
        );

        // A correction in hour 2 and a late reading in hour 1: exact at once, before any pass.
        let mut late: Vec<Reading> = batch[2 * 3600 + 10..2 * 3600 + 20]
            .iter()
            .map(|r| Reading {
                value: Value::Float(r.value.as_f64() + 500.0),
                ..*r
            })
            .collect();
        late.push(Reading {
            series: 7,
            ts: t0 + HOUR_MS + 500,
            value: Value::Float(-40.0),
        });
        store.write(late.clone()).await.unwrap();
        for reading in &late {
            match batch.iter_mut().find(|r| r.ts == reading.ts) {
                Some(stored) => *stored = *reading,
                None => batch.push(*reading),
            }
        }
        batch.sort_by_key(|r| r.ts);
        assert_eq!(
            store.dirty_hours(7).await.unwrap(),
            [t0 + HOUR_MS, t0 + 2 * HOUR_MS].into(),
            "the late hours are marked"
        );
        let expect = |batch: &[Reading], width| naive_buckets(&as_pairs(batch), all, width);
        for width in [MINUTE_MS, 5 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS] {
            let answer = store.read_aggregated(7, all, width).await.unwrap();
            assert_buckets_eq(
                &answer.buckets,
                &expect(&batch, width),
                &format!("before the pass, width {width}"),
            );
        }
        // The pass rewrites the marked hours' summaries and takes the marks.
        assert!(store.maintain().await.unwrap());
        assert!(store.dirty_hours(7).await.unwrap().is_empty());
        let stored = store.stored_summaries(7, Resolution::Hour, all).await.unwrap();
        assert_buckets_eq(&stored, &expect(&batch, HOUR_MS), "recomputed hours");
        for width in [MINUTE_MS, HOUR_MS] {
            let answer = store.read_aggregated(7, all, width).await.unwrap();
            assert_buckets_eq(
                &answer.buckets,
                &expect(&batch, width),
                &format!("after the pass, width {width}"),
            );
        }

        // A delete inside summarised hours: exact at once, and the summaries follow.
        let cut = range(t0 + 20 * MINUTE_MS + 1, t0 + 2 * HOUR_MS + 5 * MINUTE_MS);
        store.delete_range(7, cut).await.unwrap();
        batch.retain(|r| !cut.contains(r.ts));
        for width in [MINUTE_MS, HOUR_MS] {
            let answer = store.read_aggregated(7, all, width).await.unwrap();
            assert_buckets_eq(
                &answer.buckets,
                &expect(&batch, width),
                &format!("after the delete, width {width}"),
            );
        }
        assert!(store.maintain().await.unwrap());
        for (resolution, width) in [(Resolution::Minute, MINUTE_MS), (Resolution::Hour, HOUR_MS)] {
            let stored = store.stored_summaries(7, resolution, all).await.unwrap();
            assert_buckets_eq(&stored, &expect(&batch, width), "summaries after the delete");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollup_tiers_expire_by_their_own_retention() {
        let under_test = tdengine().await;
        let store = under_test.cleanup.clone().unwrap();
        let now = recent_t0() + 3 * DAY_MS;
        let old = now - 2 * DAY_MS;
        store.write(readings(8, old, 7200, 1000)).await.unwrap();
        assert!(store.maintain().await.unwrap());
        let whole = range(old, old + 2 * HOUR_MS);
        assert_eq!(
            store
                .stored_summaries(8, Resolution::Minute, whole)
                .await
                .unwrap()
                .len(),
            120
        );
        let policy = RetentionPolicy {
            default: TierRetention {
                raw_ms: None,
                minute_ms: Some(DAY_MS),
                hour_ms: None,
            },
            overrides: HashMap::new(),
        };
        let report = store.apply_retention(&policy, now).await.unwrap();
        assert_eq!(report.minute_rows, 120);
        assert!(store
            .stored_summaries(8, Resolution::Minute, whole)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.stored_summaries(8, Resolution::Hour, whole).await.unwrap().len(),
            2
        );
        // The hours still answer a chart of that day.
        let answer = store.read_aggregated(8, whole, HOUR_MS).await.unwrap();
        assert_eq!(answer.buckets.iter().map(|b| b.count).sum::<u64>(), 7200);
    }
}

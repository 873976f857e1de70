//! The embedded time-series store, the single-instance default: one SQLite file (`timeseries.db` in the data dir)
//! written through rusqlite.
//!
//! How a batch travels:
//! 1. it is appended to the `log` table as one row and committed (`synchronous=FULL`): from then on it is durable
//!    and the call returns;
//! 2. its readings join each series' *head*, an in-memory sorted run of the readings not yet in a block;
//! 3. a flusher thread turns heads into compressed blocks (pco, about 1–2 bytes a reading), upserts the 1-minute
//!    and 1-hour rollups in the same transaction, records in `series_state` up to which log row each series is in
//!    blocks, and deletes the log rows nothing needs any more.
//!
//! On start-up the log is replayed into the heads, skipping each series' readings that had reached blocks. A
//! reading at or before the newest flushed timestamp of its series (a retry, a late reading) does not go to the
//! head: that series is merged into its blocks at once, so heads and blocks never hold the same instant and the
//! rollups never count a reading twice.
//!
//! Queries read the heads and a SQLite read snapshot taken under the same lock the flusher commits under, so a
//! reading is seen exactly once while it moves from head to block.

mod block;
mod blocks_table;
mod rollups;

use crate::locks::{MutexExt, RwLockExt};
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, RwLock,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use self::block::{LogRecord, Points};
use self::blocks_table::*;
use self::rollups::*;
use super::{
    ceil_to, check_values, floor_to, resolution_for, Accumulator, Aggregated, BucketSet, Point, Reading, Resolution,
    RetentionPolicy, RetentionReport, SeriesId, StoreError, TimeRange, TimeSeriesStore, HOUR_MS, MINUTE_MS,
};

/// Tuning of the embedded store; the defaults suit a plant of thousands of 1 Hz series.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Readings per block: large enough to compress well, small enough to decode quickly.
    pub block_points: usize,
    /// Readings held in heads across all series before the largest heads are flushed early.
    pub max_head_points: usize,
    /// A head older than this is flushed even if small, so the log stays short and start-up quick.
    pub max_head_age: Duration,
    /// How often the flusher looks at the heads.
    pub flush_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            block_points: 4096,
            max_head_points: 4_000_000,
            max_head_age: Duration::from_secs(600),
            flush_interval: Duration::from_millis(500),
        }
    }
}

/// Batch `n` of the synthetic load `gantry timeseries stress` writes: `series` series, `seconds` readings each,
/// values derived from the batch, series and second so that a checker can recompute them.
pub fn synthetic_batch(n: i64, series: i64, seconds: i64) -> Vec<Reading> {
    const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut batch = Vec::with_capacity((series * seconds) as usize);
    for second in n * seconds..(n + 1) * seconds {
        for s in 0..series {
            batch.push(Reading {
                series: s,
                ts: START + second * 1000,
                value: super::Value::Float((second * 1000 + s) as f64 / 100.0),
            });
        }
    }
    batch
}

/// A small last block is extended only while it spans less than this.
const MAX_BLOCK_SPAN_MS: i64 = 6 * HOUR_MS;

/// The file the store lives in, inside the data dir.
pub const FILE_NAME: &str = "timeseries.db";

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Held while open: two processes appending to one log would each replay the other's readings.
    _lock: std::fs::File,
}

struct Inner {
    path: PathBuf,
    options: EmbeddedOptions,
    /// The one connection that writes; holding it orders log rows, head updates and flushes.
    writer: Mutex<Writer>,
    heads: RwLock<Heads>,
    readers: Mutex<Vec<Connection>>,
}

struct Writer {
    conn: Connection,
    next_seq: i64,
}

#[derive(Default)]
struct Heads {
    series: HashMap<SeriesId, SeriesHead>,
    total_points: usize,
}

/// What the store knows of one series in memory: its unflushed readings and where its flushed data ends.
#[derive(Default)]
struct SeriesHead {
    points: Points,
    /// The first and last log rows whose readings are in `points`.
    first_seq: i64,
    last_seq: i64,
    since: Option<Instant>,
    /// Every reading of this series from log rows up to here is in blocks.
    flushed_seq: i64,
    flushed_max_ts: Option<i64>,
    flushed_last: Option<(i64, f64)>,
}

impl SeriesHead {
    /// Inserts keeping `points` sorted; a repeated timestamp replaces the value.
    fn insert(&mut self, ts: i64, value: f64, seq: i64) -> bool {
        if self.points.is_empty() {
            self.first_seq = seq;
            self.since = Some(Instant::now());
        }
        self.last_seq = seq;
        match self.points.last() {
            Some(last) if last.0 < ts => {
                self.points.push((ts, value));
                true
            }
            None => {
                self.points.push((ts, value));
                true
            }
            _ => match self.points.binary_search_by_key(&ts, |p| p.0) {
                Ok(i) => {
                    self.points[i].1 = value;
                    false
                }
                Err(i) => {
                    self.points.insert(i, (ts, value));
                    true
                }
            },
        }
    }

    fn in_range(&self, range: TimeRange) -> &[(i64, f64)] {
        let start = self.points.partition_point(|p| p.0 < range.from);
        let end = self.points.partition_point(|p| p.0 < range.to);
        &self.points[start..end]
    }

    fn latest(&self) -> Option<(i64, f64)> {
        self.points.last().copied().or(self.flushed_last)
    }
}

/// One series' part of a flush.
struct FlushPlan {
    series: SeriesId,
    points: Points,
    last_seq: i64,
    flushed_max_ts: Option<i64>,
    flushed_last: Option<(i64, f64)>,
    /// Set by the flush: the series' new flushed state.
    new_max_ts: Option<i64>,
    new_last: Option<(i64, f64)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_by_series_end ON blocks (series, end_ts);
CREATE TABLE IF NOT EXISTS rollup_1m (
    series INTEGER NOT NULL, ts INTEGER NOT NULL, n INTEGER NOT NULL,
    total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, first REAL NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (
    series INTEGER NOT NULL, ts INTEGER NOT NULL, n INTEGER NOT NULL,
    total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, first REAL NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series_state (
    series INTEGER PRIMARY KEY,
    flushed_seq INTEGER NOT NULL,
    max_ts INTEGER,
    last_ts INTEGER,
    last_value REAL
);
";

fn storage_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
        _ => StoreError::Storage(err.to_string()),
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(storage_error)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(storage_error)?;
    if !read_only {
        // Large pages keep a block's blob on its page instead of overflow chains; must precede WAL mode.
        conn.execute_batch(
            "PRAGMA page_size = 65536;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -65536;",
        )
        .map_err(storage_error)?;
    } else {
        conn.execute_batch("PRAGMA cache_size = -16384;")
            .map_err(storage_error)?;
    }
    Ok(conn)
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`, replays its log and starts the flusher.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Storage(format!("creating {}: {e}", dir.display())))?;
        let lock_path = dir.join("timeseries.lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| StoreError::Storage(format!("creating {}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|_| {
            StoreError::Storage(format!(
                "the time-series store in {} is in use by another Gantry process",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        let conn = open_connection(&path, false)?;
        conn.execute_batch(SCHEMA).map_err(storage_error)?;

        let mut heads = Heads::default();
        let mut max_seq = 0_i64;
        {
            let mut stmt = conn
                .prepare("SELECT series, flushed_seq, max_ts, last_ts, last_value FROM series_state")
                .map_err(storage_error)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, Option<f64>>(4)?,
                    ))
                })
                .map_err(storage_error)?;
            for row in rows {
                let (series, flushed_seq, max_ts, last_ts, last_value) = row.map_err(storage_error)?;
                max_seq = max_seq.max(flushed_seq);
                heads.series.insert(
                    series,
                    SeriesHead {
                        flushed_seq,
                        flushed_max_ts: max_ts,
                        flushed_last: last_ts.zip(last_value),
                        ..Default::default()
                    },
                );
            }
        }
        let log_max: Option<i64> = conn
            .query_row("SELECT max(seq) FROM log", [], |row| row.get(0))
            .map_err(storage_error)?;
        max_seq = max_seq.max(log_max.unwrap_or(0));

        let inner = Arc::new(Inner {
            path,
            options,
            writer: Mutex::new(Writer {
                conn,
                next_seq: max_seq + 1,
            }),
            heads: RwLock::new(heads),
            readers: Mutex::new(Vec::new()),
        });
        let replayed = inner.replay()?;
        if replayed > 0 {
            tracing::info!(records = replayed, "Replayed the time-series log.");
        }

        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let inner = inner.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("gantry-ts-flush".into())
                .spawn(move || inner.flush_loop(&stop))
                .map_err(|e| StoreError::Storage(format!("starting the flusher: {e}")))?
        };
        Ok(EmbeddedStore {
            inner,
            stop,
            flusher: Mutex::new(Some(flusher)),
            _lock: lock,
        })
    }

    /// Moves every head into blocks now (shutdown, tests, benchmarks).
    pub fn flush_all(&self) -> Result<(), StoreError> {
        self.inner.flush_all()
    }

    /// Bytes the store occupies on disk (the database and its write-ahead log).
    pub fn disk_bytes(&self) -> u64 {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.inner.path.clone().into_os_string();
            name.push(suffix);
            total += std::fs::metadata(&name).map(|m| m.len()).unwrap_or(0);
        }
        total
    }

    /// Compacts the file after large deletions (a maintenance task; it rewrites the whole file).
    pub fn vacuum(&self) -> Result<(), StoreError> {
        let writer = self.inner.lock_writer();
        writer
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(storage_error)
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Storage(format!("a store task failed: {e}")))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.flusher.lock_unpoisoned().take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
        // Not required for durability (the log has everything), but it makes the next start-up quick.
        if let Err(err) = self.flush_all() {
            tracing::warn!(error = %err, "Could not flush the time-series heads at shutdown; the log keeps them.");
        }
    }
}

impl Inner {
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the writer leaves SQLite consistent (transactions roll back), so carry on.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn flush_all(&self) -> Result<(), StoreError> {
        let mut writer = self.lock_writer();
        let all: Vec<SeriesId> = {
            let heads = self.heads.read_unpoisoned();
            heads
                .series
                .iter()
                .filter(|(_, h)| !h.points.is_empty())
                .map(|(s, _)| *s)
                .collect()
        };
        for chunk in all.chunks(512) {
            self.flush(&mut writer, chunk, HashMap::new(), None)?;
        }
        // Fold the write-ahead log into the database file. (Pages the store's log freed stay in the file and are
        // reused by later writes.)
        writer
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(storage_error)
    }

    fn replay(&self) -> Result<usize, StoreError> {
        let mut writer = self.lock_writer();
        let records: Vec<(i64, Vec<u8>)> = {
            let mut stmt = writer
                .conn
                .prepare("SELECT seq, data FROM log ORDER BY seq")
                .map_err(storage_error)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(storage_error)?;
            rows.collect::<Result<_, _>>().map_err(storage_error)?
        };
        for (seq, data) in &records {
            match LogRecord::decode(data)? {
                LogRecord::Write(readings) => self.apply_write(&mut writer, *seq, &readings)?,
                LogRecord::Delete(series, range) => self.apply_delete(&mut writer, *seq, series, range)?,
            }
        }
        Ok(records.len())
    }

    fn append_log(&self, writer: &mut Writer, record: &LogRecord) -> Result<i64, StoreError> {
        let seq = writer.next_seq;
        writer
            .conn
            .prepare_cached("INSERT INTO log (seq, data) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![seq, record.encode()]))
            .map_err(storage_error)?;
        writer.next_seq += 1;
        Ok(seq)
    }

    fn write(&self, readings: Vec<(SeriesId, i64, f64)>) -> Result<(), StoreError> {
        let record = LogRecord::Write(readings);
        let mut writer = self.lock_writer();
        let seq = self.append_log(&mut writer, &record)?;
        let LogRecord::Write(readings) = record else {
            unreachable!("built as a write above")
        };
        // Durable from here on; a failure below is repaired by replay at the next start.
        self.apply_write(&mut writer, seq, &readings)
    }

    /// Puts a logged batch into the heads; series it reaches into the flushed past are merged into blocks now.
    fn apply_write(&self, writer: &mut Writer, seq: i64, readings: &[(SeriesId, i64, f64)]) -> Result<(), StoreError> {
        let mut late: HashMap<SeriesId, Points> = HashMap::new();
        {
            let mut heads = self.heads.write_unpoisoned();
            let Heads { series, total_points } = &mut *heads;
            for &(id, ts, value) in readings {
                let head = series.entry(id).or_default();
                if head.flushed_seq >= seq {
                    continue; // replay: this series' readings of this record are already in blocks
                }
                if late.contains_key(&id) || head.flushed_max_ts.is_some_and(|max| ts <= max) {
                    late.entry(id).or_default().push((ts, value));
                    continue;
                }
                if head.insert(ts, value, seq) {
                    *total_points += 1;
                }
            }
        }
        if late.is_empty() {
            return Ok(());
        }
        // The readings of a late series that went to its head before the first late one are flushed with it.
        let ids: Vec<SeriesId> = late.keys().copied().collect();
        for points in late.values_mut() {
            block::sort_last_wins(points);
        }
        self.flush(writer, &ids, late, Some(seq)).map(|_| ())
    }

    fn apply_delete(
        &self,
        writer: &mut Writer,
        seq: i64,
        series: SeriesId,
        range: TimeRange,
    ) -> Result<(), StoreError> {
        let flushed_seq = {
            let heads = self.heads.read_unpoisoned();
            heads.series.get(&series).map_or(0, |h| h.flushed_seq)
        };
        if flushed_seq >= seq {
            return Ok(());
        }
        self.flush_with(writer, &[series], HashMap::new(), Some(seq), Some((series, range)))
            .map(|_| ())
    }

    fn flush(
        &self,
        writer: &mut Writer,
        ids: &[SeriesId],
        extra: HashMap<SeriesId, Points>,
        seq: Option<i64>,
    ) -> Result<usize, StoreError> {
        self.flush_with(writer, ids, extra, seq, None)
    }

    /// Moves the whole head of each series (plus `extra` readings, newer than the head) into blocks and rollups in
    /// one transaction, optionally deleting a range of one series in it too, then trims the log.
    fn flush_with(
        &self,
        writer: &mut Writer,
        ids: &[SeriesId],
        mut extra: HashMap<SeriesId, Points>,
        seq: Option<i64>,
        delete: Option<(SeriesId, TimeRange)>,
    ) -> Result<usize, StoreError> {
        let mut plans: Vec<FlushPlan> = {
            let heads = self.heads.read_unpoisoned();
            ids.iter()
                .map(|&id| {
                    let head = heads.series.get(&id);
                    let mut points = head.map(|h| h.points.clone()).unwrap_or_default();
                    if let Some(newer) = extra.remove(&id) {
                        points = block::merge(&points, &newer);
                    }
                    let last_seq = seq.into_iter().chain(head.map(|h| h.last_seq)).max().unwrap_or(0);
                    FlushPlan {
                        series: id,
                        points,
                        last_seq: last_seq.max(head.map_or(0, |h| h.flushed_seq)),
                        flushed_max_ts: head.and_then(|h| h.flushed_max_ts),
                        flushed_last: head.and_then(|h| h.flushed_last),
                        new_max_ts: None,
                        new_last: None,
                    }
                })
                .collect()
        };
        let block_points = self.options.block_points;
        let flushed_points: usize = plans.iter().map(|p| p.points.len()).sum();
        let tx = writer.conn.transaction().map_err(storage_error)?;
        for plan in &mut plans {
            write_plan(&tx, plan, block_points)?;
            if let Some((series, range)) = delete.filter(|(s, _)| *s == plan.series) {
                delete_in_blocks(&tx, series, range, block_points)?;
                let last = newest_in_blocks(&tx, series)?;
                plan.new_max_ts = last.map(|l| l.0).or(plan.new_max_ts);
                plan.new_last = last;
            }
            tx.prepare_cached(
                "INSERT INTO series_state (series, flushed_seq, max_ts, last_ts, last_value) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (series) DO UPDATE SET flushed_seq = excluded.flushed_seq, max_ts = excluded.max_ts,
                     last_ts = excluded.last_ts, last_value = excluded.last_value",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    plan.series,
                    plan.last_seq,
                    plan.new_max_ts,
                    plan.new_last.map(|l| l.0),
                    plan.new_last.map(|l| l.1)
                ])
            })
            .map_err(storage_error)?;
        }
        // The log keeps rows from the oldest reading still in a head onwards.
        let flushing: HashSet<SeriesId> = ids.iter().copied().collect();
        let keep_from = {
            let heads = self.heads.read_unpoisoned();
            heads
                .series
                .iter()
                .filter(|(id, h)| !h.points.is_empty() && !flushing.contains(id))
                .map(|(_, h)| h.first_seq)
                .min()
                .unwrap_or(writer.next_seq)
        };
        tx.prepare_cached("DELETE FROM log WHERE seq < ?1")
            .and_then(|mut stmt| stmt.execute([keep_from]))
            .map_err(storage_error)?;

        // Readers take their snapshot under the read lock, so they see the heads before or the blocks after.
        let mut heads = self.heads.write_unpoisoned();
        tx.commit().map_err(storage_error)?;
        for plan in plans {
            let head = heads.series.entry(plan.series).or_default();
            let removed = head.points.len();
            head.points = Vec::new();
            head.since = None;
            head.flushed_seq = plan.last_seq;
            head.flushed_max_ts = plan.new_max_ts;
            head.flushed_last = plan.new_last;
            heads.total_points -= removed;
        }
        metrics::counter!("gantry_timeseries_flushed_readings_total").increment(flushed_points as u64);
        Ok(flushed_points)
    }

    fn flush_loop(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            std::thread::park_timeout(self.options.flush_interval);
            if stop.load(Ordering::Acquire) {
                break;
            }
            if let Err(err) = self.flush_due() {
                // Heads stay in memory and in the log; the next round tries again (after a full disk is freed, say).
                tracing::warn!(error = %err, "Flushing time-series heads failed; retrying.");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// Flushes full heads, old heads, and the largest heads while memory is over budget, a bounded piece at a time
    /// so writers get the lock in between.
    fn flush_due(&self) -> Result<(), StoreError> {
        let options = &self.options;
        loop {
            let due: Vec<SeriesId> = {
                let heads = self.heads.read_unpoisoned();
                metrics::gauge!("gantry_timeseries_head_readings").set(heads.total_points as f64);
                let mut due: Vec<(usize, SeriesId)> = heads
                    .series
                    .iter()
                    .filter(|(_, h)| {
                        h.points.len() >= options.block_points
                            || h.since.is_some_and(|since| since.elapsed() >= options.max_head_age)
                    })
                    .map(|(id, h)| (h.points.len(), *id))
                    .collect();
                if heads.total_points > options.max_head_points {
                    let mut largest: Vec<(usize, SeriesId)> = heads
                        .series
                        .iter()
                        .filter(|(_, h)| !h.points.is_empty())
                        .map(|(id, h)| (h.points.len(), *id))
                        .collect();
                    largest.sort_unstable_by(|a, b| b.cmp(a));
                    let mut excess = heads.total_points - options.max_head_points * 3 / 4;
                    for (len, id) in largest {
                        if excess == 0 {
                            break;
                        }
                        excess = excess.saturating_sub(len);
                        due.push((len, id));
                    }
                }
                due.sort_unstable();
                due.dedup();
                // About a second of writing per transaction at most.
                let mut budget = 1_000_000_usize;
                due.into_iter()
                    .rev()
                    .take_while(|(len, _)| {
                        let go = budget > 0;
                        budget = budget.saturating_sub(*len);
                        go
                    })
                    .map(|(_, id)| id)
                    .collect()
            };
            if due.is_empty() {
                return Ok(());
            }
            let mut writer = self.lock_writer();
            self.flush(&mut writer, &due, HashMap::new(), None)?;
        }
    }

    fn reader(&self) -> Result<ReaderGuard<'_>, StoreError> {
        let pooled = self.readers.lock_unpoisoned().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, true)?,
        };
        Ok(ReaderGuard {
            pool: &self.readers,
            conn: Some(conn),
        })
    }

    /// A consistent view of one series: its head readings in `range` and an open read transaction.
    fn snapshot(&self, series: SeriesId, range: TimeRange) -> Result<(Points, ReaderGuard<'_>), StoreError> {
        let reader = self.reader()?;
        let heads = self.heads.read_unpoisoned();
        let head_points = heads
            .series
            .get(&series)
            .map(|h| h.in_range(range).to_vec())
            .unwrap_or_default();
        let conn = reader.conn();
        conn.execute_batch("BEGIN").map_err(storage_error)?;
        // The first read fixes the snapshot; do it before the flusher can commit.
        conn.query_row("SELECT count(*) FROM series_state WHERE series = ?1", [series], |_| {
            Ok(())
        })
        .map_err(storage_error)?;
        drop(heads);
        Ok((head_points, reader))
    }

    fn read_raw(&self, series: SeriesId, range: TimeRange, limit: usize) -> Result<Vec<Point>, StoreError> {
        let (head, reader) = self.snapshot(series, range)?;
        let mut out = Vec::new();
        visit_blocks(reader.conn(), series, range, |ts, value| {
            if out.len() >= limit {
                return ControlFlow::Break(());
            }
            out.push(Point { ts, value });
            ControlFlow::Continue(())
        })?;
        drop(reader); // ends the read snapshot and returns the connection to the pool
        let room = limit.saturating_sub(out.len());
        out.extend(head.into_iter().take(room).map(|(ts, value)| Point { ts, value }));
        Ok(out)
    }

    fn read_aggregated(&self, series: SeriesId, range: TimeRange, bucket_ms: i64) -> Result<Aggregated, StoreError> {
        if bucket_ms <= 0 {
            return Err(StoreError::Invalid(format!(
                "the bucket width must be positive, not {bucket_ms}"
            )));
        }
        let resolution = resolution_for(bucket_ms);
        let (head, reader) = self.snapshot(series, range)?;
        let mut buckets = BucketSet::new(bucket_ms);
        aggregate_flushed(reader.conn(), series, range, resolution, &mut buckets)?;
        drop(reader); // ends the read snapshot and returns the connection to the pool
        for (ts, value) in head {
            buckets.add_point(ts, value);
        }
        Ok(Aggregated {
            resolution,
            buckets: buckets.into_buckets(),
        })
    }

    fn latest(&self, ids: &[SeriesId]) -> HashMap<SeriesId, Point> {
        let heads = self.heads.read_unpoisoned();
        ids.iter()
            .filter_map(|id| {
                let (ts, value) = heads.series.get(id)?.latest()?;
                Some((*id, Point { ts, value }))
            })
            .collect()
    }

    fn delete_range(&self, series: SeriesId, range: TimeRange) -> Result<(), StoreError> {
        let mut writer = self.lock_writer();
        let seq = self.append_log(&mut writer, &LogRecord::Delete(series, range))?;
        self.apply_delete(&mut writer, seq, series, range)
    }

    fn apply_retention(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<RetentionReport, StoreError> {
        let ids: Vec<SeriesId> = {
            let heads = self.heads.read_unpoisoned();
            heads.series.keys().copied().collect()
        };
        let mut report = RetentionReport::default();
        // A few series per transaction, so writers wait for milliseconds, not for the whole pass.
        for chunk in ids.chunks(64) {
            let mut writer = self.lock_writer();
            let tx = writer.conn.transaction().map_err(storage_error)?;
            for &id in chunk {
                let keep = policy.for_series(id);
                if let Some(ms) = keep.raw_ms {
                    report.raw_blocks += tx
                        .prepare_cached("DELETE FROM blocks WHERE series = ?1 AND end_ts < ?2")
                        .and_then(|mut s| s.execute(params![id, now_ms - ms]))
                        .map_err(storage_error)? as u64;
                }
                if let Some(ms) = keep.minute_ms {
                    report.minute_rows += tx
                        .prepare_cached("DELETE FROM rollup_1m WHERE series = ?1 AND ts < ?2")
                        .and_then(|mut s| s.execute(params![id, floor_to(now_ms - ms, MINUTE_MS)]))
                        .map_err(storage_error)? as u64;
                }
                if let Some(ms) = keep.hour_ms {
                    report.hour_rows += tx
                        .prepare_cached("DELETE FROM rollup_1h WHERE series = ?1 AND ts < ?2")
                        .and_then(|mut s| s.execute(params![id, floor_to(now_ms - ms, HOUR_MS)]))
                        .map_err(storage_error)? as u64;
                }
            }
            tx.commit().map_err(storage_error)?;
        }
        Ok(report)
    }
}

/// A pooled read connection, returned to the pool when dropped.
struct ReaderGuard<'a> {
    pool: &'a Mutex<Vec<Connection>>,
    conn: Option<Connection>,
}

impl ReaderGuard<'_> {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok() {
                self.pool.lock_unpoisoned().push(conn);
            }
        }
    }
}

#[async_trait]
impl TimeSeriesStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn write(&self, batch: Vec<Reading>) -> Result<(), StoreError> {
        check_values(&batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u64;
        let readings: Vec<(SeriesId, i64, f64)> = batch.iter().map(|r| (r.series, r.ts, r.value.as_f64())).collect();
        let started = Instant::now();
        self.blocking(move |inner| inner.write(readings)).await?;
        metrics::counter!("gantry_timeseries_written_readings_total").increment(count);
        metrics::histogram!("gantry_timeseries_write_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn read_raw(&self, series: SeriesId, range: TimeRange, limit: usize) -> Result<Vec<Point>, StoreError> {
        self.blocking(move |inner| inner.read_raw(series, range, limit)).await
    }

    async fn read_aggregated(
        &self,
        series: SeriesId,
        range: TimeRange,
        bucket_ms: i64,
    ) -> Result<Aggregated, StoreError> {
        self.blocking(move |inner| inner.read_aggregated(series, range, bucket_ms))
            .await
    }

    async fn latest(&self, series: &[SeriesId]) -> Result<HashMap<SeriesId, Point>, StoreError> {
        Ok(self.inner.latest(series))
    }

    async fn delete_range(&self, series: SeriesId, range: TimeRange) -> Result<(), StoreError> {
        self.blocking(move |inner| inner.delete_range(series, range)).await
    }

    async fn apply_retention(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<RetentionReport, StoreError> {
        let policy = policy.clone();
        self.blocking(move |inner| inner.apply_retention(&policy, now_ms)).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.flush_all()).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            let reader = inner.reader()?;
            reader
                .conn()
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(storage_error)
        })
        .await
    }
}

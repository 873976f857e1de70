//! The TDengine backend, the HA form's time-series store, through the `taos` crate: `ws://` reaches taosAdapter,
//! `taos://` the native client library, loaded at run time (`TAOS_LIBRARY_PATH` or the DSN's `libraryPath`).
//!
//! Layout: one database (`PRECISION 'ms'`, `KEEP` from the raw retention, `CACHEMODEL 'last_row'`, WAL fsynced
//! on every write so an acknowledged batch is durable), a super table per value type with the series id as its tag,
//! and one subtable per series named `s_<id>`. Writes are multi-table `INSERT … USING … TAGS … VALUES` with
//! database-qualified names; TDengine's active-active mode forbids parameter binding and `USE`, so neither is used.
//! Only integers and numbers Gantry formats itself ever reach SQL text, never text a user typed.
//!
//! Minute and hour rollups live in a second database, written by Gantry: see [`rollups`].
//!
//! Failover mirrors TDengine's active-active client settings: a primary and a secondary DSN, a reconnect interval
//! and a retry count. When a call fails and the connection no longer answers, the store reconnects (the other
//! endpoint first), retries the call, and counts the switch in `gantry_timeseries_failovers_total`.

mod rollups;

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use taos::{AsyncFetchable, AsyncQueryable, AsyncTBuilder, Taos, TaosBuilder};
use tokio::sync::RwLock;

use super::{
    check_values, resolution_for, Aggregated, Point, Reading, RetentionPolicy, RetentionReport, SeriesId, StoreError,
    TimeRange, TimeSeriesStore, Value,
};
use crate::config::{TdengineConfig, TierConfig};

pub use rollups::RolledUntil;

/// TDengine's SQL statements are limited to 1 MB by default; batches are split well below that.
const MAX_STATEMENT_BYTES: usize = 512 * 1024;
/// What TDengine answers about the readings themselves (as opposed to itself): such a refusal is the request's,
/// answered 422, and the pipeline writes the other requests of the same batch on their own.
const REFUSED_DATA: &[&str] = &[
    "Timestamp data out of range",
    "Timestamp out of range",
    OTHER_TYPE,
    "Invalid value",
];
/// How many latest-value queries run at once.
const LATEST_CONCURRENCY: usize = 8;
/// A call that takes longer than this counts as a lost connection.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `name` is safe to use unquoted as a TDengine identifier.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

#[derive(Clone)]
pub struct TdengineStore {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<SecretString>,
    database: String,
    /// Where the rollups live: `<database>_rollups`.
    rollups_database: String,
    keep_days: Option<u32>,
    reconnect_interval: Duration,
    retry_count: u32,
    /// How old a late-write mark must be before a maintenance pass takes it (see [`rollups`]).
    marks_settle: Duration,
    /// The endpoint in use and its connection.
    current: RwLock<Option<(usize, Arc<Taos>)>>,
    /// The index of the endpoint last connected to (`usize::MAX`: none yet), readable without the lock.
    serving: AtomicUsize,
    /// The last watermark read, when, and from which endpoint.
    rolled: std::sync::Mutex<Option<rollups::CachedWatermark>>,
}

fn storage(err: taos::Error) -> StoreError {
    StoreError::Storage(format!("TDengine: {}", err.message()))
}

fn table_missing(err: &taos::Error) -> bool {
    // "Table does not exist" (parser 0x2603, client 0x2662): a series with no readings yet.
    let code = i32::from(err.code());
    code == 0x2603 || code == 0x2662 || err.message().contains("does not exist")
}

impl TdengineStore {
    /// Connects to the first endpoint that answers and creates the databases and super tables if missing. The raw
    /// readings' database keeps `tiers.raw_days` (its KEEP); the rollups' keeps everything, trimmed per tier by
    /// retention passes.
    pub async fn connect(config: &TdengineConfig, tiers: &TierConfig) -> Result<TdengineStore, StoreError> {
        let raw_days = (tiers.raw_days > 0).then_some(tiers.raw_days);
        Self::connect_with(config, raw_days, rollups::MARKS_SETTLE).await
    }

    async fn connect_with(
        config: &TdengineConfig,
        raw_retention_days: Option<u32>,
        marks_settle: Duration,
    ) -> Result<TdengineStore, StoreError> {
        let endpoints: Vec<SecretString> = [&config.dsn, &config.secondary_dsn]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::Invalid("timeseries.tdengine.dsn is not set".into()));
        }
        let rollups_database = format!("{}_rollups", config.database);
        if !is_identifier(&rollups_database) {
            return Err(StoreError::Invalid(format!(
                "{:?} is not a valid database name (letters, digits and `_`, at most 56 characters)",
                config.database
            )));
        }
        let store = TdengineStore {
            inner: Arc::new(Inner {
                endpoints,
                database: config.database.clone(),
                rollups_database,
                keep_days: raw_retention_days,
                reconnect_interval: Duration::from_millis(config.reconnect_interval_ms),
                retry_count: config.retry_count.max(1),
                marks_settle,
                current: RwLock::new(None),
                serving: AtomicUsize::new(usize::MAX),
                rolled: std::sync::Mutex::new(None),
            }),
        };
        store.connection().await?;
        Ok(store)
    }

    /// A store on one endpoint with its own databases, for the shared test suite: raw readings kept 30 days, and
    /// late-write marks taken by the next maintenance pass however fresh (a test calls the passes itself).
    pub async fn connect_for_tests(dsn: &str, database: &str) -> Result<TdengineStore, StoreError> {
        let config = TdengineConfig {
            dsn: Some(SecretString::from(dsn.to_string())),
            database: database.to_string(),
            reconnect_interval_ms: 500,
            ..TdengineConfig::default()
        };
        Self::connect_with(&config, Some(30), Duration::ZERO).await
    }

    /// Drops the databases (test clean-up), from a thread of its own so it works inside a runtime or outside one.
    pub fn drop_database_blocking(&self) {
        let store = self.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                for db in [&store.inner.database, &store.inner.rollups_database] {
                    let _ = runtime.block_on(store.exec(format!("DROP DATABASE IF EXISTS {db}")));
                }
            }
        })
        .join();
    }

    /// The database and super tables, created where missing. Run on every endpoint Gantry connects to, so a
    /// secondary that has never seen Gantry takes writes the moment it is failed over to.
    fn schema_statements(&self) -> Vec<String> {
        let db = &self.inner.database;
        let keep = self.inner.keep_days.map_or(365_000, |d| d.max(1));
        let mut statements = vec![format!(
            "CREATE DATABASE IF NOT EXISTS {db} PRECISION 'ms' KEEP {keep}d CACHEMODEL 'last_row' \
             WAL_LEVEL 2 WAL_FSYNC_PERIOD 0"
        )];
        for (table, column) in [
            ("readings_float", "DOUBLE"),
            ("readings_int", "BIGINT"),
            ("readings_bool", "BOOL"),
        ] {
            statements.push(format!(
                "CREATE STABLE IF NOT EXISTS {db}.{table} (ts TIMESTAMP, v {column}) TAGS (series BIGINT)"
            ));
        }
        statements.extend(rollups::schema_statements(&self.inner.rollups_database));
        statements
    }

    async fn connection(&self) -> Result<(usize, Arc<Taos>), StoreError> {
        if let Some(current) = self.inner.current.read().await.as_ref() {
            return Ok(current.clone());
        }
        self.reconnect(None).await
    }

    /// Connects to the first endpoint that answers, starting after the one that failed; `retry_count` rounds over
    /// the endpoints, `reconnect_interval` apart.
    async fn reconnect(&self, failed: Option<usize>) -> Result<(usize, Arc<Taos>), StoreError> {
        let mut current = self.inner.current.write().await;
        // Another caller may have reconnected while this one waited for the lock.
        if let Some((index, taos)) = current.as_ref() {
            if Some(*index) != failed {
                return Ok((*index, taos.clone()));
            }
        }
        *current = None;
        let n = self.inner.endpoints.len();
        let start = failed.map_or(0, |f| (f + 1) % n);
        let mut last_error = String::new();
        for round in 0..self.inner.retry_count {
            if round > 0 {
                tokio::time::sleep(self.inner.reconnect_interval).await;
            }
            for offset in 0..n {
                let index = (start + offset) % n;
                match self.open(&self.inner.endpoints[index]).await {
                    Ok(taos) => {
                        if failed.is_some() {
                            metrics::counter!("gantry_timeseries_failovers_total").increment(1);
                            tracing::warn!(endpoint = index, "Reconnected to TDengine after losing a connection.");
                        }
                        let taos = Arc::new(taos);
                        self.inner.serving.store(index, Ordering::Relaxed);
                        *current = Some((index, taos.clone()));
                        return Ok((index, taos));
                    }
                    Err(err) => last_error = err,
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "no TDengine endpoint answers ({last_error})"
        )))
    }

    async fn open(&self, dsn: &SecretString) -> Result<Taos, String> {
        let connect = async {
            let builder = TaosBuilder::from_dsn(dsn.expose_secret()).map_err(|e| e.message())?;
            let taos = builder.build().await.map_err(|e| e.message())?;
            for statement in self.schema_statements() {
                taos.exec(statement).await.map_err(|e| e.message())?;
            }
            Ok(taos)
        };
        tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| Err("connecting timed out".into()))
    }

    async fn alive(taos: &Taos) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(3), taos.exec("SELECT SERVER_VERSION()")).await,
            Ok(Ok(_))
        )
    }

    /// Runs `sql`, failing over and retrying when the connection is lost (a write of the same rows twice is
    /// harmless: the same series and timestamp replace).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<Taos>) -> Fut,
        Fut: std::future::Future<Output = Result<T, taos::Error>>,
    {
        let mut failovers = 0;
        loop {
            let (index, taos) = self.connection().await?;
            let outcome = tokio::time::timeout(CALL_TIMEOUT, call(taos.clone())).await;
            let err = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if Self::alive(&taos).await => return Err(Self::classify(err)),
                Ok(Err(err)) => err.message(),
                Err(_) => "the call timed out".to_string(),
            };
            failovers += 1;
            if failovers > self.inner.endpoints.len() * self.inner.retry_count as usize {
                return Err(StoreError::Unavailable(err));
            }
            tracing::warn!(endpoint = index, error = %err, "Lost the TDengine connection; failing over.");
            self.reconnect(Some(index)).await?;
        }
    }

    fn classify(err: taos::Error) -> StoreError {
        let message = err.message();
        if message.contains("No enough disk space") || message.contains("disk space") {
            StoreError::DiskFull
        } else if REFUSED_DATA.iter().any(|refusal| message.contains(refusal)) {
            StoreError::Refused(format!("TDengine: {message}"))
        } else {
            storage(err)
        }
    }

    async fn exec(&self, sql: String) -> Result<usize, StoreError> {
        self.run(|taos| {
            let sql = sql.clone();
            async move { taos.exec(sql).await }
        })
        .await
    }

    async fn records(&self, sql: String) -> Result<Vec<Vec<taos::Value>>, StoreError> {
        self.run(|taos| {
            let sql = sql.clone();
            async move {
                let mut result = taos.query(sql).await?;
                result.to_records().await
            }
        })
        .await
    }

    /// Like [`records`], treating a missing subtable (a series never written) as no rows.
    async fn series_records(&self, sql: String) -> Result<Vec<Vec<taos::Value>>, StoreError> {
        let outcome = self
            .run(|taos| {
                let sql = sql.clone();
                async move {
                    match taos.query(sql).await {
                        Ok(mut result) => result.to_records().await.map(Some),
                        Err(err) if table_missing(&err) => Ok(None),
                        Err(err) => Err(err),
                    }
                }
            })
            .await?;
        Ok(outcome.unwrap_or_default())
    }

    /// Like [`exec`], treating a missing subtable as nothing done.
    async fn series_exec(&self, sql: String) -> Result<usize, StoreError> {
        let outcome = self
            .run(|taos| {
                let sql = sql.clone();
                async move {
                    match taos.exec(sql).await {
                        Ok(affected) => Ok(affected),
                        Err(err) if table_missing(&err) => Ok(0),
                        Err(err) => Err(err),
                    }
                }
            })
            .await?;
        Ok(outcome)
    }

    #[cfg(test)]
    fn insert_statements(&self, batch: &[Reading]) -> Vec<String> {
        self.insert_statements_within(batch, MAX_STATEMENT_BYTES)
            .into_iter()
            .map(|(sql, _)| sql)
            .collect()
    }

    /// Multi-table INSERT statements for `batch`, of at most about `max_bytes` each; see [`multi_table_inserts`].
    fn insert_statements_within(&self, batch: &[Reading], max_bytes: usize) -> Vec<(String, usize)> {
        let db = &self.inner.database;
        let mut by_series: BTreeMap<SeriesId, Vec<&Reading>> = BTreeMap::new();
        for reading in batch {
            by_series.entry(reading.series).or_default().push(reading);
        }
        let groups = by_series.iter().map(|(series, readings)| {
            let stable = match readings[0].value {
                Value::Float(_) => "readings_float",
                Value::Integer(_) => "readings_int",
                Value::Boolean(_) => "readings_bool",
            };
            (
                format!(" {db}.s_{series} USING {db}.{stable} TAGS ({series}) VALUES"),
                readings.as_slice(),
            )
        });
        multi_table_inserts(
            groups,
            |out, reading| {
                let _ = match reading.value {
                    Value::Float(v) => write!(out, " ({}, {v:e})", reading.ts),
                    Value::Integer(v) => write!(out, " ({}, {v})", reading.ts),
                    Value::Boolean(v) => write!(out, " ({}, {v})", reading.ts),
                };
            },
            max_bytes,
        )
    }

    /// Writes each series of `batch` on its own; returns the series TDengine refused, with its reason. A series
    /// whose subtable holds another value type (its attribute's type changed since it was made) takes its readings
    /// in that type where they convert without loss.
    async fn write_series_apart(&self, batch: &[Reading]) -> Result<Vec<(SeriesId, String)>, StoreError> {
        let mut by_series: BTreeMap<SeriesId, Vec<Reading>> = BTreeMap::new();
        for reading in batch {
            by_series.entry(reading.series).or_default().push(*reading);
        }
        let mut refused = Vec::new();
        for (series, readings) in by_series {
            let refusal = match self.write_one_series(&readings).await? {
                Some(reason) if reason.contains(OTHER_TYPE) => match self.in_stored_type(series, &readings).await? {
                    Ok(converted) => self.write_one_series(&converted).await?,
                    Err(why) => Some(why),
                },
                outcome => outcome,
            };
            if let Some(reason) = refusal {
                refused.push((series, reason));
            }
        }
        Ok(refused)
    }

    /// Writes one series' readings; `Some(reason)` if TDengine refused them.
    async fn write_one_series(&self, readings: &[Reading]) -> Result<Option<String>, StoreError> {
        for (sql, count) in self.insert_statements_within(readings, MAX_STATEMENT_BYTES) {
            match self.exec(sql).await {
                Ok(written) if written >= count => {}
                Ok(written) => return Ok(Some(format!("TDengine wrote {written} of {count} readings"))),
                Err(StoreError::Refused(reason)) => return Ok(Some(reason)),
                Err(other) => return Err(other),
            }
        }
        Ok(None)
    }

    /// The readings converted to the value type the series' subtable holds, or why they cannot be.
    async fn in_stored_type(
        &self,
        series: SeriesId,
        readings: &[Reading],
    ) -> Result<Result<Vec<Reading>, String>, StoreError> {
        let rows = self
            .records(format!(
                "SELECT stable_name FROM information_schema.ins_tables WHERE db_name = '{}' AND table_name = 's_{series}'",
                self.inner.database
            ))
            .await?;
        let stable = match rows.first().and_then(|row| row.first()) {
            Some(taos::Value::VarChar(name)) => name.clone(),
            Some(taos::Value::NChar(name)) => name.clone(),
            _ => return Ok(Err(format!("TDengine refused series {series}: {OTHER_TYPE}"))),
        };
        let held = stable.trim_start_matches("readings_").to_string();
        let converted: Option<Vec<Reading>> = readings
            .iter()
            .map(|r| convert(r.value, &held).map(|value| Reading { value, ..*r }))
            .collect();
        Ok(converted.ok_or_else(|| {
            format!(
                "series {series} is stored in TDengine as {held} readings (its attribute's type was changed since), \
                 and these readings cannot be stored as {held} without loss"
            )
        }))
    }
}

/// TDengine's refusal of a subtable created under another super table.
const OTHER_TYPE: &str = "already exists in other stables";

/// `value` as the type a super table holds (`float`, `int`, `bool`), if that loses nothing.
fn convert(value: Value, held: &str) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer up to it is exact as f64
    let as_float = value.as_f64();
    match held {
        "float" => match value {
            Value::Integer(i) if (i as f64).abs() > EXACT => None,
            _ => Some(Value::Float(as_float)),
        },
        "int" => match value {
            Value::Float(v) if v.fract() != 0.0 || v.abs() > EXACT => None,
            _ => Some(Value::Integer(as_float as i64)),
        },
        "bool" => match as_float {
            0.0 => Some(Value::Boolean(false)),
            1.0 => Some(Value::Boolean(true)),
            _ => None,
        },
        _ => None,
    }
}

/// Multi-table INSERT statements of at most about `max_bytes` each, from groups of rows that each go into one table
/// (its clause: ` db.table USING … TAGS (…) VALUES`), split only between rows: a clause is opened in a statement
/// only together with a row, so no clause is ever left without values (which TDengine refuses: "no any data
/// points"). Each statement comes with how many rows it carries.
fn multi_table_inserts<'a, T: 'a>(
    groups: impl IntoIterator<Item = (String, &'a [T])>,
    write_row: impl Fn(&mut String, &T),
    max_bytes: usize,
) -> Vec<(String, usize)> {
    let mut statements = Vec::new();
    let mut sql = String::new();
    let mut rows_in_sql = 0;
    let mut row = String::new();
    for (clause, rows) in groups {
        let mut clause_open = false;
        for item in rows {
            row.clear();
            write_row(&mut row, item);
            let needed = row.len() + if clause_open { 0 } else { clause.len() };
            if !sql.is_empty() && sql.len() + needed > max_bytes {
                statements.push((std::mem::take(&mut sql), rows_in_sql));
                rows_in_sql = 0;
                clause_open = false;
            }
            if sql.is_empty() {
                sql.push_str("INSERT INTO");
            }
            if !clause_open {
                sql.push_str(&clause);
                clause_open = true;
            }
            sql.push_str(&row);
            rows_in_sql += 1;
        }
    }
    if !sql.is_empty() {
        statements.push((sql, rows_in_sql));
    }
    statements
}

fn number(value: &taos::Value) -> Option<f64> {
    use taos::Value as V;
    Some(match value {
        V::Bool(v) => f64::from(u8::from(*v)),
        V::TinyInt(v) => f64::from(*v),
        V::SmallInt(v) => f64::from(*v),
        V::Int(v) => f64::from(*v),
        V::BigInt(v) => *v as f64,
        V::Float(v) => f64::from(*v),
        V::Double(v) => *v,
        V::UTinyInt(v) => f64::from(*v),
        V::USmallInt(v) => f64::from(*v),
        V::UInt(v) => f64::from(*v),
        V::UBigInt(v) => *v as f64,
        V::Timestamp(ts) => ts.as_raw_i64() as f64,
        _ => return None,
    })
}

fn integer(value: &taos::Value) -> Option<i64> {
    match value {
        taos::Value::Timestamp(ts) => Some(ts.as_raw_i64()),
        taos::Value::BigInt(v) => Some(*v),
        other => number(other).map(|v| v as i64),
    }
}

fn bad_row() -> StoreError {
    StoreError::Corrupt("TDengine answered a row of an unexpected shape".into())
}

#[async_trait]
impl TimeSeriesStore for TdengineStore {
    fn kind(&self) -> &'static str {
        "tdengine"
    }

    async fn write(&self, batch: Vec<Reading>) -> Result<(), StoreError> {
        check_values(&batch)?;
        let count = batch.len() as u64;
        let mut trouble = false;
        for (statement, readings) in self.insert_statements_within(&batch, MAX_STATEMENT_BYTES) {
            // TDengine may refuse one table of a multi-table INSERT and still answer OK with fewer rows written:
            // only a count that adds up means every reading is in.
            match self.exec(statement).await {
                Ok(written) if written >= readings => {}
                Ok(_) | Err(StoreError::Refused(_)) => trouble = true,
                Err(other) => return Err(other),
            }
        }
        let refused = if trouble {
            // Find which series TDengine refuses; the others are written (again: the same instant replaces).
            self.write_series_apart(&batch).await?
        } else {
            Vec::new()
        };
        self.mark_late(&batch).await?;
        if !refused.is_empty() {
            let listed: Vec<String> = refused
                .iter()
                .take(5)
                .map(|(series, reason)| format!("series {series}: {reason}"))
                .collect();
            return Err(StoreError::Refused(format!(
                "{} of the batch's series were refused ({}); the other readings are stored",
                refused.len(),
                listed.join("; ")
            )));
        }
        metrics::counter!("gantry_timeseries_written_readings_total").increment(count);
        Ok(())
    }

    async fn read_raw(&self, series: SeriesId, range: TimeRange, limit: usize) -> Result<Vec<Point>, StoreError> {
        let db = &self.inner.database;
        let rows = self
            .series_records(format!(
                "SELECT ts, v FROM {db}.s_{series} WHERE ts >= {} AND ts < {} ORDER BY ts LIMIT {limit}",
                range.from, range.to
            ))
            .await?;
        rows.iter()
            .map(|row| match row.as_slice() {
                [ts, v] => Some(Point {
                    ts: integer(ts)?,
                    value: number(v)?,
                }),
                _ => None,
            })
            .map(|p| p.ok_or_else(bad_row))
            .collect()
    }

    async fn read_aggregated(
        &self,
        series: SeriesId,
        range: TimeRange,
        bucket_ms: i64,
    ) -> Result<Aggregated, StoreError> {
        if bucket_ms <= 0 {
            return Err(StoreError::Invalid(format!(
                "the bucket width must be positive, not {bucket_ms}"
            )));
        }
        let resolution = resolution_for(bucket_ms);
        let buckets = self.aggregate(series, range, bucket_ms, resolution).await?;
        Ok(Aggregated {
            resolution,
            buckets: buckets.into_buckets(),
        })
    }

    async fn latest(&self, series: &[SeriesId]) -> Result<HashMap<SeriesId, Point>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        // One query per series' subtable, a few at a time, answered from the last-row cache. (A query over the
        // super tables, `… WHERE series IN (…) GROUP BY series`, now and then never answered on TDengine 3.3.7:
        // the charts benchmark's asset pages waited out the call timeout every few dozen requests.)
        let db = &self.inner.database;
        let answers: Vec<Option<(SeriesId, Point)>> = futures::stream::iter(series.iter().copied())
            .map(|id| async move {
                let rows = self
                    .series_records(format!("SELECT LAST_ROW(ts), LAST_ROW(v) FROM {db}.s_{id}"))
                    .await?;
                match rows.first().map(Vec::as_slice) {
                    None => Ok(None),
                    Some([ts, v]) => match (integer(ts), number(v)) {
                        (Some(ts), Some(value)) => Ok(Some((id, Point { ts, value }))),
                        // An empty subtable answers one row of NULLs.
                        _ => Ok(None),
                    },
                    Some(_) => Err(bad_row()),
                }
            })
            .buffer_unordered(LATEST_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(answers.into_iter().flatten().collect())
    }

    async fn delete_range(&self, series: SeriesId, range: TimeRange) -> Result<(), StoreError> {
        let db = &self.inner.database;
        self.series_exec(format!(
            "DELETE FROM {db}.s_{series} WHERE ts >= {} AND ts < {}",
            range.from, range.to
        ))
        .await?;
        self.forget_range(series, range).await
    }

    async fn apply_retention(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<RetentionReport, StoreError> {
        // The readings' database KEEP bounds the default raw tier; series whose tiers keep less are trimmed here,
        // and the rollups (kept forever by their database) to each series' tiers.
        let db = &self.inner.database;
        let mut report = RetentionReport::default();
        for stable in ["readings_float", "readings_int", "readings_bool"] {
            let rows = self
                .records(format!("SELECT DISTINCT series FROM {db}.{stable}"))
                .await?;
            for row in rows {
                let Some(id) = row.first().and_then(integer) else {
                    continue;
                };
                let keep = policy.for_series(id);
                if let Some(ms) = keep.raw_ms {
                    report.raw_blocks += self
                        .exec(format!("DELETE FROM {db}.s_{id} WHERE ts < {}", now_ms - ms))
                        .await? as u64;
                }
                let (minutes, hours) = self.trim_rollups(id, keep, now_ms).await?;
                report.minute_rows += minutes;
                report.hour_rows += hours;
            }
        }
        Ok(report)
    }

    async fn maintain(&self) -> Result<bool, StoreError> {
        self.maintain_rollups().await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.exec("SELECT SERVER_VERSION()".to_string()).await.map(|_| ())
    }

    fn degraded(&self) -> Option<String> {
        // Policy: once on the secondary, stay there until it fails in turn (docs/deployment.md says why).
        match self.inner.serving.load(Ordering::Relaxed) {
            0 | usize::MAX => None,
            _ => Some("writing to the secondary TDengine endpoint since the primary was lost".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_convert_to_a_stored_type_only_without_loss() {
        assert_eq!(convert(Value::Integer(20), "float"), Some(Value::Float(20.0)));
        assert_eq!(convert(Value::Boolean(true), "float"), Some(Value::Float(1.0)));
        assert_eq!(convert(Value::Float(20.0), "int"), Some(Value::Integer(20)));
        assert_eq!(convert(Value::Float(20.5), "int"), None);
        assert_eq!(convert(Value::Float(1e300), "int"), None);
        assert_eq!(convert(Value::Integer(i64::MAX), "float"), None);
        assert_eq!(convert(Value::Integer(0), "bool"), Some(Value::Boolean(false)));
        assert_eq!(convert(Value::Float(2.0), "bool"), None);
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(is_identifier("gantry"));
        assert!(is_identifier("gantry_2"));
        assert!(!is_identifier("2gantry"));
        assert!(!is_identifier("gantry; DROP DATABASE x"));
        assert!(!is_identifier(""));
    }

    impl TdengineStore {
        /// A store that is never connected: for the statements it would send.
        fn for_statements(database: &str) -> TdengineStore {
            TdengineStore {
                inner: Arc::new(Inner {
                    endpoints: vec![SecretString::from("ws://localhost:6041".to_string())],
                    database: database.into(),
                    rollups_database: format!("{database}_rollups"),
                    keep_days: None,
                    reconnect_interval: Duration::from_millis(1),
                    retry_count: 1,
                    marks_settle: Duration::ZERO,
                    current: RwLock::new(None),
                    serving: AtomicUsize::new(usize::MAX),
                    rolled: std::sync::Mutex::new(None),
                }),
            }
        }
    }

    #[test]
    fn inserts_are_multi_table_and_database_qualified() {
        let store = TdengineStore::for_statements("plant");
        let batch = vec![
            Reading {
                series: 7,
                ts: 1000,
                value: Value::Float(1.5),
            },
            Reading {
                series: 7,
                ts: 2000,
                value: Value::Float(-2.0),
            },
            Reading {
                series: 9,
                ts: 1000,
                value: Value::Boolean(true),
            },
        ];
        let statements = store.insert_statements(&batch);
        assert_eq!(statements.len(), 1);
        let sql = &statements[0];
        assert!(sql.starts_with("INSERT INTO "), "{sql}");
        assert!(
            sql.contains("plant.s_7 USING plant.readings_float TAGS (7) VALUES (1000, 1.5e0) (2000, -2e0)"),
            "{sql}"
        );
        assert!(
            sql.contains("plant.s_9 USING plant.readings_bool TAGS (9) VALUES (1000, true)"),
            "{sql}"
        );
        // A large batch is split below TDengine's statement limit, each statement complete.
        let big: Vec<Reading> = (0..100_000)
            .map(|i| Reading {
                series: 1,
                ts: i,
                value: Value::Float(i as f64),
            })
            .collect();
        let statements = store.insert_statements(&big);
        assert!(statements.len() > 1);
        for sql in &statements {
            assert!(sql.len() <= MAX_STATEMENT_BYTES + 100);
            assert!(sql.starts_with("INSERT INTO plant.s_1 USING plant.readings_float TAGS (1) VALUES ("));
        }
    }

    #[test]
    fn statements_split_only_between_readings_and_every_clause_has_values() {
        let store = TdengineStore::for_statements("plant");
        // Many series of a few readings each, and a limit a few clauses long: splits fall at every place, the
        // end of a series' readings included (where an empty clause used to be left behind).
        let batch: Vec<Reading> = (0..200)
            .flat_map(|series| {
                (0..(series % 4 + 1)).map(move |i| Reading {
                    series,
                    ts: 1_000 + i,
                    value: if series % 2 == 0 {
                        Value::Float(i as f64 + 0.5)
                    } else {
                        Value::Integer(i)
                    },
                })
            })
            .collect();
        for max_bytes in [150, 200, 333, 1_000] {
            let statements = store.insert_statements_within(&batch, max_bytes);
            let mut readings = 0;
            for (sql, count) in &statements {
                let before = readings;
                assert!(sql.starts_with("INSERT INTO "), "{sql}");
                let clauses: Vec<&str> = sql["INSERT INTO".len()..].split(" plant.s_").skip(1).collect();
                assert!(!clauses.is_empty(), "{sql}");
                for clause in clauses {
                    let (_, values) = clause.split_once(" VALUES").expect("a clause has VALUES");
                    let in_clause = values.matches(" (").count();
                    assert!(in_clause > 0, "a clause without values at limit {max_bytes}: {sql}");
                    readings += in_clause;
                }
                assert_eq!(readings - before, *count, "the readings a statement says it carries");
                // A statement goes over the limit only when one clause and one reading alone do.
                assert!(
                    sql.len() <= max_bytes.max(120),
                    "{} bytes at limit {max_bytes}",
                    sql.len()
                );
            }
            assert_eq!(readings, batch.len(), "readings lost or doubled at limit {max_bytes}");
        }
    }
}

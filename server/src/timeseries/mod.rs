//! Time series: where readings live. One object-safe trait, [`TimeSeriesStore`], with two backends picked by
//! `timeseries.kind` at start-up: the embedded store (single instance, in the data dir) and TDengine (the HA form,
//! with failover to a secondary endpoint). The series registry, which maps an asset's attribute to its series id,
//! and the query API live in `service` and `routes`; they only ever see the trait.

pub mod embedded;
pub mod registry;
pub mod routes;
pub mod service;

pub use routes::{endpoints, router};
pub use service::Timeseries;
pub mod tdengine;

use std::{collections::HashMap, sync::Arc};

use app::error::{AppError, ErrorKind};
use async_trait::async_trait;

pub use app::timeseries::{Bucket, Point, Resolution};

/// One time-series attribute of one asset.
pub type SeriesId = i64;

/// Milliseconds in a minute and an hour: the widths of the rollup tiers.
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// A value as a device sent it. Stores keep numbers as `f64` (integers are exact up to 2^53); the variant decides
/// the TDengine super table a new series lands in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Float(f64),
    Integer(i64),
    Boolean(bool),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Float(v) => v,
            Value::Integer(v) => v as f64,
            Value::Boolean(v) => f64::from(u8::from(v)),
        }
    }
}

/// One reading: a value of one series at one instant (milliseconds, UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub series: SeriesId,
    pub ts: i64,
    pub value: Value,
}

/// A half-open interval of time, `[from, to)`, in milliseconds UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: i64,
    pub to: i64,
}

impl TimeRange {
    /// `[from, to)`, both within Gantry's window of instants ([`app::timeseries::EARLIEST_MS`] to
    /// [`app::timeseries::LATEST_MS`]), so its span fits any arithmetic done on it.
    pub fn new(from: i64, to: i64) -> Result<Self, StoreError> {
        for (ts, name) in [(from, "from"), (to, "to")] {
            app::timeseries::check_instant(ts, name).map_err(StoreError::Invalid)?;
        }
        if from >= to {
            return Err(StoreError::Invalid(format!(
                "the range is empty: `from` ({from}) must be before `to` ({to})"
            )));
        }
        Ok(TimeRange { from, to })
    }

    pub fn contains(&self, ts: i64) -> bool {
        self.from <= ts && ts < self.to
    }
}

/// Aggregated readings: the buckets, and the resolution they were computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregated {
    pub resolution: Resolution,
    pub buckets: Vec<Bucket>,
}

/// How long each resolution of a series is kept, in milliseconds; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierRetention {
    pub raw_ms: Option<i64>,
    pub minute_ms: Option<i64>,
    pub hour_ms: Option<i64>,
}

/// Retention for every series: a default, and the series whose attribute template names another tier.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    pub default: TierRetention,
    pub overrides: HashMap<SeriesId, TierRetention>,
}

impl RetentionPolicy {
    pub fn for_series(&self, series: SeriesId) -> TierRetention {
        self.overrides.get(&series).copied().unwrap_or(self.default)
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub raw_blocks: u64,
    pub minute_rows: u64,
    pub hour_rows: u64,
}

/// Why a store call failed. Each maps to one error kind (and so one HTTP status) in [`From<StoreError>`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The caller asked for something impossible (an empty range, a NaN value).
    #[error("{0}")]
    Invalid(String),
    /// The store refused the readings themselves (TDengine: a timestamp outside the database's KEEP, say); other
    /// readings are unaffected.
    #[error("the time-series store refused the readings: {0}")]
    Refused(String),
    /// The disk is full: nothing of the failed call was acknowledged; writing resumes once space is freed.
    #[error("the time-series store's disk is full")]
    DiskFull,
    /// The store cannot be reached right now (TDengine down on every endpoint).
    #[error("the time-series store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt time-series data: {0}")]
    Corrupt(String),
    /// Any other storage failure.
    #[error("time-series storage failed: {0}")]
    Storage(String),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Invalid(message) => AppError::new(ErrorKind::BadRequest, message),
            StoreError::Refused(_) => AppError::new(ErrorKind::Unprocessable, err.to_string()),
            StoreError::DiskFull => {
                tracing::error!("The time-series store's disk is full; writes are refused until space is freed.");
                AppError::unavailable("The time-series store's disk is full; retry once space is freed.", 30)
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "The time-series store is unavailable.");
                AppError::unavailable("The time-series store is unavailable; retry shortly.", 5)
            }
            StoreError::Corrupt(_) | StoreError::Storage(_) => {
                tracing::error!(error = %err, "Time-series storage failed.");
                AppError::internal()
            }
        }
    }
}

/// Where readings live. Every method is safe to call concurrently.
#[async_trait]
pub trait TimeSeriesStore: Send + Sync {
    /// `embedded` or `tdengine`, for logs and `/metrics`.
    fn kind(&self) -> &'static str;

    /// Stores a batch; returns only once every reading in it is durable. A reading with the same series and
    /// timestamp as a stored one replaces it, so re-sending a batch changes nothing.
    async fn write(&self, batch: Vec<Reading>) -> Result<(), StoreError>;

    /// Raw readings of one series in the range, oldest first, at most `limit` of them.
    async fn read_raw(&self, series: SeriesId, range: TimeRange, limit: usize) -> Result<Vec<Point>, StoreError>;

    /// Readings of one series in the range, aggregated into buckets `bucket_ms` wide, aligned to multiples of the
    /// width since the epoch; empty buckets are left out. The store reads the coarsest rollup whose width divides
    /// the bucket width.
    async fn read_aggregated(
        &self,
        series: SeriesId,
        range: TimeRange,
        bucket_ms: i64,
    ) -> Result<Aggregated, StoreError>;

    /// The latest reading of each series that has one.
    async fn latest(&self, series: &[SeriesId]) -> Result<HashMap<SeriesId, Point>, StoreError>;

    /// Removes the readings of one series in the range (every resolution).
    async fn delete_range(&self, series: SeriesId, range: TimeRange) -> Result<(), StoreError>;

    /// Removes what the policy says has expired, resolution by resolution, in small steps that let writes through.
    async fn apply_retention(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<RetentionReport, StoreError>;

    /// Brings what the store derives from readings up to date (TDengine's rollups; the embedded store keeps its own
    /// as it flushes). Returns whether it is caught up; false asks for another pass at once.
    async fn maintain(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Moves buffered readings to their final form and compacts (at shutdown). Readings are durable without it.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the store can serve now (for `/readyz`).
    async fn check(&self) -> Result<(), StoreError>;

    /// Why the store serves in a degraded state, if it does (TDengine on its secondary endpoint); `/readyz` says so
    /// while still answering ready, since the instance can serve.
    fn degraded(&self) -> Option<String> {
        None
    }
}

pub type SharedStore = Arc<dyn TimeSeriesStore>;

/// Opens the store the configuration picks.
pub async fn open_store(config: &crate::config::Config) -> Result<SharedStore, StoreError> {
    use crate::config::TimeseriesKind;
    let ts = &config.timeseries;
    let store: SharedStore = match ts.kind {
        TimeseriesKind::Embedded => {
            let dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || {
                embedded::EmbeddedStore::open(&dir, embedded::EmbeddedOptions::default())
            })
            .await
            .map_err(|e| StoreError::Storage(format!("opening the embedded store failed: {e}")))??;
            Arc::new(store)
        }
        TimeseriesKind::Tdengine => Arc::new(tdengine::TdengineStore::connect(&ts.tdengine, &ts.retention).await?),
    };
    tracing::info!(kind = store.kind(), "The time-series store is open.");
    Ok(store)
}

/// Floors `ts` to a multiple of `width` (also for instants before 1970).
pub fn floor_to(ts: i64, width: i64) -> i64 {
    ts.div_euclid(width) * width
}

/// Ceils `ts` to a multiple of `width`.
pub fn ceil_to(ts: i64, width: i64) -> i64 {
    let floored = floor_to(ts, width);
    if floored == ts {
        ts
    } else {
        floored + width
    }
}

/// The running aggregate of one bucket. Each piece folded in covers a span of time disjoint from the others, so
/// `first` and `last` follow the span's start.
#[derive(Debug, Clone, Copy)]
pub struct Accumulator {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: (i64, f64),
    pub last: (i64, f64),
}

impl Accumulator {
    pub fn point(ts: i64, value: f64) -> Self {
        Accumulator {
            count: 1,
            sum: value,
            min: value,
            max: value,
            first: (ts, value),
            last: (ts, value),
        }
    }

    /// A summary of a span starting at `ts` (a rollup row).
    pub fn summary(ts: i64, count: u64, sum: f64, min: f64, max: f64, first: f64, last: f64) -> Self {
        Accumulator {
            count,
            sum,
            min,
            max,
            first: (ts, first),
            last: (ts, last),
        }
    }

    pub fn merge(&mut self, other: &Accumulator) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.0 < self.first.0 {
            self.first = other.first;
        }
        if other.last.0 >= self.last.0 {
            self.last = other.last;
        }
    }

    pub fn bucket(&self, start: i64) -> Bucket {
        Bucket {
            start,
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            first: self.first.1,
            last: self.last.1,
        }
    }
}

/// Buckets being filled, keyed by their start.
#[derive(Debug, Default)]
pub struct BucketSet {
    width: i64,
    buckets: std::collections::BTreeMap<i64, Accumulator>,
}

impl BucketSet {
    pub fn new(width: i64) -> Self {
        BucketSet {
            width,
            buckets: Default::default(),
        }
    }

    pub fn add(&mut self, ts: i64, piece: Accumulator) {
        let start = floor_to(ts, self.width);
        self.buckets
            .entry(start)
            .and_modify(|acc| acc.merge(&piece))
            .or_insert(piece);
    }

    pub fn add_point(&mut self, ts: i64, value: f64) {
        self.add(ts, Accumulator::point(ts, value));
    }

    pub fn into_buckets(self) -> Vec<Bucket> {
        self.buckets.into_iter().map(|(start, acc)| acc.bucket(start)).collect()
    }
}

/// The resolution a bucket width is read from: the coarsest tier whose width divides it.
pub fn resolution_for(bucket_ms: i64) -> Resolution {
    if bucket_ms % HOUR_MS == 0 {
        Resolution::Hour
    } else if bucket_ms % MINUTE_MS == 0 {
        Resolution::Minute
    } else {
        Resolution::Raw
    }
}

/// Checks the values of a batch before anything is stored: a store keeps numbers, and NaN or infinity is none.
pub fn check_values(batch: &[Reading]) -> Result<(), StoreError> {
    match batch.iter().find(|r| !r.value.as_f64().is_finite()) {
        Some(bad) => Err(StoreError::Invalid(format!(
            "series {} at {}: NaN and infinite values cannot be stored",
            bad.series, bad.ts
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_and_ceils_before_and_after_the_epoch() {
        assert_eq!(floor_to(61_000, MINUTE_MS), 60_000);
        assert_eq!(floor_to(-1, MINUTE_MS), -60_000);
        assert_eq!(ceil_to(60_000, MINUTE_MS), 60_000);
        assert_eq!(ceil_to(60_001, MINUTE_MS), 120_000);
        assert_eq!(ceil_to(-59_999, MINUTE_MS), 0);
    }

    #[test]
    fn picks_the_coarsest_tier_that_divides_the_width() {
        assert_eq!(resolution_for(2 * HOUR_MS), Resolution::Hour);
        assert_eq!(resolution_for(10 * MINUTE_MS), Resolution::Minute);
        assert_eq!(resolution_for(90 * 1000), Resolution::Raw);
    }
}

//! The time-series types the browser and the server share: points, aggregated buckets, and the answers of the
//! query API (`/api/v1/assets/{id}/attributes/{name}/data`, `/api/v1/assets/{id}/latest`).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::client::CsrfClient;
use crate::error::AppError;

/// The latest reading of each time-series attribute of an asset (the asset page's current values).
#[server(prefix = "/_fn", endpoint = "timeseries/latest", client = CsrfClient)]
pub async fn read_latest_values(asset_id: i64) -> Result<LatestValues, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.timeseries.latest(&actor, asset_id).await
}

/// The earliest and latest instants Gantry stores or queries (ms UTC): 1970-01-01 and 2200-01-01. Every instant
/// that arrives from outside (a query string, a reading, a page address) is checked against this window first, so
/// spans, bucket counts and axis ticks computed from it stay small and never overflow.
pub const EARLIEST_MS: i64 = 0;
pub const LATEST_MS: i64 = 7_258_118_400_000;

/// `ts` if it lies in [`EARLIEST_MS`, `LATEST_MS`], else a message naming the parameter and the window.
pub fn check_instant(ts: i64, name: &str) -> Result<i64, String> {
    if (EARLIEST_MS..=LATEST_MS).contains(&ts) {
        Ok(ts)
    } else {
        Err(format!(
            "`{name}` ({ts}) is outside the instants Gantry keeps: {EARLIEST_MS} (1970-01-01) to {LATEST_MS} \
             (2200-01-01), in milliseconds UTC"
        ))
    }
}

/// The query of the data endpoints: instants as milliseconds or RFC 3339 text; `to` defaults to now and `from` to a
/// day before `to`, `points` to 1,000.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub points: Option<usize>,
}

/// One stored reading: milliseconds UTC and the value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Point {
    pub ts: i64,
    pub value: f64,
}

/// The readings of one bucket `[start, start + width)`, aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Bucket {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub last: f64,
}

impl Bucket {
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Which stored resolution an answer was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Resolution {
    /// Every reading as it arrived.
    Raw,
    /// One-minute rollups.
    Minute,
    /// One-hour rollups.
    Hour,
}

/// The answer of the data query: raw points when they fit in the points asked for, else buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesData {
    pub asset_id: i64,
    pub attribute: String,
    pub unit: Option<String>,
    pub from: i64,
    pub to: i64,
    /// The resolution the answer was read from.
    pub resolution: Resolution,
    /// The bucket width in milliseconds; absent for raw points.
    pub bucket_ms: Option<i64>,
    /// Raw readings, when they fit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<Point>,
    /// Aggregated buckets otherwise (empty buckets are left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<Bucket>,
}

/// The latest reading of one attribute of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LatestValue {
    pub attribute: String,
    pub unit: Option<String>,
    /// Absent when the attribute has no reading yet.
    pub ts: Option<i64>,
    pub value: Option<f64>,
}

/// The latest reading of every time-series attribute of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LatestValues {
    pub asset_id: i64,
    pub values: Vec<LatestValue>,
}

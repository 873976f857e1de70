//! [`Timeseries`]: the readings of asset attributes as people ask for them. Resolves an asset's attribute to its
//! series through the registry (the caller's grants apply, through [`Model`]), picks the resolution from the
//! range and the points asked for, and runs retention in the background from the configured tiers.

use std::{collections::HashMap, sync::Arc, time::Duration};

use app::services::ModelService;
use app::timeseries::DataQuery;
use app::{
    assets::EffectiveAttribute,
    auth::Actor,
    error::{AppError, ErrorKind},
    timeseries::{LatestValue, LatestValues, SeriesData},
};
use tokio_util::sync::CancellationToken;

use super::{
    registry::SeriesRegistry, Point, Resolution, RetentionPolicy, SeriesId, SharedStore, TimeRange, DAY_MS, HOUR_MS,
    MINUTE_MS,
};
use crate::{assets::Model, config::TimeseriesConfig, metadata::now_ms};

/// At most this many points or buckets per series in one answer (a chart is a few thousand pixels wide).
pub const MAX_POINTS: usize = 5000;
const DEFAULT_POINTS: usize = 1000;
/// Raw readings per page of a CSV export.
const CSV_PAGE: usize = 10_000;

/// Parses an instant given as milliseconds since the epoch or as RFC 3339 text, within Gantry's window of
/// instants (1970 to 2200).
pub fn parse_instant(text: &str, name: &str) -> Result<i64, AppError> {
    let ms = match text.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
            .ok_or_else(|| {
                AppError::bad_request(format!(
                    "`{name}` must be milliseconds since 1970 or an RFC 3339 time such as 2026-01-31T08:00:00Z, not {text:?}"
                ))
            })?,
    };
    app::timeseries::check_instant(ms, name).map_err(AppError::bad_request)
}

/// The range a data query names: `to` defaults to now and `from` to a day before `to`.
fn range_of(query: &DataQuery) -> Result<TimeRange, AppError> {
    let to = match &query.to {
        Some(text) => parse_instant(text, "to")?,
        None => now_ms() + 1,
    };
    let from = match &query.from {
        Some(text) => parse_instant(text, "from")?,
        None => to - DAY_MS,
    };
    TimeRange::new(from, to).map_err(AppError::from)
}

/// How many points a data query asks for.
fn points_of(query: &DataQuery) -> Result<usize, AppError> {
    match query.points {
        None => Ok(DEFAULT_POINTS),
        Some(n) if (1..=MAX_POINTS).contains(&n) => Ok(n),
        Some(n) => Err(AppError::bad_request(format!(
            "`points` must be between 1 and {MAX_POINTS}, not {n}"
        ))),
    }
}

/// The bucket width for `points` buckets over `span_ms`: rounded up to a width the rollups serve (whole seconds,
/// minutes or hours in steps a chart's axis reads well).
pub fn bucket_width(span_ms: i64, points: usize) -> i64 {
    const STEPS: &[i64] = &[
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        30_000,
        MINUTE_MS,
        2 * MINUTE_MS,
        5 * MINUTE_MS,
        10 * MINUTE_MS,
        15 * MINUTE_MS,
        30 * MINUTE_MS,
        HOUR_MS,
        2 * HOUR_MS,
        3 * HOUR_MS,
        6 * HOUR_MS,
        12 * HOUR_MS,
        DAY_MS,
    ];
    let wanted = (span_ms / points.max(1) as i64).max(1);
    match STEPS.iter().find(|&&step| step >= wanted) {
        Some(step) => *step,
        None => wanted.div_euclid(DAY_MS).saturating_add(1).saturating_mul(DAY_MS),
    }
}

pub struct Timeseries {
    store: SharedStore,
    registry: Arc<dyn SeriesRegistry>,
    model: Arc<Model>,
    config: TimeseriesConfig,
    /// Who runs each retention pass when several instances share the store.
    retention_claim: Option<crate::leases::PeriodicClaim>,
    maintenance_claim: Option<crate::leases::PeriodicClaim>,
}

impl Timeseries {
    pub fn new(
        store: SharedStore,
        registry: Arc<dyn SeriesRegistry>,
        model: Arc<Model>,
        config: TimeseriesConfig,
    ) -> Self {
        Timeseries {
            store,
            registry,
            model,
            config,
            retention_claim: None,
            maintenance_claim: None,
        }
    }

    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    pub fn registry(&self) -> Arc<dyn SeriesRegistry> {
        self.registry.clone()
    }

    /// The attribute `name` of an asset the caller may see, if it is a time series.
    async fn series_attribute(&self, actor: &Actor, asset_id: i64, name: &str) -> Result<EffectiveAttribute, AppError> {
        let asset = self.model.get_asset(actor, asset_id).await?;
        let attribute = asset
            .attributes
            .into_iter()
            .find(|a| a.attribute.name == name)
            .ok_or_else(|| AppError::not_found(format!("the asset has no attribute named {name:?}")))?;
        if !attribute.attribute.is_series {
            return Err(AppError::new(
                ErrorKind::Unprocessable,
                format!("{name:?} is a static value, not a time series"),
            ));
        }
        Ok(attribute)
    }

    /// Readings of an attribute the caller was already allowed to see (`data` and trends check that first).
    pub async fn read(
        &self,
        asset_id: i64,
        attribute: &EffectiveAttribute,
        range: TimeRange,
        points: usize,
    ) -> Result<SeriesData, AppError> {
        let name = attribute.attribute.name.as_str();
        let mut answer = SeriesData {
            asset_id,
            attribute: name.to_string(),
            unit: attribute.attribute.unit.clone(),
            from: range.from,
            to: range.to,
            resolution: Resolution::Raw,
            bucket_ms: None,
            points: Vec::new(),
            buckets: Vec::new(),
        };
        let Some(series) = self.registry.find(asset_id, name).await? else {
            return Ok(answer);
        };
        // Buckets first: a range that holds more readings than points (every chart of a day or more) is answered
        // by them alone, in one store call; only a sparse range is then read raw, which costs little.
        let width = bucket_width(range.to - range.from, points);
        let aggregated = self.store.read_aggregated(series, range, width).await?;
        if aggregated.buckets.iter().map(|b| b.count).sum::<u64>() <= points as u64 {
            let raw = self.store.read_raw(series, range, points + 1).await?;
            // (Readings that arrived in between may have made it too many after all: then the buckets answer.)
            if raw.len() <= points {
                answer.points = raw;
                return Ok(answer);
            }
        }
        // The store says what it computed the buckets from: the rollup the width allows (`resolution_for`).
        answer.resolution = aggregated.resolution;
        answer.bucket_ms = Some(width);
        answer.buckets = aggregated.buckets;
        Ok(answer)
    }

    /// Checks the caller may read the attribute and returns what a CSV export streams from.
    pub async fn raw_export(
        &self,
        actor: &Actor,
        asset_id: i64,
        name: &str,
        query: &DataQuery,
    ) -> Result<RawExport, AppError> {
        let range = range_of(query)?;
        self.series_attribute(actor, asset_id, name).await?;
        let series = self.registry.find(asset_id, name).await?;
        Ok(RawExport {
            store: self.store.clone(),
            series,
            next_from: range.from,
            to: range.to,
        })
    }

    /// The retention of every series: the configured default, and the tier each attribute template names.
    pub async fn retention_policy(&self) -> Result<RetentionPolicy, AppError> {
        let default = self.config.retention.retention();
        let templates = self.model.list_templates(&Actor::command_line()).await?;
        let tiers_by_template: HashMap<i64, HashMap<String, String>> = templates
            .into_iter()
            .map(|t| {
                let tiers = t
                    .effective_attributes
                    .into_iter()
                    .filter_map(|a| Some((a.attribute.name, a.attribute.retention_tier?)))
                    .collect();
                (t.id, tiers)
            })
            .collect();
        let mut overrides = HashMap::new();
        for row in self.registry.all().await? {
            let tier = row
                .template_id
                .and_then(|t| tiers_by_template.get(&t))
                .and_then(|tiers| tiers.get(&row.attribute));
            let Some(tier) = tier else { continue };
            match self.config.tiers.get(tier) {
                Some(config) => {
                    overrides.insert(row.id, config.retention());
                }
                None => tracing::warn!(
                    tier = %tier,
                    "An attribute names a retention tier that the configuration does not define; it keeps the default."
                ),
            }
        }
        Ok(RetentionPolicy { default, overrides })
    }

    /// One retention pass.
    pub async fn run_retention(&self) -> Result<(), AppError> {
        let policy = self.retention_policy().await?;
        let report = self.store.apply_retention(&policy, now_ms()).await?;
        tracing::info!(
            raw_blocks = report.raw_blocks,
            minute_rows = report.minute_rows,
            hour_rows = report.hour_rows,
            "Retention pass done."
        );
        Ok(())
    }

    /// Retention and maintenance passes claimed through `leases`: one instance per interval runs them on a shared
    /// store (TDengine); each instance's own embedded store is its own work.
    pub fn with_claims(mut self, leases: Arc<dyn crate::leases::LeaseStore>, instance: &str) -> Self {
        let shared = self.config.kind == crate::config::TimeseriesKind::Tdengine;
        let claim = |work: &str| crate::leases::PeriodicClaim {
            store: leases.clone(),
            name: if shared {
                work.to_string()
            } else {
                format!("{work}:{instance}")
            },
            holder: instance.to_string(),
        };
        self.retention_claim = Some(claim("retention"));
        self.maintenance_claim = Some(claim("timeseries-maintenance"));
        self
    }

    /// Runs a retention pass if this instance claims the current interval's; returns whether it ran.
    pub async fn claimed_retention_pass(&self) -> Result<bool, AppError> {
        if let Some(claim) = &self.retention_claim {
            if !claim
                .claim(self.retention_interval())
                .await
                .map_err(|e| e.into_app_error())?
            {
                return Ok(false);
            }
        }
        self.run_retention().await?;
        Ok(true)
    }

    fn retention_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.retention_interval_mins) * 60)
    }

    /// Runs retention every `timeseries.retention_interval_mins`, the first pass a minute after start-up; with
    /// several instances on one store, the instance that claims an interval runs its pass.
    pub fn spawn_retention(self: &Arc<Self>, tasks: &crate::tasks::Tasks, shutdown: CancellationToken) {
        let this = self.clone();
        let interval = self.retention_interval();
        tasks.supervise("retention", move || {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            async move {
                let mut wait = Duration::from_secs(60);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    if let Err(err) = this.claimed_retention_pass().await {
                        tracing::warn!(error = %err, "A retention pass failed; the next one retries.");
                    }
                    wait = interval;
                }
            }
        });
    }
}

impl Timeseries {
    /// Keeps what the store derives from readings current (TDengine's rollups) every few seconds, at once again
    /// while a pass reports it is behind; with several instances on one store, the one that claims the period
    /// runs it (two passes at once would only repeat work). The embedded store does this itself.
    pub fn spawn_maintenance(self: &Arc<Self>, tasks: &crate::tasks::Tasks, shutdown: CancellationToken) {
        if self.config.kind != crate::config::TimeseriesKind::Tdengine {
            return;
        }
        let this = self.clone();
        tasks.supervise("timeseries-maintenance", move || {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            async move {
                let mut wait = MAINTENANCE_INTERVAL;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = MAINTENANCE_INTERVAL;
                    if let Some(claim) = &this.maintenance_claim {
                        match claim.claim(MAINTENANCE_CLAIM).await {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(err) => {
                                tracing::warn!(error = %err.into_app_error(), "Could not claim a maintenance pass.");
                                continue;
                            }
                        }
                    }
                    match this.store.maintain().await {
                        Ok(true) => {}
                        Ok(false) => wait = Duration::ZERO,
                        Err(err) => {
                            tracing::warn!(error = %err, "A time-series maintenance pass failed; the next one retries.")
                        }
                    }
                }
            }
        });
    }
}

/// How often the time-series store's maintenance runs.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a claimed maintenance period lasts: longer than a pass may run, so two rarely overlap.
const MAINTENANCE_CLAIM: Duration = Duration::from_secs(30);

/// A CSV export in progress: pages of raw readings, oldest first.
pub struct RawExport {
    store: SharedStore,
    series: Option<SeriesId>,
    next_from: i64,
    to: i64,
}

impl RawExport {
    /// The next page, or `None` when the range is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Point>>, AppError> {
        let Some(series) = self.series else { return Ok(None) };
        if self.next_from >= self.to {
            return Ok(None);
        }
        let page = self
            .store
            .read_raw(
                series,
                TimeRange {
                    from: self.next_from,
                    to: self.to,
                },
                CSV_PAGE,
            )
            .await?;
        match page.last() {
            None => Ok(None),
            Some(last) => {
                self.next_from = last.ts + 1;
                if page.len() < CSV_PAGE {
                    self.next_from = self.to;
                }
                Ok(Some(page))
            }
        }
    }
}

/// What pages' server functions reach.
#[async_trait::async_trait]
impl app::services::TimeseriesService for Timeseries {
    /// Readings of one attribute: raw when they fit in the points asked for, else buckets from the coarsest
    /// resolution that serves the width.
    async fn data(&self, actor: &Actor, asset_id: i64, name: &str, query: &DataQuery) -> Result<SeriesData, AppError> {
        let range = range_of(query)?;
        let points = points_of(query)?;
        let attribute = self.series_attribute(actor, asset_id, name).await?;
        self.read(asset_id, &attribute, range, points).await
    }

    /// The latest reading of every time-series attribute of an asset.
    async fn latest(&self, actor: &Actor, asset_id: i64) -> Result<LatestValues, AppError> {
        let asset = self.model.get_asset(actor, asset_id).await?;
        let series: HashMap<String, SeriesId> = self.registry.series_of_asset(asset_id).await?.into_iter().collect();
        let ids: Vec<SeriesId> = series.values().copied().collect();
        let latest = self.store.latest(&ids).await?;
        let values = asset
            .attributes
            .into_iter()
            .filter(|a| a.attribute.is_series)
            .map(|a| {
                let point = series.get(&a.attribute.name).and_then(|id| latest.get(id));
                LatestValue {
                    attribute: a.attribute.name,
                    unit: a.attribute.unit,
                    ts: point.map(|p| p.ts),
                    value: point.map(|p| p.value),
                }
            })
            .collect();
        Ok(LatestValues { asset_id, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_whole_steps_the_rollups_serve() {
        assert_eq!(bucket_width(DAY_MS, 1000), 2 * MINUTE_MS);
        assert_eq!(bucket_width(7 * DAY_MS, 1000), 15 * MINUTE_MS);
        assert_eq!(bucket_width(365 * DAY_MS, 1000), 12 * HOUR_MS);
        assert_eq!(bucket_width(HOUR_MS, 1000), 5_000);
        assert_eq!(bucket_width(100 * 365 * DAY_MS, 1000), 37 * DAY_MS);
        assert_eq!(bucket_width(10, 1000), 1_000);
    }

    #[test]
    fn instants_parse_as_milliseconds_or_rfc_3339() {
        assert_eq!(parse_instant("1767225600000", "from").unwrap(), 1_767_225_600_000);
        assert_eq!(
            parse_instant("2026-01-01T00:00:00Z", "from").unwrap(),
            1_767_225_600_000
        );
        assert_eq!(
            parse_instant("2026-01-01T01:00:00.5+01:00", "from").unwrap(),
            1_767_225_600_500
        );
        let err = parse_instant("yesterday", "from").unwrap_err();
        assert_eq!(err.code, ErrorKind::BadRequest);
        assert!(err.message.contains("`from`"));
    }
}

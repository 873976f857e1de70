//! Alarm points changing hands between instances (see `ownership.rs`): taking a partition over with its stored
//! state and a replay of the readings after it, giving one back with its state stored, and the periodic store of
//! each point's position that bounds a replay.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::engine::{point_row, AlarmEngine, Inner, Point};
use super::ownership::partition_of;
use super::rules::Sample;
use crate::error::ApiError;
use crate::metadata::now_ms;
use crate::timeseries::{SeriesId, TimeRange, DAY_MS};

/// How far back a point that never stored a position replays: longer than a checkpoint interval plus a lease,
/// the most its previous owner can have evaluated without storing it.
const REPLAY_WITHOUT_POSITION_MS: i64 = 60_000;

/// The most readings of one series a replay reads.
const REPLAY_LIMIT: usize = 100_000;

impl AlarmEngine {
    /// Takes `partitions` over: their points as stored, their rules, and the readings after each point's last
    /// evaluated sample (so nothing received while they changed hands is missed, and nothing is evaluated twice).
    pub(super) async fn adopt(&self, partitions: &[i64], valid_until: Instant) -> Result<(), ApiError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<i64> = partitions.iter().copied().collect();
        let mut inner = self.inner.lock().await;
        for partition in partitions {
            self.ownership().took(*partition, valid_until);
        }
        inner
            .points
            .retain(|asset_id, _| !wanted.contains(&partition_of(*asset_id)));
        for row in self.store.points().await? {
            if wanted.contains(&partition_of(row.asset_id)) {
                inner
                    .points
                    .entry(row.asset_id)
                    .or_default()
                    .insert((row.attribute.clone(), row.rule.clone()), Point::stored(row));
            }
        }
        self.check_generation(&mut inner);
        let assets = self.assets_in(&wanted).await?;
        for asset_id in &assets {
            self.resolve_asset(&mut inner, *asset_id).await?;
        }
        self.replay(&mut inner, &assets).await
    }

    /// Replays the readings of recently taken partitions once more: some may have been forwarded to their
    /// previous owner by an instance that had not yet seen the change.
    pub(super) async fn catch_up(&self, partitions: &[i64]) -> Result<(), ApiError> {
        let wanted: HashSet<i64> = partitions
            .iter()
            .copied()
            .filter(|partition| self.ownership().owns_partition(*partition))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let assets = self.assets_in(&wanted).await?;
        let mut inner = self.inner.lock().await;
        self.replay(&mut inner, &assets).await
    }

    /// Forgets `partitions` without storing anything: their leases ended, another instance may own them already.
    pub(super) async fn drop_partitions(&self, partitions: &[i64]) {
        if partitions.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().await;
        for partition in partitions {
            self.ownership().gave_up(*partition);
        }
        inner
            .points
            .retain(|asset_id, _| !partitions.contains(&partition_of(*asset_id)));
    }

    /// Stores the points of `partitions` and forgets them, before their leases are given up.
    pub(super) async fn hand_over(&self, partitions: &[i64]) -> Result<(), ApiError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock().await;
        for partition in partitions {
            self.ownership().gave_up(*partition);
        }
        let result = self.store_positions(&mut inner, Some(partitions)).await;
        inner
            .points
            .retain(|asset_id, _| !partitions.contains(&partition_of(*asset_id)));
        result
    }

    /// Stores the position (last evaluated sample) of every owned point that moved since it was last stored.
    pub(super) async fn checkpoint(&self, partitions: Option<&[i64]>) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        self.store_positions(&mut inner, partitions).await
    }

    async fn store_positions(&self, inner: &mut Inner, partitions: Option<&[i64]>) -> Result<(), ApiError> {
        let now = now_ms();
        for (asset_id, points) in inner.points.iter_mut() {
            if partitions.is_some_and(|wanted| !wanted.contains(&partition_of(*asset_id))) {
                continue;
            }
            for (key, point) in points.iter_mut() {
                let last = point.state.last.map(|sample| sample.ts);
                if last.is_some() && last != point.saved_last {
                    self.store
                        .save_condition(&point_row(*asset_id, key, point), now)
                        .await?;
                    point.saved_last = last;
                }
            }
        }
        Ok(())
    }

    /// The assets of `partitions` that have series.
    async fn assets_in(&self, partitions: &HashSet<i64>) -> Result<Vec<i64>, ApiError> {
        let mut assets: Vec<i64> = self
            .registry
            .all()
            .await?
            .into_iter()
            .map(|row| row.asset_id)
            .filter(|asset_id| partitions.contains(&partition_of(*asset_id)))
            .collect();
        assets.sort_unstable();
        assets.dedup();
        Ok(assets)
    }

    /// Evaluates the stored readings after each point's last evaluated sample, for the points of `assets`.
    async fn replay(&self, inner: &mut Inner, assets: &[i64]) -> Result<(), ApiError> {
        let now = now_ms();
        let mut samples: Vec<(SeriesId, Sample)> = Vec::new();
        for asset_id in assets {
            let Some(points) = inner.points.get(asset_id) else {
                continue;
            };
            // Per attribute, from the earliest position among its points (each point skips what it has seen).
            let mut from: HashMap<&str, i64> = HashMap::new();
            for ((attribute, _), point) in points.iter().filter(|(_, point)| point.context.is_some()) {
                let position = point
                    .state
                    .last
                    .map_or(now - REPLAY_WITHOUT_POSITION_MS, |sample| sample.ts + 1);
                from.entry(attribute.as_str())
                    .and_modify(|earliest| *earliest = (*earliest).min(position))
                    .or_insert(position);
            }
            if from.is_empty() {
                continue;
            }
            for (attribute, series) in self.registry.series_of_asset(*asset_id).await? {
                let Some(start) = from.get(attribute.as_str()) else {
                    continue;
                };
                let Ok(range) = TimeRange::new(*start, now + DAY_MS + 1) else {
                    continue;
                };
                let readings = self
                    .readings
                    .read_raw(series, range, REPLAY_LIMIT)
                    .await
                    .map_err(anyhow::Error::from)?;
                if readings.len() == REPLAY_LIMIT {
                    tracing::warn!(
                        asset = asset_id,
                        %attribute,
                        "Alarm replay stopped at {REPLAY_LIMIT} readings; later ones are evaluated as they arrive."
                    );
                }
                samples.extend(readings.into_iter().map(|point| {
                    (
                        series,
                        Sample {
                            ts: point.ts,
                            value: point.value,
                        },
                    )
                }));
            }
        }
        if samples.is_empty() {
            return Ok(());
        }
        metrics::counter!("gantry_alarm_samples_replayed_total").increment(samples.len() as u64);
        self.evaluate_owned(inner, samples).await.map(|_| ())
    }
}

//! The alarm engine: evaluates every durable batch of readings against the rules of their attributes, in
//! timestamp order per series, before the batch is acknowledged; runs the timers (on/off delays, no data, shelving
//! expiry, re-notification); and records every change of a point's condition in the metadata database, so that a
//! restart resumes each point where it was: a delay that ended while Gantry was down fires at start-up, at the
//! time it ended.
//!
//! Each instance holds and evaluates the points of the partitions it owns (`ownership.rs`); readings of other
//! points go to their owner (`forward.rs`), and points change hands with their state (`handover.rs`).
//!
//! Which rules apply to a series is worked out in `resolve.rs`; the timers run in `timers.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use app::alarms::{render_message, AlarmEventKind, AlarmRule, AlarmState, AlarmView};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::forward::Forwarder;
use super::notify::Notifier;
use super::ownership::{partition_of, Ownership};
use super::rules::{on_sample, Compiled, Condition, PointState, Sample, Transition};
use super::store::{AlarmRow, AlarmStore, NewOccurrence, PointRow};
use crate::assets::Model;
use crate::error::ApiError;
use crate::ingest::ReadingsObserver;
use crate::metadata::now_ms;
use crate::timeseries::{registry::SeriesRegistry, Reading, SeriesId, SharedStore};

/// One rule as it applies to one asset's attribute, with what messages need.
#[derive(Debug)]
pub struct RuleContext {
    pub asset_id: i64,
    pub asset_path: String,
    pub attribute: String,
    pub unit: Option<String>,
    pub rule: AlarmRule,
    pub compiled: Compiled,
}

/// A point in memory: its condition, its open occurrence, its suppression, and the rule it runs (none until the
/// rule is resolved after a restart, or after the rule was removed).
#[derive(Debug, Default)]
pub(super) struct Point {
    pub(super) state: PointState,
    pub(super) occurrence: Option<i64>,
    pub(super) shelved_until: Option<i64>,
    pub(super) shelved_by: Option<String>,
    pub(super) out_of_service: bool,
    pub(super) context: Option<Arc<RuleContext>>,
    /// The time of the last sample stored with the point.
    pub(super) saved_last: Option<i64>,
}

impl Point {
    /// A point as the metadata database holds it (rule unresolved).
    pub(super) fn stored(row: PointRow) -> Point {
        let last = row.last_ts.zip(row.last_value).map(|(ts, value)| Sample { ts, value });
        Point {
            state: PointState {
                condition: Condition::from_parts(&row.condition, row.since_ms, row.value),
                last,
            },
            occurrence: row.occurrence_id,
            shelved_until: row.shelved_until,
            shelved_by: row.shelved_by,
            out_of_service: row.out_of_service,
            context: None,
            saved_last: row.last_ts,
        }
    }

    pub(super) fn suppression_from(&mut self, row: &PointRow) {
        self.shelved_until = row.shelved_until;
        self.shelved_by = row.shelved_by.clone();
        self.out_of_service = row.out_of_service;
    }

    pub(super) fn suppressed(&self, now: i64) -> bool {
        self.out_of_service || self.shelved_until.is_some_and(|until| until > now)
    }
}

/// (attribute, rule name) → point, per asset.
pub(super) type AssetPoints = HashMap<(String, String), Point>;

pub(super) struct SeriesRules {
    pub(super) loaded: Instant,
    pub(super) rules: Vec<Arc<RuleContext>>,
}

pub(super) struct Inner {
    pub(super) generation: (u64, u64),
    pub(super) series: HashMap<SeriesId, Arc<SeriesRules>>,
    /// The points of the partitions this instance owns.
    pub(super) points: HashMap<i64, AssetPoints>,
}

pub struct AlarmEngine {
    pub(super) store: Arc<dyn AlarmStore>,
    pub(super) model: Arc<Model>,
    pub(super) registry: Arc<dyn SeriesRegistry>,
    pub(super) readings: SharedStore,
    notifier: Arc<Notifier>,
    pub(super) ownership: Arc<Ownership>,
    forwarder: Forwarder,
    /// Bumped when an asset's own rules change.
    pub(super) rules_generation: AtomicU64,
    /// Set when another instance may have shelved or taken points out of service.
    pub(super) suppression_changed: AtomicBool,
    pub(super) inner: Mutex<Inner>,
}

/// A number as messages show it: at most three decimals, no trailing zeros.
pub fn format_value(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// An occurrence as the API shows it.
pub fn alarm_view(row: AlarmRow, asset_path: String) -> AlarmView {
    AlarmView {
        id: row.id,
        asset_id: row.asset_id,
        asset_path,
        attribute: row.attribute,
        rule: row.rule,
        severity: row.severity,
        message: row.message,
        state: AlarmState::of(row.active, row.acknowledged),
        active: row.active,
        acknowledged: row.acknowledged,
        started_at: row.started_at,
        start_value: row.start_value,
        ended_at: row.ended_at,
        end_value: row.end_value,
        acknowledged_at: row.acknowledged_at,
        acknowledged_by: row.acknowledged_by,
        shelved_until: row.shelved_until,
        out_of_service: row.out_of_service,
        unit: row.unit,
    }
}

pub(super) fn point_row(asset_id: i64, key: &(String, String), point: &Point) -> PointRow {
    PointRow {
        asset_id,
        attribute: key.0.clone(),
        rule: key.1.clone(),
        condition: point.state.condition.name().into(),
        since_ms: point.state.condition.since(),
        value: point.state.condition.value(),
        occurrence_id: point.occurrence,
        shelved_until: point.shelved_until,
        shelved_by: point.shelved_by.clone(),
        out_of_service: point.out_of_service,
        last_ts: point.state.last.map(|sample| sample.ts),
        last_value: point.state.last.map(|sample| sample.value),
    }
}

impl AlarmEngine {
    /// An engine that owns no points yet: [`super::ownership::start`] takes this instance's share.
    pub fn new(
        store: Arc<dyn AlarmStore>,
        model: Arc<Model>,
        registry: Arc<dyn SeriesRegistry>,
        readings: SharedStore,
        notifier: Arc<Notifier>,
        ownership: Arc<Ownership>,
        forwarder: Forwarder,
    ) -> Arc<AlarmEngine> {
        Arc::new(AlarmEngine {
            store,
            model,
            registry,
            readings,
            notifier,
            ownership,
            forwarder,
            rules_generation: AtomicU64::new(0),
            suppression_changed: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                generation: (u64::MAX, 0),
                series: HashMap::new(),
                points: HashMap::new(),
            }),
        })
    }

    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    pub(super) fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// Whether readings for another instance's points can reach it.
    pub fn forwards_between_instances(&self) -> bool {
        self.forwarder.between_instances()
    }

    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    pub fn store(&self) -> &Arc<dyn AlarmStore> {
        &self.store
    }

    /// Forgets resolved rules after an asset's own rules changed.
    pub fn rules_changed(&self) {
        self.rules_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Something changed through another instance (or a command): shelving and out-of-service flags of owned
    /// points are read again on the next tick.
    pub fn points_changed_elsewhere(&self) {
        self.suppression_changed.store(true, Ordering::Release);
    }

    /// Takes this instance's share of the alarm points (before it serves, so a single instance evaluates from
    /// its first reading), then keeps the timers, the share and the forwarding running until shutdown.
    pub async fn start(
        self: &Arc<Self>,
        leases: Arc<dyn crate::leases::LeaseStore>,
        tasks: &crate::tasks::Tasks,
        shutdown: CancellationToken,
    ) -> Result<(), ApiError> {
        super::forward::spawn(self.clone(), tasks, shutdown.clone());
        super::ownership::start(self.clone(), leases, tasks, shutdown.clone()).await?;
        let engine = self.clone();
        tasks.supervise("alarm timers", move || engine.clone().run_timers(shutdown.clone()));
        Ok(())
    }

    /// Evaluates durable readings; returns once every change they cause is stored and announced, on this
    /// instance or on the instances that own their points.
    pub async fn evaluate(&self, readings: &[Reading]) -> Result<(), ApiError> {
        let samples: Vec<(SeriesId, Sample)> = readings
            .iter()
            .map(|r| {
                (
                    r.series,
                    Sample {
                        ts: r.ts,
                        value: r.value.as_f64(),
                    },
                )
            })
            .collect();
        let elsewhere = {
            let mut inner = self.inner.lock().await;
            self.evaluate_owned(&mut inner, samples).await?
        };
        if elsewhere.is_empty() {
            return Ok(());
        }
        let mut by_holder: HashMap<String, Vec<(SeriesId, Sample)>> = HashMap::new();
        for (asset_id, series, sample) in elsewhere {
            match self.ownership.holder(partition_of(asset_id)) {
                Some(holder) if holder != self.ownership.instance() => {
                    by_holder.entry(holder).or_default().push((series, sample))
                }
                // Changing hands (or this instance's lease lapsed): whoever takes the partition replays them.
                _ => metrics::counter!("gantry_alarm_samples_unowned_total").increment(1),
            }
        }
        self.forwarder.send(by_holder).await;
        Ok(())
    }

    /// Evaluates readings another instance forwarded; those of points this instance no longer owns are left to
    /// their new owner's replay.
    pub(super) async fn evaluate_forwarded(&self, samples: Vec<(SeriesId, Sample)>) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        self.evaluate_owned(&mut inner, samples).await.map(|_| ())
    }

    /// Evaluates the samples of owned points, in time order per series; returns the others with their asset.
    pub(super) async fn evaluate_owned(
        &self,
        inner: &mut Inner,
        mut samples: Vec<(SeriesId, Sample)>,
    ) -> Result<Vec<(i64, SeriesId, Sample)>, ApiError> {
        samples.sort_unstable_by_key(|(series, sample)| (*series, sample.ts));
        self.check_generation(inner);
        let mut elsewhere = Vec::new();
        let mut start = 0;
        while start < samples.len() {
            let series = samples[start].0;
            let end = start + samples[start..].iter().take_while(|(s, _)| *s == series).count();
            let rules = self.rules_of_series(inner, series).await?;
            if let Some(asset_id) = rules.rules.first().map(|context| context.asset_id) {
                if !self.ownership.owns(asset_id) {
                    elsewhere.extend(samples[start..end].iter().map(|(s, sample)| (asset_id, *s, *sample)));
                    start = end;
                    continue;
                }
            }
            for context in &rules.rules {
                let key = (context.attribute.clone(), context.rule.name.clone());
                let mut transitions = Vec::new();
                let point = inner
                    .points
                    .entry(context.asset_id)
                    .or_default()
                    .entry(key.clone())
                    .or_default();
                let before = point.state.condition;
                for (_, sample) in &samples[start..end] {
                    on_sample(&context.compiled, &mut point.state, *sample, &mut transitions);
                }
                if before != point.state.condition || !transitions.is_empty() {
                    self.apply(inner, context, key, transitions).await?;
                }
            }
            start = end;
        }
        Ok(elsewhere)
    }

    /// Stores a point's new condition and the occurrences its transitions open and end, then announces them.
    pub(super) async fn apply(
        &self,
        inner: &mut Inner,
        context: &RuleContext,
        key: (String, String),
        transitions: Vec<Transition>,
    ) -> Result<(), ApiError> {
        let asset_id = context.asset_id;
        let now = now_ms();
        let point = inner
            .points
            .get_mut(&asset_id)
            .and_then(|points| points.get_mut(&key))
            .ok_or_else(|| missing_point(asset_id, &key))?;
        let suppressed = point.suppressed(now);
        let mut announcements = Vec::new();
        // Persist the end state with each transition: a crash between two leaves the later one to be redone from
        // the readings' retry, never an occurrence without its point.
        for transition in &transitions {
            match *transition {
                Transition::Raise { at, value } => {
                    if let Some(stale) = point.occurrence.take() {
                        let row = point_row(asset_id, &key, point);
                        self.store.return_occurrence(stale, at, value, &row, now).await?;
                    }
                    let limit = context.compiled.limit.map(format_value).unwrap_or_default();
                    let template = context
                        .rule
                        .message
                        .as_deref()
                        .unwrap_or(context.rule.default_message());
                    let message = render_message(
                        template,
                        &[
                            ("asset", context.asset_path.clone()),
                            ("attribute", context.attribute.clone()),
                            ("value", value.map(format_value).unwrap_or_else(|| "no value".into())),
                            ("unit", context.unit.clone().unwrap_or_default()),
                            ("limit", limit),
                            ("rule", context.rule.name.clone()),
                        ],
                    );
                    let occurrence = NewOccurrence {
                        asset_id,
                        attribute: key.0.clone(),
                        rule: key.1.clone(),
                        severity: context.rule.severity,
                        message,
                        unit: context.unit.clone(),
                        started_at: at,
                        start_value: value,
                        renotify_ms: context.rule.renotify_minutes.map(|m| i64::from(m) * 60_000),
                    };
                    let row = point_row(asset_id, &key, point);
                    let id = self.store.open_occurrence(&occurrence, &row, now).await?;
                    point.occurrence = Some(id);
                    metrics::counter!("gantry_alarms_raised_total", "severity" => context.rule.severity.as_str())
                        .increment(1);
                    announcements.push((AlarmEventKind::Raised, id));
                }
                Transition::Return { at, value } => {
                    if let Some(id) = point.occurrence.take() {
                        let row = point_row(asset_id, &key, point);
                        self.store.return_occurrence(id, at, value, &row, now).await?;
                        announcements.push((AlarmEventKind::Returned, id));
                    }
                }
            }
        }
        // Transitions stored the point with them; a change between pending and settled states is stored alone.
        if transitions.is_empty() {
            self.store
                .save_condition(&point_row(asset_id, &key, point), now)
                .await?;
        }
        point.saved_last = point.state.last.map(|sample| sample.ts);
        for (kind, id) in announcements {
            self.announce(kind, id, suppressed).await;
        }
        Ok(())
    }

    /// Tells browsers and webhooks about an occurrence, unless its point is shelved or out of service.
    pub async fn announce(&self, kind: AlarmEventKind, id: i64, suppressed: bool) {
        if suppressed {
            return;
        }
        let result = async {
            let Some(row) = self.store.occurrence(id).await? else {
                return Ok(());
            };
            let path = crate::assets::path_of(&self.model.lineage(row.asset_id).await?);
            self.notifier.publish(kind, alarm_view(row, path)).await.map(|_| ())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(
                error = %error.into_app_error(),
                alarm = id,
                "An alarm notification could not be queued."
            );
        }
    }

    /// Shelves (until `until`) or unshelves the point of an occurrence.
    pub async fn set_shelved(&self, row: &AlarmRow, until: Option<i64>, by: Option<String>) -> Result<(), ApiError> {
        self.suppress(row, |point| {
            point.shelved_until = until;
            point.shelved_by = by;
        })
        .await
    }

    /// Takes the point of an occurrence out of service, or returns it.
    pub async fn set_out_of_service(&self, row: &AlarmRow, out_of_service: bool) -> Result<(), ApiError> {
        self.suppress(row, |point| point.out_of_service = out_of_service).await
    }

    async fn suppress(&self, row: &AlarmRow, change: impl FnOnce(&mut Point)) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let key = (row.attribute.clone(), row.rule.clone());
        if !self.ownership.owns(row.asset_id) {
            // The owner holds the point; it reads the new flags when the change feed reports this change.
            let mut point = Point {
                shelved_until: row.shelved_until,
                out_of_service: row.out_of_service,
                ..Point::default()
            };
            change(&mut point);
            return self
                .store
                .save_suppression(&point_row(row.asset_id, &key, &point), now_ms())
                .await;
        }
        let point = inner
            .points
            .entry(row.asset_id)
            .or_default()
            .entry(key.clone())
            .or_default();
        change(point);
        self.store
            .save_suppression(&point_row(row.asset_id, &key, point), now_ms())
            .await
    }
}

#[async_trait::async_trait]
impl ReadingsObserver for AlarmEngine {
    async fn observe(&self, readings: &[Reading]) {
        let started = Instant::now();
        if let Err(error) = self.evaluate(readings).await {
            // The readings are stored; the alarms they should have changed are not. An operator must look.
            tracing::error!(error = %error.into_app_error(), "Alarm evaluation failed for a batch of readings.");
        }
        metrics::histogram!("gantry_alarm_evaluation_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// A point the engine was about to change is gone from memory: a bug, reported as an error rather than a panic
/// that would stop alarm evaluation.
pub(super) fn missing_point(asset_id: i64, key: &(String, String)) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(
        "alarm point {}/{}/{} is not loaded",
        asset_id,
        key.0,
        key.1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well_in_messages() {
        assert_eq!(format_value(91.0), "91");
        assert_eq!(format_value(1.23456), "1.235");
        assert_eq!(format_value(-0.0001), "0");
        assert_eq!(format_value(0.5), "0.5");
    }
}

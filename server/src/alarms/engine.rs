//! The alarm engine: evaluates every durable batch of readings against the rules of their attributes, in
//! timestamp order per series, before the batch is acknowledged; runs the timers (on/off delays, no data, shelving
//! expiry, re-notification); and records every change of a point's condition in the metadata database, so that a
//! restart resumes each point where it was: a delay that ended while Gantry was down fires at start-up, at the
//! time it ended.
//!
//! Each instance holds and evaluates the points of the partitions it owns (`ownership.rs`); readings of other
//! points go to their owner (`forward.rs`), and points change hands with their state (`handover.rs`).
//!
//! Rules are resolved per asset (template rules through inheritance, then the asset's own) and cached per series
//! until the model or the asset rules change (the change feed tells every instance), or for a minute.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::alarms::{render_message, AlarmEventKind, AlarmRule, AlarmState, AlarmView};
use app::auth::Actor;
use app::error::ErrorKind;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::forward::Forwarder;
use super::notify::Notifier;
use super::ownership::{partition_of, Ownership};
use super::rules::{advance, next_deadline, on_sample, Compiled, Condition, PointState, Sample, Transition};
use super::store::{AlarmRow, AlarmStore, NewOccurrence, PointRow};
use crate::assets::Model;
use crate::error::ApiError;
use crate::ingest::ReadingsObserver;
use crate::metadata::now_ms;
use crate::timeseries::{registry::SeriesRegistry, Reading, SeriesId, SharedStore};
use app::services::ModelService;

const RULES_TTL: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_millis(200);
const REMINDER_EVERY: Duration = Duration::from_secs(5);
/// How often each point's last evaluated sample is stored (beside every change of its condition), which bounds
/// what a new owner replays.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

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

    fn suppression_from(&mut self, row: &PointRow) {
        self.shelved_until = row.shelved_until;
        self.shelved_by = row.shelved_by.clone();
        self.out_of_service = row.out_of_service;
    }

    fn suppressed(&self, now: i64) -> bool {
        self.out_of_service || self.shelved_until.is_some_and(|until| until > now)
    }
}

/// (attribute, rule name) → point, per asset.
pub(super) type AssetPoints = HashMap<(String, String), Point>;

pub(super) struct SeriesRules {
    loaded: Instant,
    rules: Vec<Arc<RuleContext>>,
}

pub(super) struct Inner {
    generation: (u64, u64),
    series: HashMap<SeriesId, Arc<SeriesRules>>,
    /// The points of the partitions this instance owns.
    pub(super) points: HashMap<i64, AssetPoints>,
}

pub struct AlarmEngine {
    pub(super) store: Arc<dyn AlarmStore>,
    model: Arc<Model>,
    pub(super) registry: Arc<dyn SeriesRegistry>,
    pub(super) readings: SharedStore,
    notifier: Arc<Notifier>,
    ownership: Arc<Ownership>,
    forwarder: Forwarder,
    /// Bumped when an asset's own rules change.
    rules_generation: AtomicU64,
    /// Set when another instance may have shelved or taken points out of service.
    suppression_changed: AtomicBool,
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

    async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_reminders = Instant::now();
        let mut last_checkpoint = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(error) = self.tick(now_ms()).await {
                tracing::error!(error = %error.into_app_error(), "Alarm timers failed; retrying.");
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                if let Err(error) = self.checkpoint(None).await {
                    tracing::warn!(error = %error.into_app_error(), "Alarm points could not be saved; retrying.");
                }
            }
            if last_reminders.elapsed() >= REMINDER_EVERY {
                last_reminders = Instant::now();
                if let Err(error) = self.remind(now_ms()).await {
                    tracing::warn!(error = %error.into_app_error(), "Alarm reminders failed; retrying.");
                }
            }
        }
    }

    pub(super) fn check_generation(&self, inner: &mut Inner) {
        let generation = (self.model.generation(), self.rules_generation.load(Ordering::Acquire));
        if inner.generation != generation {
            inner.series.clear();
            inner.generation = generation;
        }
    }

    /// The rules of every attribute of an asset, template rules first; an asset rule of the same name replaces the
    /// template's.
    async fn rules_of_asset(&self, asset_id: i64) -> Result<Vec<Arc<RuleContext>>, ApiError> {
        let asset = match self.model.get_asset(&Actor::command_line(), asset_id).await {
            Ok(asset) => asset,
            Err(error) if error.code == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let own = self.store.asset_rules(asset_id).await?;
        let mut out = Vec::new();
        for attribute in asset.attributes.iter().map(|a| &a.attribute).filter(|a| a.is_series) {
            let mut rules: Vec<AlarmRule> = attribute.alarms.clone();
            for extra in own.iter().filter(|r| r.attribute == attribute.name) {
                rules.retain(|r| r.name != extra.rule.name);
                rules.push(extra.rule.clone());
            }
            for rule in rules {
                let Some(compiled) = Compiled::new(&rule, &attribute.limits) else {
                    continue;
                };
                out.push(Arc::new(RuleContext {
                    asset_id,
                    asset_path: asset.summary.path.clone(),
                    attribute: attribute.name.clone(),
                    unit: attribute.unit.clone(),
                    rule,
                    compiled,
                }));
            }
        }
        Ok(out)
    }

    /// Resolves an asset's rules into the series cache and its points; points whose rule is gone stop, and an
    /// alarm they had open returns to normal.
    pub(super) async fn resolve_asset(&self, inner: &mut Inner, asset_id: i64) -> Result<(), ApiError> {
        let rules = self.rules_of_asset(asset_id).await?;
        let series = self.registry.series_of_asset(asset_id).await?;
        let series_of = |attribute: &str| series.iter().find(|(a, _)| a == attribute).map(|(_, id)| *id);
        for (attribute, id) in &series {
            let rules = rules.iter().filter(|r| &r.attribute == attribute).cloned().collect();
            inner.series.insert(
                *id,
                Arc::new(SeriesRules {
                    loaded: Instant::now(),
                    rules,
                }),
            );
        }
        if !self.ownership.owns(asset_id) {
            // Another instance evaluates the asset's points; this one only needs to know that they exist.
            return Ok(());
        }
        let mut history_needed: Vec<(SeriesId, (String, String))> = Vec::new();
        let points = inner.points.entry(asset_id).or_default();
        for context in &rules {
            let key = (context.attribute.clone(), context.rule.name.clone());
            let point = points.entry(key.clone()).or_default();
            point.context = Some(context.clone());
            if context.compiled.needs_history() && point.state.last.is_none() {
                if let Some(series) = series_of(&context.attribute) {
                    history_needed.push((series, key));
                }
            }
        }
        let now = now_ms();
        let mut retired = Vec::new();
        for (key, point) in points.iter_mut() {
            if !rules.iter().any(|r| r.attribute == key.0 && r.rule.name == key.1) {
                point.context = None;
                if point.state.condition != Condition::Normal {
                    point.state = PointState::new();
                    retired.push(key.clone());
                }
            }
        }
        for key in retired {
            let Some(point) = points.get_mut(&key) else { continue };
            let row = point_row(asset_id, &key, point);
            match point.occurrence.take() {
                Some(id) => {
                    let row = PointRow {
                        occurrence_id: None,
                        ..row
                    };
                    self.store.return_occurrence(id, now, None, &row, now).await?;
                    let suppressed = point.suppressed(now);
                    self.announce(AlarmEventKind::Returned, id, suppressed).await;
                }
                None => self.store.save_condition(&row, now).await?,
            }
        }
        if !history_needed.is_empty() {
            let ids: Vec<SeriesId> = history_needed.iter().map(|(id, _)| *id).collect();
            let latest = self.readings.latest(&ids).await.map_err(anyhow::Error::from)?;
            for (series, key) in history_needed {
                if let (Some(point), Some(last)) = (points.get_mut(&key), latest.get(&series)) {
                    point.state.last.get_or_insert(Sample {
                        ts: last.ts,
                        value: last.value,
                    });
                }
            }
        }
        Ok(())
    }

    async fn rules_of_series(&self, inner: &mut Inner, series: SeriesId) -> Result<Arc<SeriesRules>, ApiError> {
        if let Some(rules) = inner.series.get(&series) {
            if rules.loaded.elapsed() < RULES_TTL {
                return Ok(rules.clone());
            }
        }
        match self.registry.owner(series).await? {
            Some((asset_id, _)) => self.resolve_asset(inner, asset_id).await?,
            None => {
                inner.series.insert(
                    series,
                    Arc::new(SeriesRules {
                        loaded: Instant::now(),
                        rules: Vec::new(),
                    }),
                );
            }
        }
        Ok(inner.series.get(&series).cloned().unwrap_or_else(|| {
            Arc::new(SeriesRules {
                loaded: Instant::now(),
                rules: Vec::new(),
            })
        }))
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
    async fn apply(
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

    /// Runs the delays, silences and shelving expiries due by `now`.
    pub async fn tick(&self, now: i64) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        if self.suppression_changed.swap(false, Ordering::AcqRel) {
            for row in self.store.points().await? {
                let key = (row.attribute.clone(), row.rule.clone());
                if let Some(point) = inner
                    .points
                    .get_mut(&row.asset_id)
                    .and_then(|points| points.get_mut(&key))
                {
                    point.suppression_from(&row);
                }
            }
        }
        let mut due = Vec::new();
        let mut unshelve = Vec::new();
        for (asset_id, points) in &inner.points {
            if !self.ownership.owns(*asset_id) {
                continue;
            }
            for (key, point) in points {
                if point.shelved_until.is_some_and(|until| until <= now) {
                    unshelve.push((*asset_id, key.clone()));
                }
                if let Some(context) = &point.context {
                    if next_deadline(&context.compiled, &point.state).is_some_and(|at| at <= now) {
                        due.push(context.clone());
                    }
                }
            }
        }
        for context in due {
            let key = (context.attribute.clone(), context.rule.name.clone());
            let point = inner
                .points
                .get_mut(&context.asset_id)
                .and_then(|points| points.get_mut(&key))
                .ok_or_else(|| missing_point(context.asset_id, &key))?;
            let before = point.state.condition;
            let mut transitions = Vec::new();
            advance(&context.compiled, &mut point.state, now, &mut transitions);
            if before != point.state.condition {
                self.apply(&mut inner, &context, key, transitions).await?;
            }
        }
        for (asset_id, key) in unshelve {
            let Some(point) = inner.points.get_mut(&asset_id).and_then(|p| p.get_mut(&key)) else {
                continue;
            };
            point.shelved_until = None;
            point.shelved_by = None;
            self.store
                .save_suppression(&point_row(asset_id, &key, point), now)
                .await?;
            if let Some(id) = point.occurrence {
                let suppressed = point.suppressed(now);
                self.announce(AlarmEventKind::Unshelved, id, suppressed).await;
            }
        }
        Ok(())
    }

    /// Notifies again about alarms still unacknowledged after their rule's re-notification period.
    async fn remind(&self, now: i64) -> Result<(), ApiError> {
        for row in self.store.due_reminders(now).await? {
            // Every instance finds the same due reminders; the one that claims it sends it.
            if !self.store.claim_reminder(row.id, now).await? {
                continue;
            }
            let suppressed = row.out_of_service || row.shelved_until.is_some_and(|until| until > now);
            self.announce(AlarmEventKind::Reminder, row.id, suppressed).await;
        }
        Ok(())
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
fn missing_point(asset_id: i64, key: &(String, String)) -> ApiError {
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

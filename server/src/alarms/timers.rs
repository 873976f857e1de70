//! The engine's clock: on/off delays, no-data silences and shelving expiry come due on a tick (every 200 ms) and
//! re-notification of unacknowledged alarms every few seconds, each claimed by one instance.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::alarms::AlarmEventKind;
use tokio_util::sync::CancellationToken;

use super::engine::*;
use super::rules::{advance, next_deadline};
use crate::error::ApiError;
use crate::metadata::now_ms;

const TICK: Duration = Duration::from_millis(200);
const REMINDER_EVERY: Duration = Duration::from_secs(5);
/// How often each point's last evaluated sample is stored (beside every change of its condition), which bounds
/// what a new owner replays.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

impl AlarmEngine {
    pub(super) async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
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
    pub(super) async fn remind(&self, now: i64) -> Result<(), ApiError> {
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
}

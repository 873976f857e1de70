//! Open alarms for search: what the index holds of an alarm occurrence, from the alarm store (a full build) or
//! from the alarm events every instance receives (raised, returned, acknowledged, shelved, …), so `has:alarm`,
//! `severity:` and `state:` follow the alarms within a second on every instance.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use app::alarms::{AlarmEvent, AlarmView};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::index::IndexedAlarm;
use crate::alarms::AlarmRow;
use crate::fanout::Topic;
use crate::locks::MutexExt;
use crate::tasks::Tasks;

/// What the index needs of an occurrence, whichever way it came.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmFacts {
    pub alarm: IndexedAlarm,
    pub asset_id: i64,
    pub rule: String,
    pub attribute: String,
    pub message: String,
}

impl AlarmFacts {
    /// Active, or returned and not yet acknowledged: what an operator must see.
    pub fn is_open(&self) -> bool {
        self.alarm.active || !self.alarm.acknowledged
    }

    pub fn from_row(row: &AlarmRow, now_ms: i64) -> AlarmFacts {
        AlarmFacts {
            alarm: IndexedAlarm {
                id: row.id,
                severity: row.severity.as_str().to_string(),
                active: row.active,
                acknowledged: row.acknowledged,
                shelved: row.out_of_service || row.shelved_until.is_some_and(|until| until > now_ms),
            },
            asset_id: row.asset_id,
            rule: row.rule.clone(),
            attribute: row.attribute.clone(),
            message: row.message.clone(),
        }
    }

    pub fn from_view(view: &AlarmView, now_ms: i64) -> AlarmFacts {
        AlarmFacts {
            alarm: IndexedAlarm {
                id: view.id,
                severity: view.severity.as_str().to_string(),
                active: view.active,
                acknowledged: view.acknowledged,
                shelved: view.out_of_service || view.shelved_until.is_some_and(|until| until > now_ms),
            },
            asset_id: view.asset_id,
            rule: view.rule.clone(),
            attribute: view.attribute.clone(),
            message: view.message.clone(),
        }
    }
}

/// Alarm events from every instance that this instance's index has not taken yet (the newest of each alarm).
pub struct PendingAlarms {
    pending: Mutex<HashMap<i64, (i64, AlarmView)>>,
    arrived: Notify,
}

impl PendingAlarms {
    /// Alarms that only arrive through [`PendingAlarms::follow`] (a one-off build needs none).
    pub fn none() -> Arc<PendingAlarms> {
        Arc::new(PendingAlarms {
            pending: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        })
    }

    /// Collects what `topic` delivers (supervised), until `shutdown`.
    pub fn follow(topic: &Topic<AlarmEvent>, tasks: &Tasks, shutdown: CancellationToken) -> Arc<PendingAlarms> {
        let this = PendingAlarms::none();
        let (collector, receiver) = (this.clone(), topic.subscribe());
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        tasks.supervise("search alarms follower", move || {
            let (this, receiver, shutdown) = (collector.clone(), receiver.clone(), shutdown.clone());
            async move {
                let mut receiver = receiver.lock().await;
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        event = receiver.recv() => event,
                    };
                    match event {
                        Ok(event) => {
                            let mut pending = this.pending.lock_unpoisoned();
                            let newer = pending.get(&event.alarm.id).is_none_or(|(at, _)| *at <= event.at);
                            if newer {
                                pending.insert(event.alarm.id, (event.at, event.alarm));
                            }
                            drop(pending);
                            this.arrived.notify_one();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            // Lost events come back with the next full build; until then the index may lag.
                            tracing::warn!(missed, "The search index fell behind on alarm events.");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        this
    }

    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    pub fn take(&self) -> Vec<AlarmView> {
        std::mem::take(&mut *self.pending.lock_unpoisoned())
            .into_values()
            .map(|(_, view)| view)
            .collect()
    }
}

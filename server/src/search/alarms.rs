//! Open alarms for search: what the index holds of an alarm occurrence, from the alarm store (a full build) or
//! from the alarm events every instance receives (raised, returned, acknowledged, shelved, …), so `has:alarm`,
//! `severity:` and `state:` follow the alarms within a second on every instance.

use std::sync::Arc;

use app::alarms::{AlarmEvent, AlarmView};
use tokio_util::sync::CancellationToken;

use super::index::IndexedAlarm;
use crate::fanout::{Inbox, Topic};
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

/// Alarm events from every instance that this instance's index has not taken yet: the newest of each alarm, by
/// id, with its time.
pub type PendingAlarms = Inbox<i64, (i64, AlarmView)>;

/// Collects what `topic` delivers into [`PendingAlarms`] (supervised), until `shutdown`.
pub fn follow(topic: &Topic<AlarmEvent>, tasks: &Tasks, shutdown: CancellationToken) -> Arc<PendingAlarms> {
    Inbox::follow(
        topic,
        "search alarms follower",
        |pending, event| {
            if pending.get(&event.alarm.id).is_none_or(|(at, _)| *at <= event.at) {
                pending.insert(event.alarm.id, (event.at, event.alarm));
            }
        },
        tasks,
        shutdown,
    )
}

//! Current values for search: the newest reading of each series that ingest acknowledged here, collapsed and
//! published a few times a second to every instance (through the fan-out), where each instance's index takes
//! them. Attribute conditions (`"outlet temperature" > 100`) compare these values.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::charts::live::LiveBatch;
use crate::fanout::{Inbox, Topic};
use crate::ingest::ReadingsObserver;
use crate::locks::MutexExt;
use crate::tasks::Tasks;
use crate::timeseries::{Reading, SeriesId};

/// How often what ingest observed is published: a new value is searchable well within a second.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The newest `(ts, value)` of each series in `pending` and `batch` together.
fn merge_newest(pending: &mut HashMap<SeriesId, (i64, f64)>, batch: impl IntoIterator<Item = (SeriesId, i64, f64)>) {
    for (series, ts, value) in batch {
        let newest = pending.entry(series).or_insert((ts, value));
        if ts >= newest.0 {
            *newest = (ts, value);
        }
    }
}

/// Observes acknowledged readings and publishes the newest of each series to every instance.
pub struct ValuePublisher {
    observed: Mutex<HashMap<SeriesId, (i64, f64)>>,
    topic: Arc<Topic<LiveBatch>>,
}

impl ValuePublisher {
    pub fn new(topic: Arc<Topic<LiveBatch>>) -> Arc<ValuePublisher> {
        Arc::new(ValuePublisher {
            observed: Mutex::new(HashMap::new()),
            topic,
        })
    }

    /// Publishes what was observed every [`PUBLISH_EVERY`] (supervised), until `shutdown`.
    pub fn spawn(self: &Arc<Self>, tasks: &Tasks, shutdown: CancellationToken) {
        let this = self.clone();
        tasks.supervise("search values", move || {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            async move {
                let mut tick = tokio::time::interval(PUBLISH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let observed = std::mem::take(&mut *this.observed.lock_unpoisoned());
                    if !observed.is_empty() {
                        let batch = observed.into_iter().map(|(series, (ts, value))| (series, ts, value));
                        this.topic.publish(LiveBatch(Arc::new(batch.collect()))).await;
                    }
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl ReadingsObserver for ValuePublisher {
    async fn observe(&self, readings: &[Reading]) {
        let mut observed = self.observed.lock_unpoisoned();
        merge_newest(
            &mut observed,
            readings.iter().map(|r| (r.series, r.ts, r.value.as_f64())),
        );
    }
}

/// The values published by every instance that this instance's index has not taken yet: the newest of each
/// series.
pub type PendingValues = Inbox<SeriesId, (i64, f64)>;

/// Collects what `topic` delivers into [`PendingValues`] (supervised), until `shutdown`.
pub fn follow(topic: &Topic<LiveBatch>, tasks: &Tasks, shutdown: CancellationToken) -> Arc<PendingValues> {
    Inbox::follow(
        topic,
        "search values follower",
        |pending, LiveBatch(points)| merge_newest(pending, points.iter().copied()),
        tasks,
        shutdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_reading_of_each_series_whatever_the_order() {
        let mut pending = HashMap::new();
        merge_newest(&mut pending, [(1, 20, 2.0), (1, 10, 1.0), (2, 5, 7.0)]);
        merge_newest(&mut pending, [(1, 15, 9.0), (2, 6, 8.0)]);
        assert_eq!(pending[&1], (20, 2.0));
        assert_eq!(pending[&2], (6, 8.0));
    }
}

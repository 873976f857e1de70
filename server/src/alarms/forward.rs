//! Readings for alarm points another instance evaluates: sent to that instance (through the cluster's fan-out,
//! Redis pub/sub), which evaluates them and answers, before the receiving instance acknowledges them, so a device
//! that posts reading after reading to different instances sees them evaluated in its order.
//!
//! An instance that does not answer within [`ANSWER_WITHIN`] (dead, or stalled) is not waited for again for a
//! while: the readings are durable, and whoever takes its partitions over replays them from the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use super::engine::AlarmEngine;
use super::rules::Sample;
use crate::fanout::Topic;
use crate::locks::MutexExt;
use crate::tasks::Tasks;
use crate::timeseries::SeriesId;

/// How long an instance waits for another to evaluate forwarded readings.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// How long an instance that did not answer is not waited for.
const NOT_WAITED_FOR: Duration = Duration::from_secs(10);

/// What instances tell each other about alarm evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlarmWork {
    /// `to` is asked to evaluate `samples` (series, time, value) and answer `from` with `id`.
    Evaluate {
        to: String,
        from: String,
        id: u64,
        samples: Vec<(SeriesId, i64, f64)>,
    },
    /// `to`'s request `id` is evaluated.
    Evaluated { to: String, id: u64 },
}

pub struct Forwarder {
    instance: String,
    topic: Arc<Topic<AlarmWork>>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    silent: Mutex<HashMap<String, Instant>>,
}

impl Forwarder {
    pub fn new(instance: String, topic: Arc<Topic<AlarmWork>>) -> Forwarder {
        Forwarder {
            instance,
            topic,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            silent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether forwarded readings can reach another instance at all (a Redis topic).
    pub fn between_instances(&self) -> bool {
        self.topic.is_shared()
    }

    /// Sends each holder its samples and waits for every answer (or [`ANSWER_WITHIN`]).
    pub async fn send(&self, by_holder: HashMap<String, Vec<(SeriesId, Sample)>>) {
        let mut answers = Vec::new();
        for (holder, samples) in by_holder {
            metrics::counter!("gantry_alarm_samples_forwarded_total").increment(samples.len() as u64);
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (sender, receiver) = oneshot::channel();
            self.waiting.lock_unpoisoned().insert(id, sender);
            let samples = samples
                .into_iter()
                .map(|(series, sample)| (series, sample.ts, sample.value))
                .collect();
            self.topic
                .publish(AlarmWork::Evaluate {
                    to: holder.clone(),
                    from: self.instance.clone(),
                    id,
                    samples,
                })
                .await;
            answers.push((holder, id, receiver));
        }
        for (holder, id, receiver) in answers {
            let silent_since = self.silent.lock_unpoisoned().get(&holder).copied();
            if silent_since.is_some_and(|since| since.elapsed() < NOT_WAITED_FOR) {
                self.waiting.lock_unpoisoned().remove(&id);
                continue;
            }
            if tokio::time::timeout(ANSWER_WITHIN, receiver).await.is_err() {
                self.waiting.lock_unpoisoned().remove(&id);
                self.silent.lock_unpoisoned().insert(holder.clone(), Instant::now());
                metrics::counter!("gantry_alarm_forwards_unanswered_total").increment(1);
                tracing::warn!(
                    instance = %holder,
                    "An instance did not evaluate forwarded readings in time; its alarms are evaluated from the \
                     store once another instance takes its partitions."
                );
            } else {
                self.silent.lock_unpoisoned().remove(&holder);
            }
        }
    }

    fn answered(&self, id: u64) {
        if let Some(waiter) = self.waiting.lock_unpoisoned().remove(&id) {
            let _ = waiter.send(());
        }
    }
}

/// Evaluates what other instances forward to this one, and hands their answers to the waiting requests.
pub fn spawn(engine: Arc<AlarmEngine>, tasks: &Tasks, shutdown: CancellationToken) {
    tasks.supervise("alarm forwarding", move || {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        let mut work = engine.forwarder().topic.subscribe();
        async move {
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = work.recv() => message,
                };
                match message {
                    Ok(AlarmWork::Evaluate { to, from, id, samples }) if to == engine.forwarder().instance => {
                        let samples = samples
                            .into_iter()
                            .map(|(series, ts, value)| (series, Sample { ts, value }))
                            .collect();
                        if let Err(error) = engine.evaluate_forwarded(samples).await {
                            tracing::error!(
                                error = %error.into_app_error(),
                                "Alarm evaluation failed for readings another instance forwarded."
                            );
                        }
                        engine
                            .forwarder()
                            .topic
                            .publish(AlarmWork::Evaluated { to: from, id })
                            .await;
                    }
                    Ok(AlarmWork::Evaluated { to, id }) if to == engine.forwarder().instance => {
                        engine.forwarder().answered(id)
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "Forwarded alarm work was dropped: too much at once.")
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
}

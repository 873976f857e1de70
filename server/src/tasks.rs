//! The background tasks of an instance (alarm timers, the ingest writer and observers, webhook deliveries,
//! retention, last-seen writes, MQTT): each runs under [`Tasks::supervise`]. A panic in one is logged as an error,
//! counted in `gantry_task_panics_total{task}`, and the task is started again after a short pause; while it is
//! down, `/readyz` answers 503 so a gateway sends no traffic to an instance that would acknowledge readings
//! without evaluating alarms. Every task is tracked, so shutdown can wait for them ([`Tasks::stop`]).

use crate::locks::MutexExt;
use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The pause before a task that panicked is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled by [`Tasks::stop`], after the HTTP server has stopped: what must outlive in-flight requests (the
    /// ingest writer) watches this, not the shutdown signal.
    stopping: CancellationToken,
    /// Tasks between a panic and their restart, with their panic counts.
    down: Arc<Mutex<HashMap<&'static str, u64>>>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when the instance's tasks are being stopped.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Runs the future `start` makes until it returns; if it panics, logs and counts the panic, marks the task
    /// down, and after a pause starts a new one (unless the tasks are stopping).
    pub fn supervise<F, Fut>(&self, name: &'static str, start: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let tasks = self.clone();
        self.tracker.spawn(async move {
            loop {
                let panic = match tokio::spawn(start()).await {
                    Ok(()) => return,
                    Err(error) if error.is_panic() => error.into_panic(),
                    Err(_) => return,
                };
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                metrics::counter!("gantry_task_panics_total", "task" => name).increment(1);
                tracing::error!(
                    task = name,
                    panic = message,
                    "A background task panicked; it restarts, and the instance reports not ready until it has."
                );
                tasks.set_down(name, true);
                tokio::select! {
                    _ = tasks.stopping.cancelled() => return,
                    _ = tokio::time::sleep(RESTART_PAUSE) => {}
                }
                tasks.set_down(name, false);
            }
        });
    }

    fn set_down(&self, name: &'static str, down: bool) {
        let mut tasks = self.down.lock_unpoisoned();
        if down {
            *tasks.entry(name).or_default() += 1;
        } else {
            tasks.remove(name);
        }
    }

    /// The tasks that are down right now (for `/readyz`).
    pub fn down(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.down.lock_unpoisoned().keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Tells the tasks to stop and waits up to `grace` for them.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(
                running = self.tracker.len(),
                "Some background tasks did not stop in time; they are abandoned."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_and_reported_down_meanwhile() {
        let tasks = Tasks::new();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        tasks.supervise("flaky", move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first run fails");
                }
                std::future::pending::<()>().await;
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tasks.down().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "the panic was not noticed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tasks.down(), vec!["flaky"]);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the task was not restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(tasks.down().is_empty(), "a restarted task is up again");
        // Stopping abandons a task that does not end by itself, within the grace period.
        tasks.stop(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn stop_waits_for_tasks_that_watch_the_stopping_token() {
        let tasks = Tasks::new();
        let finished = Arc::new(AtomicU32::new(0));
        let (stopping, done) = (tasks.stopping(), finished.clone());
        tasks.supervise("writer", move || {
            let (stopping, done) = (stopping.clone(), done.clone());
            async move {
                stopping.cancelled().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(1, Ordering::SeqCst);
            }
        });
        tasks.stop(Duration::from_secs(5)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "stop did not wait for the task to finish"
        );
    }
}

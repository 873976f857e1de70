//! The change feed, and each instance's follower of it.
//!
//! Every committed change (to the model, rules, grants, users, tokens, devices, alarm points, dashboards, webhooks)
//! appends a row to the audit log, after the change itself: the audit log *is* the change feed, one table, so
//! nothing changes without a record of who changed it. Each instance follows that table and drops what it caches
//! (the model generation that resolved alarm rules and asset lineages hang on, device authentications, the
//! webhook list) when another instance, or a `gantry` command, changed something.
//!
//! PostgreSQL wakes the followers the moment a row commits (`NOTIFY gantry_changes`, from a trigger); the table
//! stays the truth, so they also look every [`LOOK_EVERY`], which is all that SQLite (one server process) needs.
//! Ids can commit out of order under concurrent writes (a transaction that took id 10 commits after the one that
//! took 11): the follower remembers the ids it skipped over and looks for them again for [`HOLE_LIFETIME`] (a
//! rolled-back transaction leaves a hole that never fills), so every committed change is delivered once — which
//! the search index, which applies changes rather than only dropping caches, relies on.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use crate::auth::AuthStore;
use crate::metadata::Database;
use crate::tasks::Tasks;

/// How often a follower looks at the table when nothing woke it.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long a skipped id is looked for again (longer than any transaction that writes an audit row runs).
const HOLE_LIFETIME: Duration = Duration::from_secs(60);
/// Most rows read per look.
const PAGE: i64 = 1_000;

/// The PostgreSQL channel the audit log's trigger notifies.
const CHANNEL: &str = "gantry_changes";

/// Actions that change nothing any instance caches (they are frequent).
const CACHE_NEUTRAL: &[&str] = &["auth.login", "auth.logout"];

/// What one committed change is, as far as followers care.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Change {
    pub id: i64,
    pub action: String,
    /// What was changed: `asset`, `device`, `template`, … and its id (as the audit log records them).
    pub target_type: String,
    pub target_id: Option<String>,
}

impl Change {
    /// The changed thing's id, when it is a number.
    pub fn target(&self) -> Option<i64> {
        self.target_id.as_deref().and_then(|id| id.parse().ok())
    }
}

/// Where a follower is in the feed: the newest id read, and the ids below it not seen yet (with when they were
/// first missed).
#[derive(Debug, Default)]
struct Position {
    newest: i64,
    holes: BTreeMap<i64, Instant>,
}

impl Position {
    /// Takes rows read in id order, remembering the ids skipped over; returns the rows not delivered before.
    fn advance(&mut self, rows: Vec<Change>, now: Instant) -> Vec<Change> {
        let mut fresh = Vec::with_capacity(rows.len());
        for row in rows {
            if row.id > self.newest {
                for missing in self.newest + 1..row.id {
                    self.holes.insert(missing, now);
                }
                self.newest = row.id;
                fresh.push(row);
            } else if self.holes.remove(&row.id).is_some() {
                fresh.push(row);
            }
        }
        self.holes.retain(|_, since| now.duration_since(*since) < HOLE_LIFETIME);
        fresh
    }
}

/// Wakes the followers of this process when it committed a change itself (SQLite has no notifications; on
/// PostgreSQL this only comes before the notification).
static COMMITTED_HERE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// This process committed a change (an audit row): its followers look now rather than at their next turn.
pub fn committed_here() {
    COMMITTED_HERE.notify_waiters();
}

/// Called with the changes a look found, when any of them may invalidate a cache.
pub type OnChange = Arc<dyn Fn(&[Change]) + Send + Sync>;

/// Starts this instance's follower of the change feed (supervised: restarted if it panics).
pub fn follow(database: &Database, on_change: OnChange, tasks: &Tasks, shutdown: CancellationToken) {
    let store = database.auth_store();
    let pool = match database {
        Database::Postgres(db) => Some(db.pool.clone()),
        Database::Sqlite(_) => None,
    };
    tasks.supervise("change feed", move || {
        run(store.clone(), pool.clone(), on_change.clone(), shutdown.clone())
    });
}

async fn run(store: Arc<dyn AuthStore>, pool: Option<sqlx::PgPool>, on_change: OnChange, shutdown: CancellationToken) {
    // Start at the newest row: what happened before this instance started is in what it loads.
    let mut position = loop {
        match store.latest_audit_id().await {
            Ok(id) => {
                break Position {
                    newest: id,
                    ..Position::default()
                }
            }
            Err(error) => tracing::warn!(error = %error.into_app_error(), "The change feed cannot be read yet."),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
    };
    let mut listener = None;
    loop {
        if listener.is_none() {
            if let Some(pool) = &pool {
                listener = listen(pool).await;
            }
        }
        let woken = async {
            match listener.as_mut() {
                Some(listener) => listener.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        let lost_listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LOOK_EVERY) => false,
            _ = COMMITTED_HERE.notified() => false,
            woken = woken => woken.is_err(),
        };
        if lost_listener {
            // Looked at again on the next turn; meanwhile the timer keeps the feed followed.
            listener = None;
        }
        look(store.as_ref(), &mut position, &on_change).await;
    }
}

async fn listen(pool: &sqlx::PgPool) -> Option<sqlx::postgres::PgListener> {
    let result = async {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    result
        .inspect_err(|error| {
            tracing::warn!(%error, "Change notifications are unavailable; the change feed is polled meanwhile.")
        })
        .ok()
}

/// Reads the changes after `position` and those it skipped over that have committed since, tells `on_change` about
/// them, and moves `position` on.
async fn look(store: &dyn AuthStore, position: &mut Position, on_change: &OnChange) {
    loop {
        // Skipped ids are re-read with the new rows: one range from the oldest hole.
        let after = position
            .holes
            .keys()
            .next()
            .map_or(position.newest, |oldest| oldest - 1);
        let rows = match store.audit_since(after, PAGE).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(error = %error.into_app_error(), "The change feed could not be read; retrying.");
                return;
            }
        };
        let full = rows.len() as i64 == PAGE;
        let changes = position.advance(rows, Instant::now());
        if changes
            .iter()
            .any(|change| !CACHE_NEUTRAL.contains(&change.action.as_str()))
        {
            on_change(&changes);
        }
        if !full {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64) -> Change {
        Change {
            id,
            action: "asset.update".into(),
            target_type: "asset".into(),
            target_id: Some("1".into()),
        }
    }

    fn ids(changes: &[Change]) -> Vec<i64> {
        changes.iter().map(|c| c.id).collect()
    }

    #[test]
    fn an_id_that_commits_late_is_delivered_once_and_a_hole_is_forgotten_in_time() {
        let start = Instant::now();
        let mut position = Position {
            newest: 10,
            ..Position::default()
        };
        // 11 and 13 took their ids first but have not committed yet.
        assert_eq!(
            ids(&position.advance(vec![change(12), change(14)], start)),
            vec![12, 14]
        );
        assert_eq!(position.holes.keys().copied().collect::<Vec<_>>(), vec![11, 13]);
        // The next look re-reads from the oldest hole: 13 has committed; 12 and 14 are not delivered again.
        let again = vec![change(12), change(13), change(14), change(15)];
        assert_eq!(ids(&position.advance(again, start)), vec![13, 15]);
        assert_eq!(position.holes.keys().copied().collect::<Vec<_>>(), vec![11]);
        // 11 was rolled back: after a while it is no longer looked for.
        let later = start + HOLE_LIFETIME + Duration::from_secs(1);
        assert!(position.advance(vec![change(12)], later).is_empty());
        assert!(position.holes.is_empty());
    }
}

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
//! Ids can commit out of order under concurrent writes; a follower that only invalidates is still right (a change
//! is committed before its audit row is written, so any later look sees it), but one that must see every row (the
//! search index, next) has to re-read a window behind its position.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::auth::AuthStore;
use crate::metadata::Database;
use crate::tasks::Tasks;

/// How often a follower looks at the table when nothing woke it.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The PostgreSQL channel the audit log's trigger notifies.
const CHANNEL: &str = "gantry_changes";

/// Actions that change nothing any instance caches (they are frequent).
const CACHE_NEUTRAL: &[&str] = &["auth.login", "auth.logout"];

/// What one committed change is, as far as followers care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub action: String,
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
            Ok(id) => break id,
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
            woken = woken => woken.is_err(),
        };
        if lost_listener {
            // Looked at again on the next turn; meanwhile the timer keeps the feed followed.
            listener = None;
        }
        position = look(store.as_ref(), position, &on_change).await;
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

/// Reads the changes after `position`, tells `on_change` about them, and returns the new position.
async fn look(store: &dyn AuthStore, mut position: i64, on_change: &OnChange) -> i64 {
    loop {
        let rows = match store.audit_since(position, 1_000).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(error = %error.into_app_error(), "The change feed could not be read; retrying.");
                return position;
            }
        };
        let Some((last, _)) = rows.last() else {
            return position;
        };
        position = *last;
        let full = rows.len() == 1_000;
        let changes: Vec<Change> = rows.into_iter().map(|(id, action)| Change { id, action }).collect();
        if changes
            .iter()
            .any(|change| !CACHE_NEUTRAL.contains(&change.action.as_str()))
        {
            on_change(&changes);
        }
        if !full {
            return position;
        }
    }
}

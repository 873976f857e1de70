//! Report runs: the run store (one SQL text for both backends) and the worker every instance runs.
//!
//! A run is a row. Asking for one inserts it queued; a schedule's due time inserts one with `scheduled_for` set,
//! and the unique (report, due time) index makes that insert the claim: whichever instance inserts it first owns
//! the due time, the others' inserts do nothing. Any instance's worker then takes a queued run by a conditional
//! update (only one statement can match), holds it with a lease it renews while it works, and writes its files
//! to the files folder (the data dir, or the HA form's shared folder, so every instance can serve them). A run
//! whose holder died (its lease ran out) is taken over by another instance; a failed attempt is retried with a
//! doubling wait up to `reports.max_attempts`. Cancelling marks the row; the worker sees it at the next section
//! and stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use app::reports::{ReportRun, RunStatus};

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run: ReportRun,
    pub requested_by: Option<i64>,
}

/// A new run.
pub struct NewRun {
    pub report_id: i64,
    pub requested_by: Option<i64>,
    pub requester: String,
    pub scheduled_for: Option<i64>,
    pub from: i64,
    pub to: i64,
    pub now: i64,
}

#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts a queued run; the id when this call made it. A scheduled run is not made when one exists for its
    /// report and due time (another instance's insert counted); one asked for has no due time, so it always is.
    async fn insert(&self, run: &NewRun) -> Result<Option<i64>, ApiError>;
    /// The latest due time any run of the report was made for.
    async fn last_due(&self, report_id: i64) -> Result<Option<i64>, ApiError>;
    async fn get(&self, id: i64) -> Result<Option<RunRow>, ApiError>;
    /// The report's latest runs, newest first.
    async fn list(&self, report_id: i64, limit: i64) -> Result<Vec<RunRow>, ApiError>;
    /// Takes the oldest queued run whose wait is over, or a running one whose holder's lease ended, for `holder`.
    async fn claim(&self, holder: &str, now: i64, until: i64) -> Result<Option<RunRow>, ApiError>;
    /// Extends `holder`'s lease on the run and records its progress; false when the run is no longer the
    /// holder's to work on (cancelled, or taken over).
    async fn renew(&self, id: i64, holder: &str, until: i64, progress: u8, message: &str) -> Result<bool, ApiError>;
    /// Ends `holder`'s work on the run: done, failed, or queued again after `not_before`. False when the run was
    /// no longer the holder's (cancelled meanwhile, or taken over).
    async fn finish(&self, id: i64, holder: &str, end: RunEnd) -> Result<bool, ApiError>;
    /// Cancels a run that is not over yet; whether it was.
    async fn cancel(&self, id: i64, now: i64) -> Result<bool, ApiError>;
    /// Deletes runs that finished before `before`, returning their ids (their folders go too).
    async fn delete_finished_before(&self, before: i64) -> Result<Vec<i64>, ApiError>;
}

/// How an attempt ended.
pub enum RunEnd {
    Done { formats: Vec<String>, at: i64 },
    Failed { message: String, at: i64 },
    Retry { message: String, not_before: i64 },
}

impl Database {
    pub fn run_store(&self) -> Arc<dyn RunStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

const COLUMNS: &str = "id, report_id, requested_by, requester, scheduled_for, range_from, range_to, status, progress, \
                       message, attempts, created_at, finished_at, formats FROM report_runs";

macro_rules! impl_run_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn run_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RunRow, ApiError> {
                use sqlx::Row;
                let status: String = row.try_get("status")?;
                let formats: String = row.try_get("formats")?;
                let progress: i64 = row.try_get::<i64, _>("progress")?;
                let attempts: i64 = row.try_get::<i64, _>("attempts")?;
                Ok(RunRow {
                    requested_by: row.try_get("requested_by")?,
                    run: ReportRun {
                        id: row.try_get("id")?,
                        report_id: row.try_get("report_id")?,
                        requester: row.try_get("requester")?,
                        scheduled_for: row.try_get("scheduled_for")?,
                        from: row.try_get("range_from")?,
                        to: row.try_get("range_to")?,
                        status: RunStatus::parse(&status).ok_or_else(|| {
                            ApiError::Internal(anyhow::anyhow!("a report run has an unknown status {status:?}"))
                        })?,
                        progress: progress.clamp(0, 100) as u8,
                        message: row.try_get("message")?,
                        attempts: attempts.max(0) as u32,
                        created_at: row.try_get("created_at")?,
                        finished_at: row.try_get("finished_at")?,
                        formats: formats
                            .split(',')
                            .filter(|f| !f.is_empty())
                            .map(String::from)
                            .collect(),
                    },
                })
            }
        }

        #[async_trait::async_trait]
        impl RunStore for $store {
            async fn insert(&self, run: &NewRun) -> Result<Option<i64>, ApiError> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO report_runs (report_id, requested_by, requester, scheduled_for, range_from,
                         range_to, status, not_before, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)
                     ON CONFLICT (report_id, scheduled_for) DO NOTHING RETURNING id",
                )
                .bind(run.report_id)
                .bind(run.requested_by)
                .bind(&run.requester)
                .bind(run.scheduled_for)
                .bind(run.from)
                .bind(run.to)
                .bind(run.now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn last_due(&self, report_id: i64) -> Result<Option<i64>, ApiError> {
                Ok(
                    sqlx::query_scalar("SELECT MAX(scheduled_for) FROM report_runs WHERE report_id = $1")
                        .bind(report_id)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn get(&self, id: i64) -> Result<Option<RunRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::run_from_row).transpose()
            }

            async fn list(&self, report_id: i64, limit: i64) -> Result<Vec<RunRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE report_id = $1 ORDER BY id DESC LIMIT $2");
                let rows = sqlx::query(&sql)
                    .bind(report_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::run_from_row).collect()
            }

            async fn claim(&self, holder: &str, now: i64, until: i64) -> Result<Option<RunRow>, ApiError> {
                let candidates: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM report_runs
                     WHERE (status = 'queued' AND not_before <= $1) OR (status = 'running' AND lease_until < $1)
                     ORDER BY id LIMIT 5",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                for id in candidates {
                    // The guard repeats the condition: of two instances racing for the row, one update matches.
                    let taken = sqlx::query(
                        "UPDATE report_runs SET status = 'running', holder = $1, lease_until = $2,
                             attempts = attempts + 1, progress = 0, message = NULL
                         WHERE id = $3
                           AND ((status = 'queued' AND not_before <= $4) OR (status = 'running' AND lease_until < $4))",
                    )
                    .bind(holder)
                    .bind(until)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if taken == 1 {
                        return self.get(id).await;
                    }
                }
                Ok(None)
            }

            async fn renew(
                &self,
                id: i64,
                holder: &str,
                until: i64,
                progress: u8,
                message: &str,
            ) -> Result<bool, ApiError> {
                let renewed = sqlx::query(
                    "UPDATE report_runs SET lease_until = $1, progress = $2, message = $3
                     WHERE id = $4 AND holder = $5 AND status = 'running'",
                )
                .bind(until)
                .bind(i64::from(progress))
                .bind(message)
                .bind(id)
                .bind(holder)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(renewed == 1)
            }

            async fn finish(&self, id: i64, holder: &str, end: RunEnd) -> Result<bool, ApiError> {
                let query = match &end {
                    RunEnd::Done { formats, at } => sqlx::query(
                        "UPDATE report_runs SET status = 'done', progress = 100, message = NULL, formats = $1,
                             finished_at = $2, holder = NULL, lease_until = NULL
                         WHERE id = $3 AND holder = $4 AND status = 'running'",
                    )
                    .bind(formats.join(","))
                    .bind(*at),
                    RunEnd::Failed { message, at } => sqlx::query(
                        "UPDATE report_runs SET status = 'failed', message = $1, finished_at = $2, holder = NULL,
                             lease_until = NULL
                         WHERE id = $3 AND holder = $4 AND status = 'running'",
                    )
                    .bind(message)
                    .bind(*at),
                    RunEnd::Retry { message, not_before } => sqlx::query(
                        "UPDATE report_runs SET status = 'queued', message = $1, not_before = $2, holder = NULL,
                             lease_until = NULL
                         WHERE id = $3 AND holder = $4 AND status = 'running'",
                    )
                    .bind(message)
                    .bind(*not_before),
                };
                let ended = query.bind(id).bind(holder).execute(&self.pool).await?.rows_affected();
                Ok(ended == 1)
            }

            async fn cancel(&self, id: i64, now: i64) -> Result<bool, ApiError> {
                let cancelled = sqlx::query(
                    "UPDATE report_runs SET status = 'cancelled', finished_at = $1, message = 'cancelled',
                         holder = NULL, lease_until = NULL
                     WHERE id = $2 AND status IN ('queued', 'running')",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(cancelled == 1)
            }

            async fn delete_finished_before(&self, before: i64) -> Result<Vec<i64>, ApiError> {
                Ok(sqlx::query_scalar(
                    "DELETE FROM report_runs WHERE finished_at IS NOT NULL AND finished_at < $1 RETURNING id",
                )
                .bind(before)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

impl_run_store!(SqliteMetadata, sqlx::Sqlite);
impl_run_store!(PostgresMetadata, sqlx::Postgres);

/// Where runs keep their files: a folder per run.
#[derive(Debug, Clone)]
pub struct RunFiles {
    root: PathBuf,
}

impl RunFiles {
    pub fn new(root: PathBuf) -> Self {
        RunFiles { root }
    }

    pub fn folder(&self, run: i64) -> PathBuf {
        self.root.join(run.to_string())
    }

    /// The run's file of `format`, named after the report.
    pub fn file(&self, run: i64, stem: &str, format: &str) -> PathBuf {
        self.folder(run).join(format!("{stem}.{format}"))
    }

    pub fn remove(&self, run: i64) {
        let folder = self.folder(run);
        if let Err(err) = std::fs::remove_dir_all(&folder) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(folder = %folder.display(), error = %err, "A report run's files could not be removed.");
            }
        }
    }
}

/// The wait before attempt `attempts + 1`: `retry` doubling with each failure, at most an hour.
pub fn backoff(retry: Duration, attempts: u32) -> Duration {
    retry
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_an_hour() {
        let retry = Duration::from_secs(30);
        assert_eq!(backoff(retry, 1), Duration::from_secs(30));
        assert_eq!(backoff(retry, 2), Duration::from_secs(60));
        assert_eq!(backoff(retry, 3), Duration::from_secs(120));
        assert_eq!(backoff(retry, 20), Duration::from_secs(3600));
    }
}

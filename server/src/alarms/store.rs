//! Storage of alarm points, occurrences, comments and asset rules, written once for both metadata backends (the
//! webhook outbox is in `webhook_store`).

use std::sync::Arc;

use app::alarms::{AlarmComment, AssetRule, Severity, StateFilter};

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

pub use super::webhook_store::*;

/// An alarm point's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub asset_id: i64,
    pub attribute: String,
    pub rule: String,
    pub condition: String,
    pub since_ms: Option<i64>,
    pub value: Option<f64>,
    pub occurrence_id: Option<i64>,
    pub shelved_until: Option<i64>,
    pub shelved_by: Option<String>,
    pub out_of_service: bool,
    /// The newest sample the point evaluated (its time and value): whoever evaluates the point next replays the
    /// readings after it.
    pub last_ts: Option<i64>,
    pub last_value: Option<f64>,
}

/// An occurrence about to be opened.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOccurrence {
    pub asset_id: i64,
    pub attribute: String,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub unit: Option<String>,
    pub started_at: i64,
    pub start_value: Option<f64>,
    pub renotify_ms: Option<i64>,
}

/// An occurrence with its point's shelving.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    pub id: i64,
    pub asset_id: i64,
    pub attribute: String,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub unit: Option<String>,
    pub active: bool,
    pub acknowledged: bool,
    pub started_at: i64,
    pub start_value: Option<f64>,
    pub ended_at: Option<i64>,
    pub end_value: Option<f64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub shelved_until: Option<i64>,
    pub out_of_service: bool,
}

/// What a list asks the database for; grants and subtrees are applied by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFilter {
    pub state: StateFilter,
    pub severities: Vec<Severity>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub now: i64,
    pub cap: i64,
}

#[async_trait::async_trait]
pub trait AlarmStore: WebhookStore + Send + Sync + 'static {
    async fn asset_rules(&self, asset_id: i64) -> Result<Vec<AssetRule>, ApiError>;
    async fn set_asset_rules(&self, asset_id: i64, rules: &[AssetRule], now_ms: i64) -> Result<(), ApiError>;
    /// The own rules of these assets (of every asset with some: none), by asset (the search index).
    async fn rules_of_assets(&self, ids: Option<&[i64]>) -> Result<Vec<(i64, Vec<AssetRule>)>, ApiError>;

    async fn points(&self) -> Result<Vec<PointRow>, ApiError>;
    /// Writes the point's condition and open occurrence (not its shelving).
    async fn save_condition(&self, point: &PointRow, now_ms: i64) -> Result<(), ApiError>;
    /// Writes the point's shelving and service state (not its condition).
    async fn save_suppression(&self, point: &PointRow, now_ms: i64) -> Result<(), ApiError>;

    /// Opens an occurrence and records it on its point, in one transaction.
    async fn open_occurrence(&self, occurrence: &NewOccurrence, point: &PointRow, now_ms: i64)
        -> Result<i64, ApiError>;
    /// Ends an occurrence and records the point's condition, in one transaction.
    async fn return_occurrence(
        &self,
        id: i64,
        at: i64,
        value: Option<f64>,
        point: &PointRow,
        now_ms: i64,
    ) -> Result<(), ApiError>;
    /// Acknowledges an occurrence; false when it already was.
    async fn acknowledge(&self, id: i64, at: i64, by: &str) -> Result<bool, ApiError>;
    async fn occurrence(&self, id: i64) -> Result<Option<AlarmRow>, ApiError>;
    async fn list(&self, filter: &ListFilter) -> Result<Vec<AlarmRow>, ApiError>;
    /// Occurrences of one attribute's rules that overlap `[from, to)`, oldest first, at most `cap` (trend markers).
    async fn occurrences_of(
        &self,
        asset_id: i64,
        attribute: &str,
        from: i64,
        to: i64,
        cap: i64,
    ) -> Result<Vec<AlarmRow>, ApiError>;
    /// Active or unacknowledged occurrences: asset, severity, active, acknowledged.
    async fn open_summary(&self) -> Result<Vec<(i64, Severity, bool, bool)>, ApiError>;
    /// Unacknowledged occurrences whose re-notification is due.
    async fn due_reminders(&self, now_ms: i64) -> Result<Vec<AlarmRow>, ApiError>;
    /// Claims the reminder of an occurrence that is due at `now_ms` (marking it notified then): true for exactly
    /// one caller, however many instances found it due.
    async fn claim_reminder(&self, id: i64, now_ms: i64) -> Result<bool, ApiError>;

    async fn add_comment(&self, alarm_id: i64, author: &str, at: i64, text: &str) -> Result<i64, ApiError>;
    async fn comments(&self, alarm_id: i64) -> Result<Vec<AlarmComment>, ApiError>;
}

impl Database {
    pub fn alarm_store(&self) -> Arc<dyn AlarmStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

pub(super) fn severity(text: &str) -> Result<Severity, ApiError> {
    Severity::parse(text).map_err(|_| ApiError::Internal(anyhow::anyhow!("a stored severity is invalid: {text}")))
}

const ALARM_COLUMNS: &str = "a.id, a.asset_id, a.attribute, a.rule, a.severity, a.message, a.unit, a.active, \
     a.acknowledged, a.started_at, a.start_value, a.ended_at, a.end_value, a.acknowledged_at, a.acknowledged_by, \
     p.shelved_until, COALESCE(p.out_of_service, FALSE) AS out_of_service \
     FROM alarms a LEFT JOIN alarm_points p \
     ON p.asset_id = a.asset_id AND p.attribute = a.attribute AND p.rule = a.rule";

const SAVE_CONDITION: &str = "INSERT INTO alarm_points (asset_id, attribute, rule, condition, since_ms, value,
         occurrence_id, out_of_service, updated_at, last_ts, last_value)
     VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $9, $10)
     ON CONFLICT (asset_id, attribute, rule) DO UPDATE SET condition = excluded.condition,
         since_ms = excluded.since_ms, value = excluded.value,
         occurrence_id = excluded.occurrence_id, updated_at = excluded.updated_at,
         last_ts = excluded.last_ts, last_value = excluded.last_value";

macro_rules! impl_alarm_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn save_condition_query<'q>(
                p: &'q PointRow,
                now_ms: i64,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                sqlx::query(SAVE_CONDITION)
                    .bind(p.asset_id)
                    .bind(&p.attribute)
                    .bind(&p.rule)
                    .bind(&p.condition)
                    .bind(p.since_ms)
                    .bind(p.value)
                    .bind(p.occurrence_id)
                    .bind(now_ms)
                    .bind(p.last_ts)
                    .bind(p.last_value)
            }

            fn alarm_from_row(row: &<$db as sqlx::Database>::Row) -> Result<AlarmRow, ApiError> {
                use sqlx::Row;
                Ok(AlarmRow {
                    id: row.try_get("id")?,
                    asset_id: row.try_get("asset_id")?,
                    attribute: row.try_get("attribute")?,
                    rule: row.try_get("rule")?,
                    severity: severity(row.try_get("severity")?)?,
                    message: row.try_get("message")?,
                    unit: row.try_get("unit")?,
                    active: row.try_get("active")?,
                    acknowledged: row.try_get("acknowledged")?,
                    started_at: row.try_get("started_at")?,
                    start_value: row.try_get("start_value")?,
                    ended_at: row.try_get("ended_at")?,
                    end_value: row.try_get("end_value")?,
                    acknowledged_at: row.try_get("acknowledged_at")?,
                    acknowledged_by: row.try_get("acknowledged_by")?,
                    shelved_until: row.try_get("shelved_until")?,
                    out_of_service: row.try_get("out_of_service")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl AlarmStore for $store {
            async fn asset_rules(&self, asset_id: i64) -> Result<Vec<AssetRule>, ApiError> {
                let text: Option<String> =
                    sqlx::query_scalar("SELECT rules FROM asset_alarm_rules WHERE asset_id = $1")
                        .bind(asset_id)
                        .fetch_optional(&self.pool)
                        .await?;
                match text {
                    None => Ok(Vec::new()),
                    Some(text) => serde_json::from_str(&text)
                        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored asset rules are invalid: {e}"))),
                }
            }

            async fn rules_of_assets(&self, ids: Option<&[i64]>) -> Result<Vec<(i64, Vec<AssetRule>)>, ApiError> {
                let mut rows: Vec<(i64, String)> = Vec::new();
                match ids {
                    None => {
                        rows = sqlx::query_as("SELECT asset_id, rules FROM asset_alarm_rules")
                            .fetch_all(&self.pool)
                            .await?;
                    }
                    Some(ids) => {
                        for chunk in ids.chunks(crate::metadata::ID_LIST_CHUNK) {
                            let sql = format!(
                                "SELECT asset_id, rules FROM asset_alarm_rules WHERE asset_id IN ({})",
                                crate::metadata::id_list(chunk)
                            );
                            rows.extend(sqlx::query_as::<_, (i64, String)>(&sql).fetch_all(&self.pool).await?);
                        }
                    }
                }
                rows.into_iter()
                    .map(|(asset, text)| {
                        let rules = serde_json::from_str(&text)
                            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored asset rules are invalid: {e}")))?;
                        Ok((asset, rules))
                    })
                    .collect()
            }

            async fn set_asset_rules(&self, asset_id: i64, rules: &[AssetRule], now_ms: i64) -> Result<(), ApiError> {
                let text = serde_json::to_string(rules).map_err(anyhow::Error::from)?;
                sqlx::query(
                    "INSERT INTO asset_alarm_rules (asset_id, rules, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (asset_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
                )
                .bind(asset_id)
                .bind(text)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn points(&self) -> Result<Vec<PointRow>, ApiError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT asset_id, attribute, rule, condition, since_ms, value, occurrence_id, shelved_until,
                            shelved_by, out_of_service, last_ts, last_value FROM alarm_points",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(PointRow {
                            asset_id: row.try_get("asset_id")?,
                            attribute: row.try_get("attribute")?,
                            rule: row.try_get("rule")?,
                            condition: row.try_get("condition")?,
                            since_ms: row.try_get("since_ms")?,
                            value: row.try_get("value")?,
                            occurrence_id: row.try_get("occurrence_id")?,
                            shelved_until: row.try_get("shelved_until")?,
                            shelved_by: row.try_get("shelved_by")?,
                            out_of_service: row.try_get("out_of_service")?,
                            last_ts: row.try_get("last_ts")?,
                            last_value: row.try_get("last_value")?,
                        })
                    })
                    .collect()
            }

            async fn save_condition(&self, p: &PointRow, now_ms: i64) -> Result<(), ApiError> {
                Self::save_condition_query(p, now_ms).execute(&self.pool).await?;
                Ok(())
            }

            async fn save_suppression(&self, p: &PointRow, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query(
                    "INSERT INTO alarm_points (asset_id, attribute, rule, condition, shelved_until, shelved_by,
                                               out_of_service, updated_at)
                     VALUES ($1, $2, $3, 'normal', $4, $5, $6, $7)
                     ON CONFLICT (asset_id, attribute, rule) DO UPDATE SET shelved_until = excluded.shelved_until,
                         shelved_by = excluded.shelved_by, out_of_service = excluded.out_of_service,
                         updated_at = excluded.updated_at",
                )
                .bind(p.asset_id)
                .bind(&p.attribute)
                .bind(&p.rule)
                .bind(p.shelved_until)
                .bind(&p.shelved_by)
                .bind(p.out_of_service)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn open_occurrence(&self, o: &NewOccurrence, point: &PointRow, now_ms: i64) -> Result<i64, ApiError> {
                let mut tx = self.pool.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO alarms (asset_id, attribute, rule, severity, message, unit, active, acknowledged,
                                         started_at, start_value, renotify_ms, notified_at)
                     VALUES ($1, $2, $3, $4, $5, $6, TRUE, FALSE, $7, $8, $9, $7) RETURNING id",
                )
                .bind(o.asset_id)
                .bind(&o.attribute)
                .bind(&o.rule)
                .bind(o.severity.as_str())
                .bind(&o.message)
                .bind(&o.unit)
                .bind(o.started_at)
                .bind(o.start_value)
                .bind(o.renotify_ms)
                .fetch_one(&mut *tx)
                .await?;
                let point = PointRow {
                    occurrence_id: Some(id),
                    ..point.clone()
                };
                Self::save_condition_query(&point, now_ms).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn return_occurrence(
                &self,
                id: i64,
                at: i64,
                value: Option<f64>,
                point: &PointRow,
                now_ms: i64,
            ) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE alarms SET active = FALSE, ended_at = $1, end_value = $2 WHERE id = $3 AND active")
                    .bind(at)
                    .bind(value)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::save_condition_query(point, now_ms).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn acknowledge(&self, id: i64, at: i64, by: &str) -> Result<bool, ApiError> {
                let done = sqlx::query(
                    "UPDATE alarms SET acknowledged = TRUE, acknowledged_at = $1, acknowledged_by = $2
                     WHERE id = $3 AND NOT acknowledged",
                )
                .bind(at)
                .bind(by)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn occurrence(&self, id: i64) -> Result<Option<AlarmRow>, ApiError> {
                let sql = format!("SELECT {ALARM_COLUMNS} WHERE a.id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::alarm_from_row).transpose()
            }

            async fn list(&self, f: &ListFilter) -> Result<Vec<AlarmRow>, ApiError> {
                let state = match f.state {
                    StateFilter::Open => "(a.active OR NOT a.acknowledged)",
                    StateFilter::Active => "a.active",
                    StateFilter::Unacknowledged => "NOT a.acknowledged",
                    StateFilter::Shelved => {
                        "(a.active OR NOT a.acknowledged) AND (p.shelved_until > $3 OR p.out_of_service)"
                    }
                    StateFilter::All => "TRUE",
                };
                let severities = if f.severities.is_empty() {
                    String::new()
                } else {
                    let names: Vec<String> = f.severities.iter().map(|s| format!("'{}'", s.as_str())).collect();
                    format!(" AND a.severity IN ({})", names.join(", "))
                };
                let sql = format!(
                    "SELECT {ALARM_COLUMNS} WHERE {state}{severities}
                     AND a.started_at >= COALESCE($1, a.started_at) AND a.started_at < COALESCE($2, a.started_at + 1)
                     AND $3 = $3
                     ORDER BY a.started_at DESC, a.id DESC LIMIT $4"
                );
                let rows = sqlx::query(&sql)
                    .bind(f.from)
                    .bind(f.to)
                    .bind(f.now)
                    .bind(f.cap)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::alarm_from_row).collect()
            }

            async fn occurrences_of(
                &self,
                asset_id: i64,
                attribute: &str,
                from: i64,
                to: i64,
                cap: i64,
            ) -> Result<Vec<AlarmRow>, ApiError> {
                let sql = format!(
                    "SELECT {ALARM_COLUMNS} WHERE a.asset_id = $1 AND a.attribute = $2
                     AND a.started_at < $4 AND (a.ended_at IS NULL OR a.ended_at >= $3)
                     ORDER BY a.started_at, a.id LIMIT $5"
                );
                let rows = sqlx::query(&sql)
                    .bind(asset_id)
                    .bind(attribute)
                    .bind(from)
                    .bind(to)
                    .bind(cap)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::alarm_from_row).collect()
            }

            async fn open_summary(&self) -> Result<Vec<(i64, Severity, bool, bool)>, ApiError> {
                let rows: Vec<(i64, String, bool, bool)> = sqlx::query_as(
                    "SELECT asset_id, severity, active, acknowledged FROM alarms WHERE active OR NOT acknowledged",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(asset, s, active, acked)| Ok((asset, severity(&s)?, active, acked)))
                    .collect()
            }

            async fn due_reminders(&self, now_ms: i64) -> Result<Vec<AlarmRow>, ApiError> {
                let sql = format!(
                    "SELECT {ALARM_COLUMNS} WHERE a.active AND NOT a.acknowledged AND a.renotify_ms IS NOT NULL
                     AND a.notified_at + a.renotify_ms <= $1 ORDER BY a.id LIMIT 1000"
                );
                let rows = sqlx::query(&sql).bind(now_ms).fetch_all(&self.pool).await?;
                rows.iter().map(Self::alarm_from_row).collect()
            }

            async fn claim_reminder(&self, id: i64, now_ms: i64) -> Result<bool, ApiError> {
                // The due condition is checked again in the update: a second instance's update waits for the
                // first's row lock, then finds the reminder no longer due.
                let claimed = sqlx::query(
                    "UPDATE alarms SET notified_at = $1 WHERE id = $2 AND active AND NOT acknowledged \
                     AND renotify_ms IS NOT NULL AND notified_at + renotify_ms <= $1",
                )
                .bind(now_ms)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(claimed.rows_affected() == 1)
            }

            async fn add_comment(&self, alarm_id: i64, author: &str, at: i64, text: &str) -> Result<i64, ApiError> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO alarm_comments (alarm_id, author, at, text) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(alarm_id)
                .bind(author)
                .bind(at)
                .bind(text)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn comments(&self, alarm_id: i64) -> Result<Vec<AlarmComment>, ApiError> {
                let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
                    "SELECT id, author, at, text FROM alarm_comments WHERE alarm_id = $1 ORDER BY at, id",
                )
                .bind(alarm_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, author, at, text)| AlarmComment { id, author, at, text })
                    .collect())
            }

        }
    };
}

impl_alarm_store!(SqliteMetadata, sqlx::Sqlite);
impl_alarm_store!(PostgresMetadata, sqlx::Postgres);

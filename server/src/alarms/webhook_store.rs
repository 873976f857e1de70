//! The webhook outbox: webhooks, their deliveries and the claims that let exactly one instance attempt each
//! delivery, written once for both metadata backends.

use app::alarms::{AlarmEventKind, Severity};

use super::store::severity;
use crate::error::ApiError;
use crate::metadata::{PostgresMetadata, SqliteMetadata};

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub secret: String,
    pub min_severity: Option<Severity>,
    pub created_at: i64,
}

/// A notification waiting for one webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub id: String,
    pub webhook_id: i64,
    pub alarm_id: i64,
    pub kind: AlarmEventKind,
    pub payload: String,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: String,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub alarm_id: i64,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered { at: i64 },
    Retry { at: i64, error: String },
    GaveUp { error: String },
}

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn webhooks(&self) -> Result<Vec<WebhookRow>, ApiError>;
    async fn insert_webhook(&self, webhook: &WebhookRow) -> Result<i64, ApiError>;
    async fn delete_webhook(&self, id: i64) -> Result<bool, ApiError>;
    async fn enqueue(&self, deliveries: &[NewDelivery], now_ms: i64) -> Result<(), ApiError>;
    /// Claims up to `limit` due deliveries until `lease_until`, so that no other worker attempts them meanwhile.
    async fn claim_due(&self, now_ms: i64, lease_until: i64, limit: i64) -> Result<Vec<DueDelivery>, ApiError>;
    async fn finish(&self, webhook_id: i64, id: &str, attempt: Attempt) -> Result<(), ApiError>;
    async fn deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<DeliveryRow>, ApiError>;
}

macro_rules! impl_webhook_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl WebhookStore for $store {
            async fn webhooks(&self) -> Result<Vec<WebhookRow>, ApiError> {
                let rows: Vec<(i64, String, String, String, Option<String>, i64)> =
                    sqlx::query_as("SELECT id, name, url, secret, min_severity, created_at FROM webhooks ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map(|(id, name, url, secret, min, created_at)| {
                        Ok(WebhookRow {
                            id,
                            name,
                            url,
                            secret,
                            min_severity: min.as_deref().map(severity).transpose()?,
                            created_at,
                        })
                    })
                    .collect()
            }

            async fn insert_webhook(&self, w: &WebhookRow) -> Result<i64, ApiError> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO webhooks (name, url, secret, min_severity, created_at) VALUES ($1, $2, $3, $4, $5)
                     RETURNING id",
                )
                .bind(&w.name)
                .bind(&w.url)
                .bind(&w.secret)
                .bind(w.min_severity.map(Severity::as_str))
                .bind(w.created_at)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn delete_webhook(&self, id: i64) -> Result<bool, ApiError> {
                let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn enqueue(&self, deliveries: &[NewDelivery], now_ms: i64) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                for d in deliveries {
                    let kind = serde_json::to_value(d.kind).map_err(anyhow::Error::from)?;
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, webhook_id, alarm_id, kind, payload, next_attempt_at,
                                                         created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(&d.id)
                    .bind(d.webhook_id)
                    .bind(d.alarm_id)
                    .bind(kind.as_str().unwrap_or("raised"))
                    .bind(&d.payload)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_due(&self, now_ms: i64, lease_until: i64, limit: i64) -> Result<Vec<DueDelivery>, ApiError> {
                use sqlx::Row;
                let mut tx = self.pool.begin().await?;
                let keys: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT webhook_id, id FROM webhook_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND COALESCE(locked_until, 0) <= $1
                     ORDER BY next_attempt_at LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut due = Vec::with_capacity(keys.len());
                for (webhook_id, id) in keys {
                    // The guard in the WHERE clause makes a claim race-free across instances: only one wins.
                    let row = sqlx::query(
                        "UPDATE webhook_deliveries SET locked_until = $1
                         WHERE webhook_id = $2 AND id = $3 AND COALESCE(locked_until, 0) <= $4
                         RETURNING kind, payload, attempts",
                    )
                    .bind(lease_until)
                    .bind(webhook_id)
                    .bind(&id)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else { continue };
                    let (url, secret): (String, String) =
                        sqlx::query_as("SELECT url, secret FROM webhooks WHERE id = $1")
                            .bind(webhook_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    due.push(DueDelivery {
                        id,
                        webhook_id,
                        url,
                        secret,
                        kind: row.try_get("kind")?,
                        payload: row.try_get("payload")?,
                        attempts: row.try_get("attempts")?,
                    });
                }
                tx.commit().await?;
                Ok(due)
            }

            async fn finish(&self, webhook_id: i64, id: &str, attempt: Attempt) -> Result<(), ApiError> {
                let (status, next, error, delivered) = match attempt {
                    Attempt::Delivered { at } => ("delivered", None, None, Some(at)),
                    Attempt::Retry { at, error } => ("pending", Some(at), Some(error), None),
                    Attempt::GaveUp { error } => ("failed", None, Some(error), None),
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1,
                         next_attempt_at = COALESCE($2, next_attempt_at), last_error = COALESCE($3, last_error),
                         delivered_at = $4, locked_until = NULL
                     WHERE webhook_id = $5 AND id = $6",
                )
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(delivered)
                .bind(webhook_id)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<DeliveryRow>, ApiError> {
                let rows: Vec<(String, i64, String, String, i64, Option<String>, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT id, alarm_id, kind, status, attempts, last_error, created_at, delivered_at
                     FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id LIMIT $2",
                )
                .bind(webhook_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(id, alarm_id, kind, status, attempts, last_error, created_at, delivered_at)| DeliveryRow {
                            id,
                            alarm_id,
                            kind,
                            status,
                            attempts,
                            last_error,
                            created_at,
                            delivered_at,
                        },
                    )
                    .collect())
            }
        }
    };
}

impl_webhook_store!(SqliteMetadata);
impl_webhook_store!(PostgresMetadata);

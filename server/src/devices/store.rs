//! Storage of devices and their tokens, written once for both metadata backends.

use std::{collections::BTreeMap, sync::Arc};

use app::error::{AppError, ErrorKind};

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub asset_id: i64,
    pub description: String,
    pub field_map: BTreeMap<String, String>,
    pub last_seen_at: Option<i64>,
    pub active_tokens: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub devices: Vec<String>,
}

#[async_trait::async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    async fn list_devices(&self) -> Result<Vec<DeviceRow>, ApiError>;
    async fn devices_of_asset(&self, asset_id: i64) -> Result<Vec<DeviceRow>, ApiError>;
    async fn device_by_id(&self, id: i64) -> Result<Option<DeviceRow>, ApiError>;
    async fn device_by_name(&self, name: &str) -> Result<Option<DeviceRow>, ApiError>;
    async fn insert_device(&self, device: &DeviceRow, now_ms: i64) -> Result<i64, ApiError>;
    async fn update_device(&self, device: &DeviceRow, now_ms: i64) -> Result<(), ApiError>;
    async fn delete_device(&self, id: i64) -> Result<(), ApiError>;
    async fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        device_ids: &[i64],
        now_ms: i64,
    ) -> Result<i64, ApiError>;
    async fn tokens_of_device(&self, device_id: i64) -> Result<Vec<TokenRow>, ApiError>;
    async fn token_by_id(&self, id: i64) -> Result<Option<TokenRow>, ApiError>;
    async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError>;
    /// The token with this hash, if not revoked, and the devices it may write for.
    async fn authenticate(&self, hash: &str) -> Result<Option<(i64, Vec<DeviceRow>)>, ApiError>;
    /// Records when devices were last seen and tokens last used.
    async fn touch(&self, devices: &[(i64, i64)], tokens: &[(i64, i64)]) -> Result<(), ApiError>;
}

impl Database {
    pub fn device_store(&self) -> Arc<dyn DeviceStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

fn field_map(text: &str) -> Result<BTreeMap<String, String>, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored field map is invalid: {e}")))
}

fn conflict_on_duplicate(err: sqlx::Error, name: &str) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AppError::new(ErrorKind::Conflict, format!("a device named {name:?} already exists")).into()
        }
        _ => err.into(),
    }
}

const DEVICE_COLUMNS: &str = "d.id, d.name, d.asset_id, d.description, d.field_map, d.last_seen_at, \
     (SELECT COUNT(*) FROM device_token_devices l JOIN device_tokens t ON t.id = l.token_id \
      WHERE l.device_id = d.id AND t.revoked_at IS NULL) AS active_tokens";

macro_rules! impl_device_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn device_from_row(row: &<$db as sqlx::Database>::Row) -> Result<DeviceRow, ApiError> {
                use sqlx::Row;
                Ok(DeviceRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    asset_id: row.try_get("asset_id")?,
                    description: row.try_get("description")?,
                    field_map: field_map(row.try_get("field_map")?)?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    active_tokens: row.try_get("active_tokens")?,
                })
            }

            async fn token_devices(&self, token_id: i64) -> Result<Vec<String>, ApiError> {
                Ok(sqlx::query_scalar(
                    "SELECT d.name FROM device_token_devices l JOIN devices d ON d.id = l.device_id
                     WHERE l.token_id = $1 ORDER BY d.name",
                )
                .bind(token_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn token_rows(&self, rows: Vec<(i64, String, String, i64, Option<i64>, Option<i64>)>) -> Result<Vec<TokenRow>, ApiError> {
                let mut out = Vec::with_capacity(rows.len());
                for (id, name, prefix, created_at, last_used_at, revoked_at) in rows {
                    out.push(TokenRow {
                        id,
                        name,
                        prefix,
                        created_at,
                        last_used_at,
                        revoked_at,
                        devices: self.token_devices(id).await?,
                    });
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl DeviceStore for $store {
            async fn list_devices(&self) -> Result<Vec<DeviceRow>, ApiError> {
                let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d ORDER BY d.name");
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(Self::device_from_row).collect()
            }

            async fn devices_of_asset(&self, asset_id: i64) -> Result<Vec<DeviceRow>, ApiError> {
                let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.asset_id = $1 ORDER BY d.name");
                let rows = sqlx::query(&sql).bind(asset_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::device_from_row).collect()
            }

            async fn device_by_id(&self, id: i64) -> Result<Option<DeviceRow>, ApiError> {
                let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::device_from_row).transpose()
            }

            async fn device_by_name(&self, name: &str) -> Result<Option<DeviceRow>, ApiError> {
                let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.name = $1");
                let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::device_from_row).transpose()
            }

            async fn insert_device(&self, d: &DeviceRow, now_ms: i64) -> Result<i64, ApiError> {
                let map = serde_json::to_string(&d.field_map).map_err(anyhow::Error::from)?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO devices (name, asset_id, description, field_map, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(&d.name)
                .bind(d.asset_id)
                .bind(&d.description)
                .bind(map)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| conflict_on_duplicate(e, &d.name))?;
                Ok(id)
            }

            async fn update_device(&self, d: &DeviceRow, now_ms: i64) -> Result<(), ApiError> {
                let map = serde_json::to_string(&d.field_map).map_err(anyhow::Error::from)?;
                sqlx::query(
                    "UPDATE devices SET name = $1, asset_id = $2, description = $3, field_map = $4, updated_at = $5
                     WHERE id = $6",
                )
                .bind(&d.name)
                .bind(d.asset_id)
                .bind(&d.description)
                .bind(map)
                .bind(now_ms)
                .bind(d.id)
                .execute(&self.pool)
                .await
                .map_err(|e| conflict_on_duplicate(e, &d.name))?;
                Ok(())
            }

            async fn delete_device(&self, id: i64) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                // Tokens of this device alone would be left writing for nothing: revoke them with it.
                sqlx::query(
                    "DELETE FROM device_tokens WHERE id IN (
                         SELECT token_id FROM device_token_devices WHERE device_id = $1
                     ) AND id NOT IN (SELECT token_id FROM device_token_devices WHERE device_id <> $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM device_token_devices WHERE device_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM devices WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn insert_token(
                &self,
                name: &str,
                hash: &str,
                prefix: &str,
                device_ids: &[i64],
                now_ms: i64,
            ) -> Result<i64, ApiError> {
                let mut tx = self.pool.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO device_tokens (name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(name)
                .bind(hash)
                .bind(prefix)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                for device_id in device_ids {
                    sqlx::query("INSERT INTO device_token_devices (token_id, device_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(id)
            }

            async fn tokens_of_device(&self, device_id: i64) -> Result<Vec<TokenRow>, ApiError> {
                let rows = sqlx::query_as(
                    "SELECT t.id, t.name, t.prefix, t.created_at, t.last_used_at, t.revoked_at
                     FROM device_tokens t JOIN device_token_devices l ON l.token_id = t.id
                     WHERE l.device_id = $1 ORDER BY t.id",
                )
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
                self.token_rows(rows).await
            }

            async fn token_by_id(&self, id: i64) -> Result<Option<TokenRow>, ApiError> {
                let rows = sqlx::query_as(
                    "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM device_tokens WHERE id = $1",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(self.token_rows(rows).await?.pop())
            }

            async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("UPDATE device_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now_ms)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn authenticate(&self, hash: &str) -> Result<Option<(i64, Vec<DeviceRow>)>, ApiError> {
                let token: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM device_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(token_id) = token else { return Ok(None) };
                let sql = format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN device_token_devices l ON l.device_id = d.id
                     WHERE l.token_id = $1"
                );
                let rows = sqlx::query(&sql).bind(token_id).fetch_all(&self.pool).await?;
                let devices = rows.iter().map(Self::device_from_row).collect::<Result<_, _>>()?;
                Ok(Some((token_id, devices)))
            }

            async fn touch(&self, devices: &[(i64, i64)], tokens: &[(i64, i64)]) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                for (id, at) in devices {
                    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)")
                        .bind(at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                for (id, at) in tokens {
                    sqlx::query("UPDATE device_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
                        .bind(at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

impl_device_store!(SqliteMetadata, sqlx::Sqlite);
impl_device_store!(PostgresMetadata, sqlx::Postgres);

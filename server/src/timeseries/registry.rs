//! The series registry in the metadata database: which series id holds the readings of which asset attribute.
//! Written once for both metadata backends, like the other stores.

use std::sync::Arc;

use crate::error::ApiError;
use crate::metadata::{now_ms, Database, PostgresMetadata, SqliteMetadata};

use super::SeriesId;

/// One registered series and what retention needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub id: SeriesId,
    pub asset_id: i64,
    pub attribute: String,
    pub template_id: Option<i64>,
}

#[async_trait::async_trait]
pub trait SeriesRegistry: Send + Sync + 'static {
    /// The series of each attribute of an asset that has one.
    async fn series_of_asset(&self, asset_id: i64) -> Result<Vec<(String, SeriesId)>, ApiError>;
    /// The series of one attribute, if it has one.
    async fn find(&self, asset_id: i64, attribute: &str) -> Result<Option<SeriesId>, ApiError>;
    /// The series of one attribute, created if it has none yet.
    async fn ensure(&self, asset_id: i64, attribute: &str) -> Result<SeriesId, ApiError>;
    /// Every series, with its asset's template.
    async fn all(&self) -> Result<Vec<SeriesRow>, ApiError>;
    /// The asset and attribute a series belongs to.
    async fn owner(&self, id: SeriesId) -> Result<Option<(i64, String)>, ApiError>;
}

impl Database {
    pub fn series_registry(&self) -> Arc<dyn SeriesRegistry> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

macro_rules! impl_series_registry {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl SeriesRegistry for $store {
            async fn series_of_asset(&self, asset_id: i64) -> Result<Vec<(String, SeriesId)>, ApiError> {
                Ok(sqlx::query_as("SELECT attribute, id FROM series WHERE asset_id = $1 ORDER BY attribute")
                    .bind(asset_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn find(&self, asset_id: i64, attribute: &str) -> Result<Option<SeriesId>, ApiError> {
                Ok(sqlx::query_scalar("SELECT id FROM series WHERE asset_id = $1 AND attribute = $2")
                    .bind(asset_id)
                    .bind(attribute)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn ensure(&self, asset_id: i64, attribute: &str) -> Result<SeriesId, ApiError> {
                if let Some(id) = self.find(asset_id, attribute).await? {
                    return Ok(id);
                }
                // Two writers may race to create it; the unique index keeps one and both read it back.
                sqlx::query(
                    "INSERT INTO series (asset_id, attribute, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (asset_id, attribute) DO NOTHING",
                )
                .bind(asset_id)
                .bind(attribute)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
                self.find(asset_id, attribute)
                    .await?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a series vanished right after its creation")))
            }

            async fn all(&self) -> Result<Vec<SeriesRow>, ApiError> {
                let rows: Vec<(i64, i64, String, Option<i64>)> = sqlx::query_as(
                    "SELECT s.id, s.asset_id, s.attribute, a.template_id FROM series s JOIN assets a ON a.id = s.asset_id
                     ORDER BY s.id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, asset_id, attribute, template_id)| SeriesRow { id, asset_id, attribute, template_id })
                    .collect())
            }

            async fn owner(&self, id: SeriesId) -> Result<Option<(i64, String)>, ApiError> {
                Ok(sqlx::query_as("SELECT asset_id, attribute FROM series WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}

impl_series_registry!(SqliteMetadata);
impl_series_registry!(PostgresMetadata);

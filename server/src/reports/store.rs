//! The report store: definitions as JSON, one SQL text for SQLite and PostgreSQL.

use std::sync::Arc;

use app::error::{AppError, ErrorKind};
use app::reports::ReportSpec;

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

/// A stored report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub id: i64,
    /// None: made by the command line.
    pub owner_id: Option<i64>,
    pub owner: String,
    pub spec: ReportSpec,
    pub updated_at: i64,
    /// Bumped by every write (optimistic concurrency).
    pub version: i64,
}

#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// Every report, by name.
    async fn list(&self) -> Result<Vec<ReportRow>, ApiError>;
    async fn by_id(&self, id: i64) -> Result<Option<ReportRow>, ApiError>;
    /// Fails with 409 when the name is taken.
    async fn insert(&self, row: &ReportRow) -> Result<i64, ApiError>;
    /// Writes the row; with `expected`, refused (409) unless the stored version is that one. Returns the new
    /// version.
    async fn update(&self, row: &ReportRow, expected: Option<i64>) -> Result<i64, ApiError>;
    async fn delete(&self, id: i64) -> Result<(), ApiError>;
}

impl Database {
    pub fn report_store(&self) -> Arc<dyn ReportStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

pub fn no_report() -> AppError {
    AppError::not_found("there is no such report")
}

fn spec_json(spec: &ReportSpec) -> Result<String, ApiError> {
    serde_json::to_string(spec)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("a report could not be written")))
}

fn name_taken(err: sqlx::Error, name: &str) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AppError::new(ErrorKind::Conflict, format!("a report named {name:?} exists already"))
                .for_field("name")
                .into()
        }
        _ => err.into(),
    }
}

const COLUMNS: &str = "id, owner_id, owner, spec, updated_at, version FROM reports";

macro_rules! impl_report_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn report_from_row(row: &<$db as sqlx::Database>::Row) -> Result<ReportRow, ApiError> {
                use sqlx::Row;
                let spec: String = row.try_get("spec")?;
                Ok(ReportRow {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    owner: row.try_get("owner")?,
                    spec: serde_json::from_str(&spec).map_err(|e| {
                        ApiError::Internal(anyhow::Error::new(e).context("a stored report is unreadable"))
                    })?,
                    updated_at: row.try_get("updated_at")?,
                    version: row.try_get("version")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl ReportStore for $store {
            async fn list(&self) -> Result<Vec<ReportRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} ORDER BY name");
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(Self::report_from_row).collect()
            }

            async fn by_id(&self, id: i64) -> Result<Option<ReportRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::report_from_row).transpose()
            }

            async fn insert(&self, row: &ReportRow) -> Result<i64, ApiError> {
                sqlx::query_scalar(
                    "INSERT INTO reports (name, owner_id, owner, spec, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(&row.spec.name)
                .bind(row.owner_id)
                .bind(&row.owner)
                .bind(spec_json(&row.spec)?)
                .bind(row.updated_at)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| name_taken(e, &row.spec.name))
            }

            async fn update(&self, row: &ReportRow, expected: Option<i64>) -> Result<i64, ApiError> {
                let version: Option<i64> = sqlx::query_scalar(
                    "UPDATE reports SET name = $1, spec = $2, updated_at = $3, version = version + 1
                     WHERE id = $4 AND ($5 IS NULL OR version = $5) RETURNING version",
                )
                .bind(&row.spec.name)
                .bind(spec_json(&row.spec)?)
                .bind(row.updated_at)
                .bind(row.id)
                .bind(expected)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| name_taken(e, &row.spec.name))?;
                if let Some(version) = version {
                    return Ok(version);
                }
                let current: Option<i64> = sqlx::query_scalar("SELECT version FROM reports WHERE id = $1")
                    .bind(row.id)
                    .fetch_optional(&self.pool)
                    .await?;
                Err(match current {
                    Some(current) => AppError::stale("report", current).into(),
                    None => no_report().into(),
                })
            }

            async fn delete(&self, id: i64) -> Result<(), ApiError> {
                sqlx::query("DELETE FROM reports WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_report_store!(SqliteMetadata, sqlx::Sqlite);
impl_report_store!(PostgresMetadata, sqlx::Postgres);

//! Metadata in a SQLite file (WAL mode), the single-instance default.

use std::{path::Path, str::FromStr};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::MetadataStore;
use crate::config::DatabaseConfig;
use crate::error::ApiError;

/// The file name of the metadata database inside the data dir.
pub const FILE_NAME: &str = "gantry.db";

pub struct SqliteMetadata {
    pub(crate) pool: SqlitePool,
}

impl SqliteMetadata {
    /// Opens (creating if needed) `url`, or `gantry.db` in `data_dir` when no URL is given.
    pub async fn open(url: Option<&str>, data_dir: &Path, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let options = match url {
            Some(url) => SqliteConnectOptions::from_str(url).context("database.url is not a valid sqlite: URL")?,
            None => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("could not create the data dir {}", data_dir.display()))?;
                SqliteConnectOptions::new().filename(data_dir.join(FILE_NAME))
            }
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL with NORMAL is durable across process crashes; only a power loss may drop the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(config.acquire_timeout());
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout())
            .connect_with(options)
            .await
            .context("could not open the SQLite metadata database")?;
        Ok(SqliteMetadata { pool })
    }
}

#[async_trait::async_trait]
impl MetadataStore for SqliteMetadata {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await
            .context("could not migrate the SQLite metadata database")
    }

    async fn ping(&self) -> Result<(), ApiError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, ApiError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

//! Metadata in PostgreSQL, the HA form: every instance shares it.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::MetadataStore;
use crate::config::DatabaseConfig;
use crate::error::ApiError;

pub struct PostgresMetadata {
    pub(crate) pool: PgPool,
}

impl PostgresMetadata {
    pub async fn connect(url: &SecretString, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout())
            .connect(url.expose_secret())
            .await
            // The URL may hold a password: the context names the database kind, never the URL.
            .context("could not connect to the PostgreSQL metadata database named by database.url")?;
        Ok(PostgresMetadata { pool })
    }
}

#[async_trait::async_trait]
impl MetadataStore for PostgresMetadata {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
            .context("could not migrate the PostgreSQL metadata database")
    }

    async fn ping(&self) -> Result<(), ApiError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, ApiError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

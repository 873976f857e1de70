//! The metadata store: users, the plant model, rules, alarms and reports live here. SQLite (a file in the data dir)
//! for a single instance, PostgreSQL for the HA form; one trait, picked by configuration at start-up, with the
//! migrations of each backend under `migrations/` applied before the server accepts requests.

mod postgres;
mod sqlite;

use std::{path::Path, sync::Arc};

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::config::{DatabaseConfig, DatabaseKind};
use crate::error::ApiError;

pub use postgres::PostgresMetadata;
pub use sqlite::SqliteMetadata;

/// Metadata storage, behind one object-safe trait so that callers never know which database they use.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies the migrations this binary knows and the database lacks.
    async fn migrate(&self) -> anyhow::Result<()>;
    /// One round trip; used by `/readyz`.
    async fn ping(&self) -> Result<(), ApiError>;
    /// A value from the `settings` table.
    async fn setting(&self, key: &str) -> Result<Option<String>, ApiError>;
    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// The metadata database the configuration picked. Each area asks it for its store (`database.auth_store()`, …),
/// implemented once per backend; this enum is the one place that knows which backend runs.
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<SqliteMetadata>),
    Postgres(Arc<PostgresMetadata>),
}

impl Database {
    pub fn metadata(&self) -> Arc<dyn MetadataStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

/// Opens the metadata database the configuration names (without migrating it).
pub async fn connect(config: &DatabaseConfig, data_dir: &Path) -> anyhow::Result<Database> {
    Ok(match config.kind() {
        DatabaseKind::Sqlite => {
            let url = config.url.as_ref().map(|url| url.expose_secret().to_string());
            Database::Sqlite(Arc::new(SqliteMetadata::open(url.as_deref(), data_dir, config).await?))
        }
        DatabaseKind::Postgres => {
            let url = config.url.as_ref().context("database.url is required for PostgreSQL")?;
            Database::Postgres(Arc::new(PostgresMetadata::connect(url, config).await?))
        }
    })
}

/// Ids written into one statement's `IN (…)` list at most.
pub const ID_LIST_CHUNK: usize = 500;

/// Ids as an SQL list; they are integers, so they are written into the statement rather than bound.
pub fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

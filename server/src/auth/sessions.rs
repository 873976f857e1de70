//! Where sessions live: SQLite beside the metadata (single instance), Redis when `sessions.redis_url` is set (HA),
//! PostgreSQL when the metadata is there and Redis is not. One enum implements tower-sessions' store trait, so the
//! layer's type does not depend on the choice.

use anyhow::Context;
use secrecy::ExposeSecret;
use tower_sessions::{
    cookie::SameSite,
    session::{Id, Record},
    session_store::{self, ExpiredDeletion},
    Expiry, SessionManagerLayer, SessionStore,
};
use tower_sessions_redis_store::{fred::prelude::*, RedisStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::metadata::Database;

pub const COOKIE_NAME: &str = "gantry_session";

#[derive(Debug, Clone)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<Pool>),
}

impl SessionBackend {
    /// Opens the store the configuration picks and prepares it (tables, or the Redis connection).
    pub async fn open(config: &crate::config::Config, database: &Database) -> anyhow::Result<SessionBackend> {
        if let Some(url) = &config.sessions.redis_url {
            let redis_config =
                Config::from_url(url.expose_secret()).context("sessions.redis_url is not a valid Redis URL")?;
            let pool = Builder::from_config(redis_config)
                .build_pool(2)
                .context("could not set up the Redis session store")?;
            pool.init()
                .await
                .context("could not connect to the Redis session store")?;
            return Ok(SessionBackend::Redis(RedisStore::new(pool)));
        }
        Ok(match database {
            Database::Sqlite(db) => {
                let store = SqliteStore::new(db.pool.clone());
                store
                    .migrate()
                    .await
                    .context("could not prepare the SQLite session table")?;
                SessionBackend::Sqlite(store)
            }
            Database::Postgres(db) => {
                let store = PostgresStore::new(db.pool.clone());
                store
                    .migrate()
                    .await
                    .context("could not prepare the PostgreSQL session table")?;
                SessionBackend::Postgres(store)
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            SessionBackend::Sqlite(_) => "sqlite",
            SessionBackend::Postgres(_) => "postgres",
            SessionBackend::Redis(_) => "redis",
        }
    }

    /// Deletes expired sessions now and then (Redis expires them itself).
    pub fn spawn_expiry(&self, tasks: &crate::tasks::Tasks) {
        let period = std::time::Duration::from_secs(600);
        let stopping = tasks.stopping();
        match self.clone() {
            SessionBackend::Sqlite(store) => tasks.supervise("session expiry", move || {
                let (store, stopping) = (store.clone(), stopping.clone());
                async move {
                    let _ = stopping
                        .run_until_cancelled(store.continuously_delete_expired(period))
                        .await;
                }
            }),
            SessionBackend::Postgres(store) => tasks.supervise("session expiry", move || {
                let (store, stopping) = (store.clone(), stopping.clone());
                async move {
                    let _ = stopping
                        .run_until_cancelled(store.continuously_delete_expired(period))
                        .await;
                }
            }),
            SessionBackend::Redis(_) => {}
        }
    }

    pub fn layer(self, config: &crate::config::Config) -> SessionManagerLayer<SessionBackend> {
        let idle = time::Duration::minutes(i64::from(config.sessions.idle_timeout_mins));
        SessionManagerLayer::new(self)
            .with_name(COOKIE_NAME)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.public_url_is_https())
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(idle))
    }
}

#[async_trait::async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.create(record).await,
            SessionBackend::Postgres(store) => store.create(record).await,
            SessionBackend::Redis(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.save(record).await,
            SessionBackend::Postgres(store) => store.save(record).await,
            SessionBackend::Redis(store) => store.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(store) => store.load(id).await,
            SessionBackend::Postgres(store) => store.load(id).await,
            SessionBackend::Redis(store) => store.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.delete(id).await,
            SessionBackend::Postgres(store) => store.delete(id).await,
            SessionBackend::Redis(store) => store.delete(id).await,
        }
    }
}

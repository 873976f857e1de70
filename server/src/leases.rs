//! Claimed work: the one mechanism for work that exactly one instance may do at a time.
//!
//! A lease names a piece of work (`alarm-partition:7`, `retention`) and the instance that holds it until a time.
//! Taking one is a single conditional upsert, so two instances racing for it cannot both win; the holder renews it
//! well before it ends, and when an instance dies its leases end on their own and another takes the work over.
//! Instances also hold a lease each (`instance:<name>`), renewed the same way: the live ones are the unexpired
//! ones, which is how an instance knows its share of partitioned work.
//!
//! Rows (the webhook outbox, reminders) are claimed in their own tables with the same idea: a conditional update
//! that only one instance's statement can match.
//!
//! Lease times come from each instance's clock: instances must keep their clocks in step (NTP), as every
//! lease-based system requires; the margin a holder keeps ([`Lease::valid_until`]) absorbs small differences.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::metadata::{now_ms, Database, PostgresMetadata, SqliteMetadata};

/// How long a lease lasts after it was taken or renewed. Holders renew every second, so an instance that dies
/// hands its work over within this time.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long before its end a holder stops relying on a lease it could not renew.
const MARGIN: Duration = Duration::from_millis(1_500);

/// The prefix of every instance's own lease.
pub const INSTANCE_PREFIX: &str = "instance:";

#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `name` for `holder` until `until_ms` if it is free, ended by `now_ms`, or already `holder`'s.
    async fn acquire(&self, name: &str, holder: &str, now_ms: i64, until_ms: i64) -> Result<bool, ApiError>;
    /// Extends every unexpired lease of `holder` whose name starts with `prefix`; returns the names extended.
    async fn renew(&self, prefix: &str, holder: &str, now_ms: i64, until_ms: i64) -> Result<Vec<String>, ApiError>;
    /// Gives `name` up, if `holder` holds it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), ApiError>;
    /// The unexpired leases whose name starts with `prefix`, as (name, holder).
    async fn held(&self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, ApiError>;
}

impl Database {
    pub fn lease_store(&self) -> Arc<dyn LeaseStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

/// Work one instance of the cluster does per period (a retention pass): whoever claims `name` for the period
/// does it, the others skip that period.
pub struct PeriodicClaim {
    pub store: Arc<dyn LeaseStore>,
    pub name: String,
    pub holder: String,
}

impl PeriodicClaim {
    /// Whether this instance does the work of the period starting now.
    pub async fn claim(&self, period: Duration) -> Result<bool, ApiError> {
        let now = now_ms();
        self.store
            .acquire(&self.name, &self.holder, now, now + period.as_millis() as i64)
            .await
    }
}

/// When a lease taken or renewed by a call that started at `started` stops being safe to act on.
pub fn valid_until(started: Instant) -> Instant {
    started + LEASE - MARGIN
}

/// A lease's end, for a call made now.
pub fn until_ms() -> i64 {
    now_ms() + LEASE.as_millis() as i64
}

/// This instance's name in leases: `cluster.instance_name`, else one made from the host name and the process id
/// (with a random part, so a restarted process is a new instance). On SQLite there is one server process, so it
/// is always `local`: a restart takes its own leases back at once instead of waiting for them to end.
pub fn instance_name(configured: Option<&str>, database: &Database) -> String {
    if let Some(name) = configured.filter(|name| !name.trim().is_empty()) {
        return name.trim().to_string();
    }
    if matches!(database, Database::Sqlite(_)) {
        return "local".into();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "gantry".into());
    format!("{host}-{}-{}", std::process::id(), crate::auth::secrets::random_hex(3))
}

macro_rules! impl_lease_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl LeaseStore for $store {
            async fn acquire(&self, name: &str, holder: &str, now_ms: i64, until_ms: i64) -> Result<bool, ApiError> {
                let taken: Option<String> = sqlx::query_scalar(
                    "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                     WHERE leases.holder = excluded.holder OR leases.until_ms <= $4
                     RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until_ms)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                Ok(taken.is_some())
            }

            async fn renew(
                &self,
                prefix: &str,
                holder: &str,
                now_ms: i64,
                until_ms: i64,
            ) -> Result<Vec<String>, ApiError> {
                Ok(sqlx::query_scalar(
                    "UPDATE leases SET until_ms = $1 WHERE holder = $2 AND name LIKE $3 AND until_ms > $4
                     RETURNING name",
                )
                .bind(until_ms)
                .bind(holder)
                .bind(format!("{prefix}%"))
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn release(&self, name: &str, holder: &str) -> Result<(), ApiError> {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn held(&self, prefix: &str, now_ms: i64) -> Result<Vec<(String, String)>, ApiError> {
                Ok(
                    sqlx::query_as(
                        "SELECT name, holder FROM leases WHERE name LIKE $1 AND until_ms > $2 ORDER BY name",
                    )
                    .bind(format!("{prefix}%"))
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?,
                )
            }
        }
    };
}

impl_lease_store!(SqliteMetadata);
impl_lease_store!(PostgresMetadata);

//! Storage of users, grants, API tokens and the audit log. The SQL is written once (`$N` placeholders, which
//! both SQLite and PostgreSQL accept) and instantiated for each backend by `impl_auth_store!`.

use std::sync::Arc;

use app::auth::{AuditEntry, AuditFilter, Role, TokenView, UserView};
use app::error::{AppError, ErrorKind};

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

/// A user as stored: the view plus what never leaves the server.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub view: UserView,
    pub password_hash: String,
    /// Sessions remember the epoch they were made in; bumping it ends them all.
    pub session_epoch: i64,
}

#[derive(Debug, Clone)]
pub struct NewUserRecord {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub whole_plant: bool,
    pub grants: Vec<i64>,
}

/// The fields of a user that an update may set; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub enabled: Option<bool>,
    pub whole_plant: Option<bool>,
    pub grants: Option<Vec<i64>>,
    pub password_hash: Option<String>,
    /// End every session of this user (password changed, account disabled, role lowered).
    pub end_sessions: bool,
}

#[derive(Debug, Clone)]
pub struct NewTokenRecord {
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub diff: serde_json::Value,
}

#[async_trait::async_trait]
pub trait AuthStore: Send + Sync + 'static {
    async fn count_users(&self) -> Result<i64, ApiError>;
    /// Fails with 409 when the username is taken (case-insensitively).
    async fn insert_user(&self, user: NewUserRecord, now_ms: i64) -> Result<i64, ApiError>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, ApiError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, ApiError>;
    async fn list_users(&self) -> Result<Vec<UserView>, ApiError>;
    async fn update_user(&self, id: i64, update: UserUpdate, now_ms: i64) -> Result<(), ApiError>;
    async fn record_login(&self, id: i64, now_ms: i64) -> Result<(), ApiError>;
    async fn set_time_zone(&self, id: i64, time_zone: Option<&str>, now_ms: i64) -> Result<(), ApiError>;

    async fn insert_token(&self, token: NewTokenRecord, now_ms: i64) -> Result<TokenView, ApiError>;
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenView>, ApiError>;
    async fn token_by_id(&self, id: i64) -> Result<Option<TokenView>, ApiError>;
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenView>, ApiError>;
    async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError>;
    async fn touch_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError>;

    async fn append_audit(&self, entry: NewAuditEntry, now_ms: i64) -> Result<(), ApiError>;
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, ApiError>;
    /// Records a sign-in attempt of `account` from `client` at `now_ms` (forgetting every attempt before
    /// `since_ms`) and returns how many the pair made since `since_ms`, this one included, and when the first was.
    async fn count_login_attempt(
        &self,
        account: &str,
        client: &str,
        now_ms: i64,
        since_ms: i64,
    ) -> Result<(i64, i64), ApiError>;
    /// Forgets the pair's attempts (after a success).
    async fn forget_login_attempts(&self, account: &str, client: &str) -> Result<(), ApiError>;
    /// Records a setup token's hash (every instance that starts while no account exists adds its own).
    async fn add_setup_token(&self, hash: &str, now_ms: i64) -> Result<(), ApiError>;
    /// Whether any setup token is open; with `hash`, whether that one is.
    async fn setup_token_open(&self, hash: Option<&str>) -> Result<bool, ApiError>;
    /// Consumes every setup token at once; true if `hash` was among them (of racing setups, one gets true).
    async fn take_setup_tokens(&self, hash: &str) -> Result<bool, ApiError>;
    /// The newest audit entry's id (0 when there is none): where a follower of the change feed starts.
    async fn latest_audit_id(&self) -> Result<i64, ApiError>;
    /// Up to `limit` audit entries after `after_id`, oldest first, as the change feed delivers them.
    async fn audit_since(&self, after_id: i64, limit: i64) -> Result<Vec<crate::changes::Change>, ApiError>;
}

impl Database {
    pub fn auth_store(&self) -> Arc<dyn AuthStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).map_err(|_| ApiError::Internal(anyhow::anyhow!("stored role {text:?} is unknown")))
}

fn unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, role, enabled, whole_plant, created_at, last_login_at, session_epoch, \
     time_zone";
const TOKEN_COLUMNS: &str = "id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at";

macro_rules! impl_auth_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn user_from_row(row: &<$db as sqlx::Database>::Row, grants: Vec<i64>) -> Result<UserRecord, ApiError> {
                use sqlx::Row;
                Ok(UserRecord {
                    view: UserView {
                        id: row.try_get("id")?,
                        username: row.try_get("username")?,
                        display_name: row.try_get("display_name")?,
                        role: parse_role(row.try_get::<&str, _>("role")?)?,
                        enabled: row.try_get("enabled")?,
                        whole_plant: row.try_get("whole_plant")?,
                        grants,
                        created_at_ms: row.try_get("created_at")?,
                        last_login_at_ms: row.try_get("last_login_at")?,
                        time_zone: row.try_get("time_zone")?,
                    },
                    password_hash: row.try_get("password_hash")?,
                    session_epoch: row.try_get("session_epoch")?,
                })
            }

            fn token_from_row(row: &<$db as sqlx::Database>::Row) -> Result<TokenView, ApiError> {
                use sqlx::Row;
                Ok(TokenView {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    name: row.try_get("name")?,
                    prefix: row.try_get("prefix")?,
                    created_at_ms: row.try_get("created_at")?,
                    expires_at_ms: row.try_get("expires_at")?,
                    last_used_at_ms: row.try_get("last_used_at")?,
                    revoked_at_ms: row.try_get("revoked_at")?,
                })
            }

            async fn grants_of(&self, user_id: i64) -> Result<Vec<i64>, ApiError> {
                Ok(sqlx::query_scalar("SELECT asset_id FROM user_grants WHERE user_id = $1 ORDER BY asset_id")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn insert_grants(
                tx: &mut <$db as sqlx::Database>::Connection,
                user_id: i64,
                grants: &[i64],
            ) -> Result<(), ApiError> {
                for asset_id in grants {
                    sqlx::query("INSERT INTO user_grants (user_id, asset_id) VALUES ($1, $2)")
                        .bind(user_id)
                        .bind(asset_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(())
            }

            async fn with_grants(
                &self,
                row: Option<<$db as sqlx::Database>::Row>,
            ) -> Result<Option<UserRecord>, ApiError> {
                match row {
                    None => Ok(None),
                    Some(row) => {
                        use sqlx::Row;
                        let grants = self.grants_of(row.try_get("id")?).await?;
                        Ok(Some(Self::user_from_row(&row, grants)?))
                    }
                }
            }
        }

        #[async_trait::async_trait]
        impl AuthStore for $store {
            async fn count_users(&self) -> Result<i64, ApiError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
            }

            async fn insert_user(&self, user: NewUserRecord, now_ms: i64) -> Result<i64, ApiError> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query_scalar(
                    "INSERT INTO users (username, display_name, password_hash, role, enabled, created_at, updated_at, \
                     whole_plant) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
                )
                .bind(&user.username)
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(true)
                .bind(now_ms)
                .bind(user.whole_plant)
                .fetch_one(&mut *tx)
                .await;
                let id: i64 = match inserted {
                    Ok(id) => id,
                    Err(err) if unique_violation(&err) => {
                        return Err(AppError::new(
                            ErrorKind::Conflict,
                            format!("the username {:?} is taken", user.username),
                        )
                        .into())
                    }
                    Err(err) => return Err(err.into()),
                };
                Self::insert_grants(&mut tx, id, &user.grants).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, ApiError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                self.with_grants(row).await
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, ApiError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)");
                let row = sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await?;
                self.with_grants(row).await
            }

            async fn list_users(&self) -> Result<Vec<UserView>, ApiError> {
                use sqlx::Row;
                let grant_rows = sqlx::query("SELECT user_id, asset_id FROM user_grants ORDER BY asset_id")
                    .fetch_all(&self.pool)
                    .await?;
                let mut grants: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
                for row in grant_rows {
                    grants.entry(row.try_get("user_id")?).or_default().push(row.try_get("asset_id")?);
                }
                let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY lower(username)");
                sqlx::query(&sql)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let id: i64 = row.try_get("id")?;
                        Ok(Self::user_from_row(row, grants.remove(&id).unwrap_or_default())?.view)
                    })
                    .collect()
            }

            async fn update_user(&self, id: i64, update: UserUpdate, now_ms: i64) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role), \
                     enabled = COALESCE($4, enabled), password_hash = COALESCE($5, password_hash), \
                     session_epoch = session_epoch + $6, updated_at = $7, whole_plant = COALESCE($8, whole_plant) \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(update.display_name)
                .bind(update.role.map(Role::as_str))
                .bind(update.enabled)
                .bind(update.password_hash)
                .bind(i64::from(update.end_sessions))
                .bind(now_ms)
                .bind(update.whole_plant)
                .execute(&mut *tx)
                .await?;
                if let Some(grants) = update.grants {
                    sqlx::query("DELETE FROM user_grants WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
                    Self::insert_grants(&mut tx, id, &grants).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_time_zone(&self, id: i64, time_zone: Option<&str>, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("UPDATE users SET time_zone = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(time_zone)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_login(&self, id: i64, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_token(&self, token: NewTokenRecord, now_ms: i64) -> Result<TokenView, ApiError> {
                let sql = format!(
                    "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(token.user_id)
                    .bind(&token.name)
                    .bind(&token.token_hash)
                    .bind(&token.prefix)
                    .bind(now_ms)
                    .bind(token.expires_at_ms)
                    .fetch_one(&self.pool)
                    .await?;
                Self::token_from_row(&row)
            }

            async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenView>, ApiError> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
                let row = sqlx::query(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            async fn token_by_id(&self, id: i64) -> Result<Option<TokenView>, ApiError> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenView>, ApiError> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id");
                sqlx::query(&sql)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::token_from_row)
                    .collect()
            }

            async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn touch_token(&self, id: i64, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn append_audit(&self, entry: NewAuditEntry, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor_id, actor_name, source, action, target_type, target_id, diff) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(now_ms)
                .bind(entry.actor_id)
                .bind(entry.actor_name)
                .bind(entry.source)
                .bind(entry.action)
                .bind(entry.target_type)
                .bind(entry.target_id)
                .bind(entry.diff.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn count_login_attempt(
                &self,
                account: &str,
                client: &str,
                now_ms: i64,
                since_ms: i64,
            ) -> Result<(i64, i64), ApiError> {
                sqlx::query("DELETE FROM login_attempts WHERE at < $1")
                    .bind(since_ms)
                    .execute(&self.pool)
                    .await?;
                sqlx::query("INSERT INTO login_attempts (account, client, at) VALUES ($1, $2, $3)")
                    .bind(account)
                    .bind(client)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                // Counted after inserting: of attempts racing on several instances, only those that committed
                // among the first N can see a count of N or less.
                let (count, first): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(at) FROM login_attempts WHERE account = $1 AND client = $2 AND at >= $3",
                )
                .bind(account)
                .bind(client)
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok((count, first.unwrap_or(now_ms)))
            }

            async fn forget_login_attempts(&self, account: &str, client: &str) -> Result<(), ApiError> {
                sqlx::query("DELETE FROM login_attempts WHERE account = $1 AND client = $2")
                    .bind(account)
                    .bind(client)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn add_setup_token(&self, hash: &str, now_ms: i64) -> Result<(), ApiError> {
                sqlx::query("INSERT INTO setup_tokens (hash, created_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING")
                    .bind(hash)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn setup_token_open(&self, hash: Option<&str>) -> Result<bool, ApiError> {
                let (count,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM setup_tokens WHERE $1 IS NULL OR hash = $1")
                        .bind(hash)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(count > 0)
            }

            async fn take_setup_tokens(&self, hash: &str) -> Result<bool, ApiError> {
                let taken: Vec<String> = sqlx::query_scalar("DELETE FROM setup_tokens RETURNING hash")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(taken.iter().any(|taken| taken == hash))
            }

            async fn latest_audit_id(&self) -> Result<i64, ApiError> {
                let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM audit_log")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id)
            }

            async fn audit_since(&self, after_id: i64, limit: i64) -> Result<Vec<crate::changes::Change>, ApiError> {
                Ok(sqlx::query_as(
                    "SELECT id, action, target_type, target_id FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                )
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, ApiError> {
                use sqlx::Row;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, at, actor_name, source, action, target_type, target_id, diff FROM audit_log WHERE 1 = 1",
                );
                if let Some(actor) = &filter.actor {
                    query.push(" AND actor_name = ").push_bind(actor.clone());
                }
                if let Some(action) = &filter.action {
                    query.push(" AND action = ").push_bind(action.clone());
                }
                if let Some(since) = filter.since_ms {
                    query.push(" AND at >= ").push_bind(since);
                }
                if let Some(until) = filter.until_ms {
                    query.push(" AND at < ").push_bind(until);
                }
                if let Some(before) = filter.before_id {
                    query.push(" AND id < ").push_bind(before);
                }
                let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, 1000));
                query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                query
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let diff: String = row.try_get("diff")?;
                        Ok(AuditEntry {
                            id: row.try_get("id")?,
                            at_ms: row.try_get("at")?,
                            actor: row.try_get("actor_name")?,
                            source: row.try_get("source")?,
                            action: row.try_get("action")?,
                            target_type: row.try_get("target_type")?,
                            target_id: row.try_get("target_id")?,
                            diff: serde_json::from_str(&diff).map_err(anyhow::Error::from)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

impl_auth_store!(SqliteMetadata, sqlx::Sqlite);
impl_auth_store!(PostgresMetadata, sqlx::Postgres);

//! Dashboards: their store (`DashboardStore`, SQL shared by SQLite and PostgreSQL) and the service that decides who
//! sees and changes what. Everyone who may view sees their own dashboards and the shared ones; a personal dashboard
//! is its owner's to change; shared ones are made and changed by engineers and admins. The model file carries the
//! shared dashboards (`assets/file.rs` reads and writes them through [`DashboardStore`]).

use std::sync::Arc;

use app::{
    auth::{Actor, Permission},
    charts::{DashboardSpec, DashboardView},
    error::{AppError, ErrorKind},
};

use serde_json::json;

use crate::{
    auth::AuditLog,
    error::ApiError,
    metadata::{now_ms, Database, PostgresMetadata, SqliteMetadata},
};

/// A stored dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardRow {
    pub id: i64,
    /// None: made by the command line (a model file).
    pub owner_id: Option<i64>,
    pub owner: String,
    pub spec: DashboardSpec,
    pub updated_at: i64,
    /// Bumped by every write (optimistic concurrency).
    pub version: i64,
}

#[async_trait::async_trait]
pub trait DashboardStore: Send + Sync {
    /// The dashboards of `owner_id` and every shared one, by name.
    async fn visible_to(&self, owner_id: i64) -> Result<Vec<DashboardRow>, ApiError>;
    async fn by_id(&self, id: i64) -> Result<Option<DashboardRow>, ApiError>;
    async fn shared_by_name(&self, name: &str) -> Result<Option<DashboardRow>, ApiError>;
    async fn shared(&self) -> Result<Vec<DashboardRow>, ApiError>;
    /// Every dashboard, shared or not (the search index's build).
    async fn all(&self) -> Result<Vec<DashboardRow>, ApiError>;
    async fn insert(&self, row: &DashboardRow) -> Result<i64, ApiError>;
    /// Writes the row; with `expected`, refused (409) unless the stored version is that one.
    async fn update(&self, row: &DashboardRow, expected: Option<i64>) -> Result<i64, ApiError>;
    async fn delete(&self, id: i64) -> Result<(), ApiError>;
}

impl Database {
    pub fn dashboard_store(&self) -> Arc<dyn DashboardStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

/// The panels as stored: JSON text (an error, never an empty grid, if they could not be written).
fn panels_json(spec: &DashboardSpec) -> Result<String, ApiError> {
    serde_json::to_string(&spec.panels)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("a dashboard's panels could not be written")))
}

const COLUMNS: &str = "id, owner_id, owner, name, shared, panels, updated_at, version FROM dashboards";

macro_rules! impl_dashboard_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn dashboard_from_row(row: &<$db as sqlx::Database>::Row) -> Result<DashboardRow, ApiError> {
                use sqlx::Row;
                let panels: String = row.try_get("panels")?;
                Ok(DashboardRow {
                    id: row.try_get("id")?,
                    owner_id: row.try_get("owner_id")?,
                    owner: row.try_get("owner")?,
                    spec: DashboardSpec {
                        name: row.try_get("name")?,
                        shared: row.try_get("shared")?,
                        panels: serde_json::from_str(&panels).map_err(|e| {
                            ApiError::Internal(anyhow::Error::new(e).context("a stored dashboard is unreadable"))
                        })?,
                    },
                    updated_at: row.try_get("updated_at")?,
                    version: row.try_get("version")?,
                })
            }

            async fn dashboards_where(
                &self,
                condition: &str,
                bind: Option<&str>,
            ) -> Result<Vec<DashboardRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE {condition} ORDER BY name, id");
                let mut query = sqlx::query(&sql);
                if let Some(value) = bind {
                    query = query.bind(value.to_string());
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter().map(Self::dashboard_from_row).collect()
            }
        }

        #[async_trait::async_trait]
        impl DashboardStore for $store {
            async fn visible_to(&self, owner_id: i64) -> Result<Vec<DashboardRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE shared OR owner_id = $1 ORDER BY name, id");
                let rows = sqlx::query(&sql).bind(owner_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::dashboard_from_row).collect()
            }

            async fn by_id(&self, id: i64) -> Result<Option<DashboardRow>, ApiError> {
                let sql = format!("SELECT {COLUMNS} WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::dashboard_from_row).transpose()
            }

            async fn shared_by_name(&self, name: &str) -> Result<Option<DashboardRow>, ApiError> {
                Ok(self
                    .dashboards_where("shared AND name = $1", Some(name))
                    .await?
                    .pop())
            }

            async fn shared(&self) -> Result<Vec<DashboardRow>, ApiError> {
                self.dashboards_where("shared", None).await
            }

            async fn all(&self) -> Result<Vec<DashboardRow>, ApiError> {
                self.dashboards_where("1 = 1", None).await
            }

            async fn insert(&self, row: &DashboardRow) -> Result<i64, ApiError> {
                let panels = panels_json(&row.spec)?;
                let id = sqlx::query_scalar(
                    "INSERT INTO dashboards (name, owner_id, owner, shared, panels, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(&row.spec.name)
                .bind(row.owner_id)
                .bind(&row.owner)
                .bind(row.spec.shared)
                .bind(panels)
                .bind(row.updated_at)
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            async fn update(&self, row: &DashboardRow, expected: Option<i64>) -> Result<i64, ApiError> {
                let panels = panels_json(&row.spec)?;
                let version: Option<i64> = sqlx::query_scalar(
                    "UPDATE dashboards SET name = $1, shared = $2, panels = $3, updated_at = $4, version = version + 1
                     WHERE id = $5 AND ($6 IS NULL OR version = $6) RETURNING version",
                )
                .bind(&row.spec.name)
                .bind(row.spec.shared)
                .bind(panels)
                .bind(row.updated_at)
                .bind(row.id)
                .bind(expected)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(version) = version {
                    return Ok(version);
                }
                let current: Option<i64> = sqlx::query_scalar("SELECT version FROM dashboards WHERE id = $1")
                    .bind(row.id)
                    .fetch_optional(&self.pool)
                    .await?;
                Err(match current {
                    Some(current) => AppError::stale("dashboard", current).into(),
                    None => no_dashboard().into(),
                })
            }

            async fn delete(&self, id: i64) -> Result<(), ApiError> {
                sqlx::query("DELETE FROM dashboards WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_dashboard_store!(SqliteMetadata, sqlx::Sqlite);
impl_dashboard_store!(PostgresMetadata, sqlx::Postgres);

fn no_dashboard() -> AppError {
    AppError::not_found("there is no such dashboard")
}

fn to_app(err: ApiError) -> AppError {
    err.into_app_error()
}

/// The owner id of an actor: none for the command line, which is nobody in particular.
fn owner_id(actor: &Actor) -> Option<i64> {
    (actor.user_id > 0).then_some(actor.user_id)
}

pub struct Dashboards {
    store: Arc<dyn DashboardStore>,
    audit: AuditLog,
}

impl Dashboards {
    pub fn new(store: Arc<dyn DashboardStore>, audit: AuditLog) -> Self {
        Dashboards { store, audit }
    }

    async fn record(&self, actor: &Actor, action: &str, id: i64, diff: serde_json::Value) -> Result<(), AppError> {
        self.audit
            .record(Some(actor), action, "dashboard", Some(id.to_string()), diff)
            .await
    }

    fn can_edit(actor: &Actor, row: &DashboardRow) -> bool {
        if row.spec.shared {
            actor.role.allows(Permission::EditModel)
        } else {
            row.owner_id.is_some() && row.owner_id == owner_id(actor)
        }
    }

    fn view(actor: &Actor, row: DashboardRow) -> DashboardView {
        DashboardView {
            id: row.id,
            can_edit: Self::can_edit(actor, &row),
            owner: row.owner,
            updated_at: row.updated_at,
            version: row.version,
            spec: row.spec,
        }
    }

    /// A dashboard the actor may see: their own or a shared one (others' personal dashboards do not exist for them).
    async fn visible(&self, actor: &Actor, id: i64) -> Result<DashboardRow, AppError> {
        actor.require(Permission::View)?;
        let row = self.store.by_id(id).await.map_err(to_app)?.ok_or_else(no_dashboard)?;
        if row.spec.shared || (row.owner_id.is_some() && row.owner_id == owner_id(actor)) {
            Ok(row)
        } else {
            Err(no_dashboard())
        }
    }

    async fn check(&self, actor: &Actor, spec: &DashboardSpec, id: Option<i64>) -> Result<(), AppError> {
        spec.validate()?;
        if spec.shared {
            actor
                .require(Permission::EditModel)
                .map_err(|_| AppError::new(ErrorKind::Forbidden, "only engineers and admins share dashboards"))?;
            if let Some(other) = self.store.shared_by_name(&spec.name).await.map_err(to_app)? {
                if Some(other.id) != id {
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        format!("a shared dashboard named {:?} exists already", spec.name),
                    ));
                }
            }
        }
        Ok(())
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<DashboardView>, AppError> {
        actor.require(Permission::View)?;
        let rows = self
            .store
            .visible_to(owner_id(actor).unwrap_or(-1))
            .await
            .map_err(to_app)?;
        Ok(rows.into_iter().map(|row| Self::view(actor, row)).collect())
    }

    pub async fn get(&self, actor: &Actor, id: i64) -> Result<DashboardView, AppError> {
        Ok(Self::view(actor, self.visible(actor, id).await?))
    }

    pub async fn create(&self, actor: &Actor, spec: DashboardSpec) -> Result<DashboardView, AppError> {
        actor.require(Permission::View)?;
        self.check(actor, &spec, None).await?;
        let mut row = DashboardRow {
            id: 0,
            owner_id: owner_id(actor),
            owner: actor.username.clone(),
            spec,
            updated_at: now_ms(),
            version: 1,
        };
        row.id = self.store.insert(&row).await.map_err(to_app)?;
        self.record(actor, "dashboard.create", row.id, json!({ "to": row.spec }))
            .await?;
        Ok(Self::view(actor, row))
    }

    /// Replaces a dashboard's spec; with `expected`, refused (409) unless it is still at that version.
    pub async fn update(
        &self,
        actor: &Actor,
        id: i64,
        spec: DashboardSpec,
        expected: Option<i64>,
    ) -> Result<DashboardView, AppError> {
        let mut row = self.visible(actor, id).await?;
        if !Self::can_edit(actor, &row) {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "only engineers and admins change shared dashboards",
            ));
        }
        self.check(actor, &spec, Some(id)).await?;
        let before = std::mem::replace(&mut row.spec, spec);
        row.updated_at = now_ms();
        row.version = self.store.update(&row, expected).await.map_err(to_app)?;
        self.record(actor, "dashboard.update", id, json!({ "from": before, "to": row.spec }))
            .await?;
        Ok(Self::view(actor, row))
    }

    pub async fn delete(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        let row = self.visible(actor, id).await?;
        if !Self::can_edit(actor, &row) {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "only engineers and admins delete shared dashboards",
            ));
        }
        self.store.delete(id).await.map_err(to_app)?;
        self.record(actor, "dashboard.delete", id, json!({ "from": row.spec }))
            .await
    }
}

/// What the model file reads and writes of the dashboards.
#[async_trait::async_trait]
impl crate::assets::SharedDashboards for Dashboards {
    /// The shared dashboards by name, as the model file carries them.
    async fn shared_specs(&self, actor: &Actor) -> Result<Vec<DashboardSpec>, AppError> {
        actor.require(Permission::View)?;
        let rows = self.store.shared().await.map_err(to_app)?;
        Ok(rows.into_iter().map(|row| row.spec).collect())
    }

    /// Checks a model file's dashboards before anything is written: each valid and shared, names unique.
    fn check_file(&self, specs: &[DashboardSpec]) -> Result<(), AppError> {
        let mut names = std::collections::HashSet::new();
        for spec in specs {
            if !spec.shared {
                return Err(AppError::bad_request(format!(
                    "dashboard {:?}: the model file carries shared dashboards only (`shared: true`)",
                    spec.name
                )));
            }
            spec.validate()
                .map_err(|e| AppError::new(e.code, format!("dashboard {:?}: {}", spec.name, e.message)))?;
            if !names.insert(spec.name.as_str()) {
                return Err(AppError::bad_request(format!(
                    "the dashboard {:?} appears twice in the file",
                    spec.name
                )));
            }
        }
        Ok(())
    }

    /// Makes the shared dashboard of the spec's name look like the spec (a model import): the change it made
    /// (or, with `dry_run`, would make), or none when it is the same already.
    async fn import_shared(
        &self,
        actor: &Actor,
        spec: &DashboardSpec,
        dry_run: bool,
    ) -> Result<Option<String>, AppError> {
        match self.store.shared_by_name(&spec.name).await.map_err(to_app)? {
            Some(current) if current.spec == *spec => Ok(None),
            Some(current) => {
                if !dry_run {
                    self.update(actor, current.id, spec.clone(), None).await?;
                }
                Ok(Some(format!("update dashboard {:?}", spec.name)))
            }
            None => {
                if !dry_run {
                    self.create(actor, spec.clone()).await?;
                }
                Ok(Some(format!("create dashboard {:?}", spec.name)))
            }
        }
    }
}

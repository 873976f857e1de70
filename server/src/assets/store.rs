//! Storage of templates and the asset tree, written once for both backends (see `auth/store.rs` for the pattern).
//! Attribute templates, categories and labels are JSON columns: they are read and written whole, never queried.

use std::sync::Arc;

use app::assets::AttributeTemplate;
use app::error::{AppError, ErrorKind};

use crate::error::ApiError;
use crate::metadata::{Database, PostgresMetadata, SqliteMetadata};

#[derive(Debug, Clone)]
pub struct TemplateRow {
    pub id: i64,
    pub name: String,
    pub base_id: Option<i64>,
    pub description: String,
    pub naming_pattern: Option<String>,
    pub categories: Vec<String>,
    pub attributes: Vec<AttributeTemplate>,
    /// Bumped by every write (optimistic concurrency).
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct AssetRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub template_id: Option<i64>,
    pub description: String,
    pub labels: Vec<String>,
    pub child_count: i64,
    /// Bumped by every write (optimistic concurrency).
    pub version: i64,
}

#[async_trait::async_trait]
pub trait ModelStore: Send + Sync + 'static {
    async fn list_templates(&self) -> Result<Vec<TemplateRow>, ApiError>;
    async fn template_by_id(&self, id: i64) -> Result<Option<TemplateRow>, ApiError>;
    async fn template_by_name(&self, name: &str) -> Result<Option<TemplateRow>, ApiError>;
    /// Fails with 409 when the name is taken. `id` 0 inserts; otherwise replaces that template.
    /// Inserts (id 0) or updates a template; an update with `expected` is refused (409) unless the stored version
    /// is that one.
    async fn save_template(&self, template: &TemplateRow, expected: Option<i64>, now_ms: i64) -> Result<i64, ApiError>;
    async fn delete_template(&self, id: i64) -> Result<(), ApiError>;
    /// How many assets use the template and how many templates derive from it.
    async fn template_usage(&self, id: i64) -> Result<(i64, i64), ApiError>;

    async fn insert_asset(&self, asset: &AssetRow, now_ms: i64) -> Result<i64, ApiError>;
    /// Writes the asset's name, parent, description and labels. A new parent at or below the asset itself is
    /// refused (409) in the same statement that moves it, so concurrent moves cannot make a cycle.
    async fn update_asset(&self, asset: &AssetRow, expected: Option<i64>, now_ms: i64) -> Result<(), ApiError>;
    async fn asset_by_id(&self, id: i64) -> Result<Option<AssetRow>, ApiError>;
    async fn child_by_name(&self, parent_id: Option<i64>, name: &str) -> Result<Option<AssetRow>, ApiError>;
    async fn children(&self, parent_id: Option<i64>) -> Result<Vec<AssetRow>, ApiError>;
    /// Every asset, by id (the search index's build).
    async fn all_assets(&self) -> Result<Vec<AssetRow>, ApiError>;
    /// The asset and its ancestors as (id, name), root first; empty when the asset does not exist.
    async fn lineage(&self, id: i64) -> Result<Vec<(i64, String)>, ApiError>;
    /// The asset and everything below it, parents before children.
    async fn subtree(&self, id: i64) -> Result<Vec<AssetRow>, ApiError>;
    /// The assets at or below any of `roots`, each once, in no particular order (the search index's updates).
    async fn subtrees(&self, roots: &[i64]) -> Result<Vec<AssetRow>, ApiError>;
    /// These assets and all their ancestors as (id, parent, name), each once (the search index's paths).
    async fn ancestors(&self, ids: &[i64]) -> Result<Vec<(i64, Option<i64>, String)>, ApiError>;
    /// Deletes the given assets (a whole subtree, children listed after parents).
    async fn delete_assets(&self, ids: &[i64]) -> Result<(), ApiError>;
}

impl Database {
    pub fn model_store(&self) -> Arc<dyn ModelStore> {
        match self {
            Database::Sqlite(db) => db.clone(),
            Database::Postgres(db) => db.clone(),
        }
    }
}

fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored JSON column is invalid: {e}")))
}

fn conflict_on_duplicate(err: sqlx::Error, message: impl FnOnce() -> String) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::new(ErrorKind::Conflict, message()).into(),
        _ => err.into(),
    }
}

/// Devices are bound to assets; the database refuses to delete an asset a device still points at.
fn refuse_while_referenced(err: sqlx::Error) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => AppError::new(
            ErrorKind::Conflict,
            "devices are bound to this asset or one below it; delete or rebind them first",
        )
        .into(),
        _ => err.into(),
    }
}

const TEMPLATE_COLUMNS: &str = "id, name, base_id, description, naming_pattern, categories, attributes, version";
const ASSET_COLUMNS: &str = "a.id, a.parent_id, a.name, a.template_id, a.description, a.labels, a.version, \
     (SELECT COUNT(*) FROM assets c WHERE c.parent_id = a.id) AS child_count";

/// The deepest tree the recursive queries walk; deeper (or a cycle, which the moves prevent) stops there.
pub const MAX_DEPTH: i64 = 1000;

/// Serializes moves on PostgreSQL, where two concurrent statements do not see each other's move (SQLite runs one
/// writing statement at a time).
const POSTGRES_MOVE_LOCK: &str = "SELECT pg_advisory_xact_lock(7301)";

macro_rules! impl_model_store {
    ($store:ty, $db:ty, $move_lock:expr) => {
        impl $store {
            fn template_from_row(row: &<$db as sqlx::Database>::Row) -> Result<TemplateRow, ApiError> {
                use sqlx::Row;
                Ok(TemplateRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    base_id: row.try_get("base_id")?,
                    description: row.try_get("description")?,
                    naming_pattern: row.try_get("naming_pattern")?,
                    categories: json_column(row.try_get("categories")?)?,
                    attributes: json_column(row.try_get("attributes")?)?,
                    version: row.try_get("version")?,
                })
            }

            fn asset_from_row(row: &<$db as sqlx::Database>::Row) -> Result<AssetRow, ApiError> {
                use sqlx::Row;
                Ok(AssetRow {
                    id: row.try_get("id")?,
                    parent_id: row.try_get("parent_id")?,
                    name: row.try_get("name")?,
                    template_id: row.try_get("template_id")?,
                    description: row.try_get("description")?,
                    labels: json_column(row.try_get("labels")?)?,
                    child_count: row.try_get("child_count")?,
                    version: row.try_get("version")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl ModelStore for $store {
            async fn list_templates(&self) -> Result<Vec<TemplateRow>, ApiError> {
                let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY lower(name)");
                sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(Self::template_from_row).collect()
            }

            async fn template_by_id(&self, id: i64) -> Result<Option<TemplateRow>, ApiError> {
                let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::template_from_row).transpose()
            }

            async fn template_by_name(&self, name: &str) -> Result<Option<TemplateRow>, ApiError> {
                let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE lower(name) = lower($1)");
                let row = sqlx::query(&sql).bind(name).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::template_from_row).transpose()
            }

            async fn save_template(&self, t: &TemplateRow, expected: Option<i64>, now_ms: i64) -> Result<i64, ApiError> {
                let categories = serde_json::to_string(&t.categories).map_err(anyhow::Error::from)?;
                let attributes = serde_json::to_string(&t.attributes).map_err(anyhow::Error::from)?;
                let duplicate = || format!("a template named {:?} exists", t.name);
                if t.id == 0 {
                    sqlx::query_scalar(
                        "INSERT INTO templates (name, base_id, description, naming_pattern, categories, attributes, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                    )
                    .bind(&t.name)
                    .bind(t.base_id)
                    .bind(&t.description)
                    .bind(&t.naming_pattern)
                    .bind(categories)
                    .bind(attributes)
                    .bind(now_ms)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| conflict_on_duplicate(e, duplicate))
                } else {
                    let updated = sqlx::query(
                        "UPDATE templates SET name = $2, base_id = $3, description = $4, naming_pattern = $5, \
                         categories = $6, attributes = $7, updated_at = $8, version = version + 1 \
                         WHERE id = $1 AND ($9 IS NULL OR version = $9)",
                    )
                    .bind(t.id)
                    .bind(&t.name)
                    .bind(t.base_id)
                    .bind(&t.description)
                    .bind(&t.naming_pattern)
                    .bind(categories)
                    .bind(attributes)
                    .bind(now_ms)
                    .bind(expected)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| conflict_on_duplicate(e, duplicate))?;
                    if updated.rows_affected() == 0 {
                        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM templates WHERE id = $1")
                            .bind(t.id)
                            .fetch_optional(&self.pool)
                            .await?;
                        return Err(match current {
                            Some(current) => AppError::stale("template", current).into(),
                            None => AppError::not_found("there is no such template").into(),
                        });
                    }
                    Ok(t.id)
                }
            }

            async fn delete_template(&self, id: i64) -> Result<(), ApiError> {
                sqlx::query("DELETE FROM templates WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn template_usage(&self, id: i64) -> Result<(i64, i64), ApiError> {
                let assets = sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE template_id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                let derived = sqlx::query_scalar("SELECT COUNT(*) FROM templates WHERE base_id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((assets, derived))
            }

            async fn insert_asset(&self, a: &AssetRow, now_ms: i64) -> Result<i64, ApiError> {
                let labels = serde_json::to_string(&a.labels).map_err(anyhow::Error::from)?;
                sqlx::query_scalar(
                    "INSERT INTO assets (parent_id, name, template_id, description, labels, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(a.parent_id)
                .bind(&a.name)
                .bind(a.template_id)
                .bind(&a.description)
                .bind(labels)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| conflict_on_duplicate(e, || format!("a sibling named {:?} exists", a.name)))
            }

            async fn update_asset(&self, a: &AssetRow, expected: Option<i64>, now_ms: i64) -> Result<(), ApiError> {
                let labels = serde_json::to_string(&a.labels).map_err(anyhow::Error::from)?;
                let mut tx = self.pool.begin().await?;
                let lock: Option<&str> = $move_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let sql = format!(
                    "UPDATE assets SET parent_id = $2, name = $3, description = $4, labels = $5, updated_at = $6, \
                     version = version + 1 \
                     WHERE id = $1 AND ($7 IS NULL OR version = $7) AND NOT EXISTS ( \
                         WITH RECURSIVE up (id, parent_id, depth) AS ( \
                             SELECT id, parent_id, 0 FROM assets WHERE id = $2 \
                             UNION ALL \
                             SELECT p.id, p.parent_id, up.depth + 1 FROM assets p JOIN up ON p.id = up.parent_id \
                             WHERE up.depth < {MAX_DEPTH} \
                         ) SELECT 1 FROM up WHERE up.id = $1)"
                );
                let updated = sqlx::query(&sql)
                    .bind(a.id)
                    .bind(a.parent_id)
                    .bind(&a.name)
                    .bind(&a.description)
                    .bind(labels)
                    .bind(now_ms)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_on_duplicate(e, || format!("a sibling named {:?} exists there", a.name)))?;
                if updated.rows_affected() == 0 {
                    let current: Option<i64> = sqlx::query_scalar("SELECT version FROM assets WHERE id = $1")
                        .bind(a.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match (current, expected) {
                        (None, _) => return Err(AppError::not_found("there is no such asset").into()),
                        (Some(current), Some(expected)) if current != expected => {
                            return Err(AppError::stale("asset", current).into())
                        }
                        _ => {}
                    }
                }
                if updated.rows_affected() == 0 && a.parent_id.is_some() {
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "an asset cannot move under itself or its descendants",
                    )
                    .into());
                }
                tx.commit().await?;
                Ok(())
            }

            async fn asset_by_id(&self, id: i64) -> Result<Option<AssetRow>, ApiError> {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets a WHERE a.id = $1");
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::asset_from_row).transpose()
            }

            async fn child_by_name(&self, parent_id: Option<i64>, name: &str) -> Result<Option<AssetRow>, ApiError> {
                let sql = format!(
                    "SELECT {ASSET_COLUMNS} FROM assets a WHERE COALESCE(a.parent_id, 0) = COALESCE($1, 0) AND a.name = $2"
                );
                let row = sqlx::query(&sql).bind(parent_id).bind(name).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::asset_from_row).transpose()
            }

            async fn children(&self, parent_id: Option<i64>) -> Result<Vec<AssetRow>, ApiError> {
                let sql = format!(
                    "SELECT {ASSET_COLUMNS} FROM assets a WHERE COALESCE(a.parent_id, 0) = COALESCE($1, 0) ORDER BY a.name"
                );
                sqlx::query(&sql).bind(parent_id).fetch_all(&self.pool).await?.iter().map(Self::asset_from_row).collect()
            }

            async fn all_assets(&self) -> Result<Vec<AssetRow>, ApiError> {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets a ORDER BY a.id");
                sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(Self::asset_from_row).collect()
            }

            async fn lineage(&self, id: i64) -> Result<Vec<(i64, String)>, ApiError> {
                use sqlx::Row;
                let sql = format!(
                    "WITH RECURSIVE up (id, parent_id, name, depth) AS ( \
                         SELECT id, parent_id, name, 0 FROM assets WHERE id = $1 \
                         UNION ALL \
                         SELECT a.id, a.parent_id, a.name, up.depth + 1 FROM assets a JOIN up ON a.id = up.parent_id \
                         WHERE up.depth < {MAX_DEPTH} \
                     ) SELECT id, name FROM up ORDER BY depth DESC"
                );
                let rows = sqlx::query(&sql)
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?))).collect()
            }

            async fn subtree(&self, id: i64) -> Result<Vec<AssetRow>, ApiError> {
                let sql = format!(
                    "WITH RECURSIVE down (id, depth) AS ( \
                         SELECT id, 0 FROM assets WHERE id = $1 \
                         UNION ALL \
                         SELECT a.id, down.depth + 1 FROM assets a JOIN down ON a.parent_id = down.id \
                         WHERE down.depth < {MAX_DEPTH} \
                     ) SELECT {ASSET_COLUMNS} FROM down JOIN assets a ON a.id = down.id ORDER BY down.depth, a.name"
                );
                sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?.iter().map(Self::asset_from_row).collect()
            }

            async fn subtrees(&self, roots: &[i64]) -> Result<Vec<AssetRow>, ApiError> {
                let mut rows = Vec::new();
                for chunk in roots.chunks(crate::metadata::ID_LIST_CHUNK) {
                    let sql = format!(
                        "WITH RECURSIVE down (id, depth) AS ( \
                             SELECT id, 0 FROM assets WHERE id IN ({}) \
                             UNION \
                             SELECT a.id, down.depth + 1 FROM assets a JOIN down ON a.parent_id = down.id \
                             WHERE down.depth < {MAX_DEPTH} \
                         ) SELECT {ASSET_COLUMNS} FROM down JOIN assets a ON a.id = down.id",
                        crate::metadata::id_list(chunk)
                    );
                    for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                        rows.push(Self::asset_from_row(&row)?);
                    }
                }
                rows.sort_unstable_by_key(|row| row.id);
                rows.dedup_by_key(|row| row.id);
                Ok(rows)
            }

            async fn ancestors(&self, ids: &[i64]) -> Result<Vec<(i64, Option<i64>, String)>, ApiError> {
                use sqlx::Row;
                let mut found = Vec::new();
                for chunk in ids.chunks(crate::metadata::ID_LIST_CHUNK) {
                    let sql = format!(
                        "WITH RECURSIVE up (id, depth) AS ( \
                             SELECT id, 0 FROM assets WHERE id IN ({}) \
                             UNION \
                             SELECT a.parent_id, up.depth + 1 FROM assets a JOIN up ON a.id = up.id \
                             WHERE a.parent_id IS NOT NULL AND up.depth < {MAX_DEPTH} \
                         ) SELECT DISTINCT a.id, a.parent_id, a.name FROM up JOIN assets a ON a.id = up.id",
                        crate::metadata::id_list(chunk)
                    );
                    for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                        found.push((row.try_get("id")?, row.try_get("parent_id")?, row.try_get("name")?));
                    }
                }
                found.sort_unstable_by_key(|(id, _, _)| *id);
                found.dedup_by_key(|(id, _, _)| *id);
                Ok(found)
            }

            async fn delete_assets(&self, ids: &[i64]) -> Result<(), ApiError> {
                let mut tx = self.pool.begin().await?;
                // Children first, so no row ever points at a deleted parent.
                for id in ids.iter().rev() {
                    sqlx::query("DELETE FROM assets WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(refuse_while_referenced)?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

impl_model_store!(SqliteMetadata, sqlx::Sqlite, None);
impl_model_store!(PostgresMetadata, sqlx::Postgres, Some(POSTGRES_MOVE_LOCK));

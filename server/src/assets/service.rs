//! The model service: templates with single inheritance and the asset tree. Every method takes the caller's
//! [`Actor`]: reads need `View`, writes `EditModel`, and assets outside the caller's grants do not exist for them
//! (404), whatever the route.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use app::assets::{
    split_path, validate_model_name, AssetPatch, AssetRef, AssetSummary, AssetView, EffectiveAttribute, ImportReport,
    NewAsset, TemplateEdit, TemplateSpec, TemplateView,
};
use app::auth::{Actor, Permission, Scope, HIDDEN_ANCESTOR};
use app::error::{AppError, ErrorKind};
use app::services::ModelService;
use serde_json::json;

use super::edits;
use super::file::SharedDashboards;
use super::store::{AssetRow, ModelStore, TemplateRow};
use crate::auth::AuditLog;
use crate::error::ApiError;
use crate::metadata::{now_ms, Database};

pub struct Model {
    store: Arc<dyn ModelStore>,
    /// The shared dashboards travel in the model file with the templates and assets they show.
    pub(super) dashboards: Arc<dyn SharedDashboards>,
    audit: AuditLog,
    /// Bumped by every change, so that caches built from the model (alarm rules by series) know to rebuild.
    generation: AtomicU64,
}

fn to_app(err: ApiError) -> AppError {
    err.into_app_error()
}

fn no_asset() -> AppError {
    AppError::not_found("there is no such asset")
}

fn no_template() -> AppError {
    AppError::not_found("there is no such template")
}

pub fn path_of(lineage: &[(i64, String)]) -> String {
    lineage.iter().map(|(_, name)| format!("/{name}")).collect()
}

/// The path of the asset `lineage` ends at as the caller is shown it (ancestors outside their grants hidden).
pub fn shown_path(actor: &Actor, lineage: &[(i64, String)]) -> String {
    let ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
    actor.scope.shown_path(&ids, &path_of(lineage))
}

impl Model {
    /// The model service on the metadata database; the model file carries the shared `dashboards`.
    pub fn open(database: &Database, audit: AuditLog, dashboards: Arc<dyn SharedDashboards>) -> Self {
        Model {
            store: database.model_store(),
            dashboards,
            audit,
            generation: AtomicU64::new(0),
        }
    }

    /// Changes with every change to templates or assets made through this instance.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Another instance (or a `gantry` command) changed something: what is cached under the generation goes.
    pub fn changed_elsewhere(&self) {
        self.changed();
    }

    async fn templates_by_id(&self) -> Result<HashMap<i64, TemplateRow>, AppError> {
        Ok(self
            .store
            .list_templates()
            .await
            .map_err(to_app)?
            .into_iter()
            .map(|t| (t.id, t))
            .collect())
    }

    /// The template and its bases, base-most first.
    fn chain(all: &HashMap<i64, TemplateRow>, id: i64) -> Vec<&TemplateRow> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let Some(template) = all.get(&id) else { break };
            if !seen.insert(id) {
                break;
            }
            chain.push(template);
            next = template.base_id;
        }
        chain.reverse();
        chain
    }

    /// Own and inherited attributes of template `id`, base first; a derived template's attribute replaces the
    /// inherited one of the same name in place.
    fn effective(all: &HashMap<i64, TemplateRow>, id: i64, for_asset: bool) -> Vec<EffectiveAttribute> {
        let mut attributes: Vec<EffectiveAttribute> = Vec::new();
        for template in Self::chain(all, id) {
            for attribute in &template.attributes {
                let effective = EffectiveAttribute {
                    attribute: attribute.clone(),
                    defined_in: template.name.clone(),
                    inherited: for_asset || template.id != id,
                };
                match attributes.iter_mut().find(|a| a.attribute.name == attribute.name) {
                    Some(existing) => *existing = effective,
                    None => attributes.push(effective),
                }
            }
        }
        attributes
    }

    async fn template_view(
        &self,
        all: &HashMap<i64, TemplateRow>,
        row: &TemplateRow,
    ) -> Result<TemplateView, AppError> {
        let (asset_count, _) = self.store.template_usage(row.id).await.map_err(to_app)?;
        Ok(TemplateView {
            id: row.id,
            version: row.version,
            spec: TemplateSpec {
                name: row.name.clone(),
                base: row.base_id.and_then(|id| all.get(&id)).map(|t| t.name.clone()),
                description: row.description.clone(),
                naming_pattern: row.naming_pattern.clone(),
                categories: row.categories.clone(),
                attributes: row.attributes.clone(),
            },
            effective_attributes: Self::effective(all, row.id, false),
            asset_count,
        })
    }

    /// Checks a spec and turns it into a row (`id` 0 for a new template).
    async fn row_from_spec(&self, id: i64, spec: TemplateSpec) -> Result<TemplateRow, AppError> {
        validate_model_name("template", &spec.name)?;
        let mut names = HashSet::new();
        for attribute in &spec.attributes {
            validate_model_name("attribute", &attribute.name)?;
            if !names.insert(attribute.name.as_str()) {
                return Err(AppError::new(
                    ErrorKind::Unprocessable,
                    format!("the attribute {:?} is declared twice", attribute.name),
                ));
            }
            attribute.limits.validate().map_err(|reason| {
                AppError::new(
                    ErrorKind::Unprocessable,
                    format!("attribute {:?}: {reason}", attribute.name),
                )
            })?;
            attribute.check_rules(&attribute.alarms)?;
        }
        let base_id = match &spec.base {
            None => None,
            Some(base) => Some(
                self.store
                    .template_by_name(base)
                    .await
                    .map_err(to_app)?
                    .ok_or_else(|| AppError::not_found(format!("there is no base template named {base:?}")))?
                    .id,
            ),
        };
        Ok(TemplateRow {
            id,
            name: spec.name,
            base_id,
            description: spec.description,
            naming_pattern: spec.naming_pattern,
            categories: spec.categories,
            attributes: spec.attributes,
            version: 0,
        })
    }

    async fn write_template(
        &self,
        actor: &Actor,
        before: TemplateView,
        spec: TemplateSpec,
        expected: Option<i64>,
    ) -> Result<TemplateView, AppError> {
        let id = before.id;
        let row = self.row_from_spec(id, spec.clone()).await?;
        // Walking up from the new base must never come back to this template.
        let all = self.templates_by_id().await?;
        let mut next = row.base_id;
        let mut steps = 0;
        while let Some(base) = next {
            if base == id || steps > all.len() {
                return Err(AppError::new(
                    ErrorKind::Conflict,
                    "a template cannot inherit from itself, directly or not",
                ));
            }
            next = all.get(&base).and_then(|t| t.base_id);
            steps += 1;
        }
        self.store
            .save_template(&row, expected, now_ms())
            .await
            .map_err(to_app)?;
        self.changed();
        self.audit
            .record(
                Some(actor),
                "template.update",
                "template",
                Some(id.to_string()),
                json!({ "from": before.spec, "to": spec }),
            )
            .await?;
        self.get_template(actor, id).await
    }

    /// The asset's ancestors and itself, root first, without a grant check: for services that check grants on
    /// lists of their own objects (alarms). Empty when the asset does not exist.
    pub async fn lineage(&self, id: i64) -> Result<Vec<(i64, String)>, AppError> {
        self.store.lineage(id).await.map_err(to_app)
    }

    /// The asset's lineage, or 404 when it does not exist or lies outside the caller's grants.
    async fn visible_lineage(&self, actor: &Actor, id: i64) -> Result<Vec<(i64, String)>, AppError> {
        actor.require(Permission::View)?;
        let lineage = self.store.lineage(id).await.map_err(to_app)?;
        let ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
        if lineage.is_empty() || !actor.scope.includes(&ids) {
            return Err(no_asset());
        }
        Ok(lineage)
    }

    fn summary(row: &AssetRow, path: String, templates: &HashMap<i64, TemplateRow>) -> AssetSummary {
        AssetSummary {
            id: row.id,
            parent_id: row.parent_id,
            name: row.name.clone(),
            path,
            template: row
                .template_id
                .and_then(|id| templates.get(&id))
                .map(|t| t.name.clone()),
            child_count: row.child_count,
        }
    }

    async fn view(&self, actor: &Actor, row: AssetRow, lineage: &[(i64, String)]) -> Result<AssetView, AppError> {
        let templates = self.templates_by_id().await?;
        let attributes = row
            .template_id
            .map(|id| Self::effective(&templates, id, true))
            .unwrap_or_default();
        // Breadcrumbs: the ancestors the caller may open (a user with grants starts at the grant).
        let ancestor_ids: Vec<i64> = lineage.iter().map(|(id, _)| *id).collect();
        let ancestors = lineage[..lineage.len().saturating_sub(1)]
            .iter()
            .enumerate()
            .filter(|(depth, _)| actor.scope.includes(&ancestor_ids[..=*depth]))
            .map(|(_, (id, name))| AssetRef {
                id: *id,
                name: name.clone(),
            })
            .collect();
        Ok(AssetView {
            summary: Self::summary(&row, shown_path(actor, lineage), &templates),
            ancestors,
            description: row.description,
            labels: row.labels,
            attributes,
            version: row.version,
        })
    }

    /// The full path of the asset the caller names by `path` (as they are shown it), for what is stored and read
    /// by others (dashboard panels).
    pub async fn full_path(&self, actor: &Actor, path: &str) -> Result<String, AppError> {
        let id = self.asset_by_path(actor, path).await?.summary.id;
        Ok(path_of(&self.store.lineage(id).await.map_err(to_app)?))
    }

    /// The asset at a full path, whoever may see it: its lineage, empty when there is none.
    pub async fn lineage_at(&self, path: &str) -> Result<Vec<(i64, String)>, AppError> {
        let Ok(segments) = split_path(path) else {
            return Ok(Vec::new());
        };
        let mut parent = None;
        for name in segments {
            match self.store.child_by_name(parent, name).await.map_err(to_app)? {
                Some(row) => parent = Some(row.id),
                None => return Ok(Vec::new()),
            }
        }
        match parent {
            Some(id) => self.lineage(id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Creating at the root needs the whole plant; elsewhere the parent must be within the caller's grants.
    async fn check_parent(&self, actor: &Actor, parent: Option<i64>) -> Result<(), AppError> {
        match parent {
            Some(parent) => self.visible_lineage(actor, parent).await.map(|_| ()),
            None if actor.scope == Scope::Everything => Ok(()),
            None => Err(AppError::forbidden(
                "only users with access to the whole plant may create top-level assets",
            )),
        }
    }
}

/// What the UI's server functions reach.
#[async_trait::async_trait]
impl app::services::ModelService for Model {
    async fn list_templates(&self, actor: &Actor) -> Result<Vec<TemplateView>, AppError> {
        actor.require(Permission::View)?;
        let all = self.templates_by_id().await?;
        let mut views = Vec::with_capacity(all.len());
        for row in self.store.list_templates().await.map_err(to_app)? {
            views.push(self.template_view(&all, &row).await?);
        }
        Ok(views)
    }

    async fn get_template(&self, actor: &Actor, id: i64) -> Result<TemplateView, AppError> {
        actor.require(Permission::View)?;
        let all = self.templates_by_id().await?;
        let row = all.get(&id).ok_or_else(no_template)?;
        self.template_view(&all, row).await
    }

    async fn create_template(&self, actor: &Actor, spec: TemplateSpec) -> Result<TemplateView, AppError> {
        actor.require(Permission::EditModel)?;
        actor.require_whole_plant("changing a template")?;
        let row = self.row_from_spec(0, spec.clone()).await?;
        let id = self.store.save_template(&row, None, now_ms()).await.map_err(to_app)?;
        self.changed();
        self.audit
            .record(
                Some(actor),
                "template.create",
                "template",
                Some(id.to_string()),
                json!({ "to": spec }),
            )
            .await?;
        self.get_template(actor, id).await
    }

    /// Replaces a template; the change reaches every asset built from it at once (assets read it live). With
    /// `expected`, refused (409) unless the template is still at that version.
    async fn replace_template(
        &self,
        actor: &Actor,
        id: i64,
        spec: TemplateSpec,
        expected: Option<i64>,
    ) -> Result<TemplateView, AppError> {
        actor.require(Permission::EditModel)?;
        actor.require_whole_plant("changing a template")?;
        let before = self.get_template(actor, id).await?;
        self.write_template(actor, before, spec, expected).await
    }

    /// Makes one change to a template as it is stored now; with `expected`, refused (409) unless the template is
    /// still at that version (the one the editor showed).
    async fn edit_template(
        &self,
        actor: &Actor,
        id: i64,
        expected: Option<i64>,
        edit: TemplateEdit,
    ) -> Result<TemplateView, AppError> {
        actor.require(Permission::EditModel)?;
        actor.require_whole_plant("changing a template")?;
        let before = self.get_template(actor, id).await?;
        if let Some(expected) = expected.filter(|expected| *expected != before.version) {
            tracing::debug!(
                expected,
                current = before.version,
                "A template edit was based on an old version."
            );
            return Err(AppError::stale("template", before.version));
        }
        let spec = edits::apply(&before, edit)?;
        // The version read above: a change committed since then makes this write fail rather than be lost.
        let version = before.version;
        self.write_template(actor, before, spec, Some(version)).await
    }

    async fn delete_template(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        actor.require(Permission::EditModel)?;
        actor.require_whole_plant("changing a template")?;
        let before = self.get_template(actor, id).await?;
        let (assets, derived) = self.store.template_usage(id).await.map_err(to_app)?;
        if assets > 0 || derived > 0 {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!("the template is in use by {assets} assets and {derived} templates"),
            ));
        }
        self.store.delete_template(id).await.map_err(to_app)?;
        self.changed();
        self.audit
            .record(
                Some(actor),
                "template.delete",
                "template",
                Some(id.to_string()),
                json!({ "from": before.spec }),
            )
            .await
    }

    async fn get_asset(&self, actor: &Actor, id: i64) -> Result<AssetView, AppError> {
        let lineage = self.visible_lineage(actor, id).await?;
        let row = self.store.asset_by_id(id).await.map_err(to_app)?.ok_or_else(no_asset)?;
        self.view(actor, row, &lineage).await
    }

    /// The asset at `path` as the caller is shown paths: `/…/Line 2/Pump 7` for a user granted only Line 2.
    /// A path naming an ancestor the caller may not see answers 404 like a path that leads nowhere, so no name
    /// outside one's grants can be confirmed by guessing.
    async fn asset_by_path(&self, actor: &Actor, path: &str) -> Result<AssetView, AppError> {
        actor.require(Permission::View)?;
        let segments = split_path(path)?;
        let hidden = segments.iter().take_while(|name| **name == HIDDEN_ANCESTOR).count();
        let mut parent = None;
        if hidden > 0 {
            // The first name shown is one of the caller's grants, `hidden` levels down.
            let (Scope::Subtrees(roots), Some(name)) = (&actor.scope, segments.get(hidden)) else {
                return Err(no_asset());
            };
            for root in roots {
                let lineage = self.store.lineage(*root).await.map_err(to_app)?;
                if lineage.len() == hidden + 1 && lineage.last().is_some_and(|(_, n)| n == name) {
                    if parent.is_some() {
                        return Err(AppError::bad_request(format!(
                            "{path:?} names more than one of your granted assets; name the asset by id instead"
                        )));
                    }
                    parent = Some(*root);
                }
            }
            if parent.is_none() {
                return Err(no_asset());
            }
        }
        let start = if hidden > 0 { hidden + 1 } else { 0 };
        for name in &segments[start..] {
            let row = self
                .store
                .child_by_name(parent, name)
                .await
                .map_err(to_app)?
                .ok_or_else(no_asset)?;
            parent = Some(row.id);
        }
        let view = self.get_asset(actor, parent.ok_or_else(no_asset)?).await?;
        if view.summary.path != path {
            return Err(no_asset());
        }
        Ok(view)
    }

    /// Children of `parent`, or the top of the caller's tree: the roots, or for a user with grants the granted
    /// assets themselves.
    async fn children(&self, actor: &Actor, parent: Option<i64>) -> Result<Vec<AssetSummary>, AppError> {
        actor.require(Permission::View)?;
        let templates = self.templates_by_id().await?;
        match (parent, &actor.scope) {
            (Some(parent), _) => {
                let lineage = self.visible_lineage(actor, parent).await?;
                let base = shown_path(actor, &lineage);
                let rows = self.store.children(Some(parent)).await.map_err(to_app)?;
                Ok(rows
                    .iter()
                    .map(|row| Self::summary(row, format!("{base}/{}", row.name), &templates))
                    .collect())
            }
            (None, Scope::Everything) => {
                let rows = self.store.children(None).await.map_err(to_app)?;
                Ok(rows
                    .iter()
                    .map(|row| Self::summary(row, format!("/{}", row.name), &templates))
                    .collect())
            }
            (None, Scope::Subtrees(roots)) => {
                let mut summaries = Vec::new();
                for id in roots {
                    if let Some(row) = self.store.asset_by_id(*id).await.map_err(to_app)? {
                        let lineage = self.store.lineage(*id).await.map_err(to_app)?;
                        summaries.push(Self::summary(&row, shown_path(actor, &lineage), &templates));
                    }
                }
                Ok(summaries)
            }
        }
    }

    async fn subtree(&self, actor: &Actor, id: i64) -> Result<Vec<AssetSummary>, AppError> {
        let lineage = self.visible_lineage(actor, id).await?;
        let templates = self.templates_by_id().await?;
        let rows = self.store.subtree(id).await.map_err(to_app)?;
        let mut paths: HashMap<i64, String> = HashMap::new();
        let top = shown_path(actor, &lineage);
        paths.insert(id, top.clone());
        let mut summaries = Vec::with_capacity(rows.len());
        for row in &rows {
            let path = match row.parent_id.and_then(|p| paths.get(&p)) {
                Some(parent_path) if row.id != id => format!("{parent_path}/{}", row.name),
                _ => top.clone(),
            };
            paths.insert(row.id, path.clone());
            summaries.push(Self::summary(row, path, &templates));
        }
        Ok(summaries)
    }

    async fn create_asset(&self, actor: &Actor, asset: NewAsset) -> Result<AssetView, AppError> {
        actor.require(Permission::EditModel)?;
        validate_model_name("asset", &asset.name)?;
        self.check_parent(actor, asset.parent_id).await?;
        let template_id = match &asset.template {
            None => None,
            Some(name) => Some(
                self.store
                    .template_by_name(name)
                    .await
                    .map_err(to_app)?
                    .ok_or_else(|| AppError::not_found(format!("there is no template named {name:?}")))?
                    .id,
            ),
        };
        let row = AssetRow {
            id: 0,
            parent_id: asset.parent_id,
            name: asset.name.clone(),
            template_id,
            description: asset.description.clone(),
            labels: asset.labels.clone(),
            child_count: 0,
            version: 0,
        };
        let id = self.store.insert_asset(&row, now_ms()).await.map_err(to_app)?;
        self.changed();
        let view = self.get_asset(actor, id).await?;
        self.audit
            .record(
                Some(actor),
                "asset.create",
                "asset",
                Some(id.to_string()),
                json!({ "path": { "to": view.summary.path }, "template": { "to": asset.template } }),
            )
            .await?;
        Ok(view)
    }

    /// Renames, moves (refusing moves under itself), describes or labels an asset. History and references keep
    /// working because they point at the id, not the path.
    async fn update_asset(
        &self,
        actor: &Actor,
        id: i64,
        patch: AssetPatch,
        expected: Option<i64>,
    ) -> Result<AssetView, AppError> {
        actor.require(Permission::EditModel)?;
        let before = self.get_asset(actor, id).await?;
        let mut row = self.store.asset_by_id(id).await.map_err(to_app)?.ok_or_else(no_asset)?;
        if let Some(name) = patch.name {
            validate_model_name("asset", &name)?;
            row.name = name;
        }
        if let Some(parent) = patch.parent_id {
            // A parent at or below the asset is refused by the store, in the statement that moves it.
            self.check_parent(actor, parent).await?;
            row.parent_id = parent;
        }
        if let Some(description) = patch.description {
            row.description = description;
        }
        if let Some(labels) = patch.labels {
            row.labels = labels;
        }
        self.store
            .update_asset(&row, expected, now_ms())
            .await
            .map_err(to_app)?;
        self.changed();
        let after = self.get_asset(actor, id).await?;
        let mut diff = serde_json::Map::new();
        let mut changed = |field: &str, from: serde_json::Value, to: serde_json::Value| {
            if from != to {
                diff.insert(field.into(), json!({ "from": from, "to": to }));
            }
        };
        changed("path", json!(before.summary.path), json!(after.summary.path));
        changed("description", json!(before.description), json!(after.description));
        changed("labels", json!(before.labels), json!(after.labels));
        self.audit
            .record(
                Some(actor),
                "asset.update",
                "asset",
                Some(id.to_string()),
                serde_json::Value::Object(diff),
            )
            .await?;
        Ok(after)
    }

    /// Moves an asset under the asset at `parent_path` (a path as the caller sees it; `/` or empty: to the top).
    async fn move_asset(
        &self,
        actor: &Actor,
        id: i64,
        parent_path: &str,
        expected: Option<i64>,
    ) -> Result<AssetView, AppError> {
        let parent = match parent_path.trim() {
            "" | "/" => None,
            path => Some(self.asset_by_path(actor, path).await?.summary.id),
        };
        let patch = AssetPatch {
            parent_id: Some(parent),
            ..AssetPatch::default()
        };
        self.update_asset(actor, id, patch, expected).await
    }

    /// Deletes an asset with its subtree; without `confirm` it only says how many assets that would remove.
    async fn delete_asset(&self, actor: &Actor, id: i64, confirm: bool) -> Result<usize, AppError> {
        actor.require(Permission::EditModel)?;
        let lineage = self.visible_lineage(actor, id).await?;
        let subtree = self.store.subtree(id).await.map_err(to_app)?;
        if !confirm {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!(
                    "this deletes {} with {} assets below it; repeat with confirm=true",
                    path_of(&lineage),
                    subtree.len() - 1
                ),
            )
            .with_details(json!({ "assets": subtree.len() })));
        }
        let ids: Vec<i64> = subtree.iter().map(|row| row.id).collect();
        self.store.delete_assets(&ids).await.map_err(to_app)?;
        self.changed();
        self.audit
            .record(
                Some(actor),
                "asset.delete",
                "asset",
                Some(id.to_string()),
                json!({ "path": { "from": path_of(&lineage) }, "assets_deleted": ids.len() }),
            )
            .await?;
        Ok(ids.len())
    }

    async fn export(&self, actor: &Actor, subtree: Option<&str>) -> Result<String, AppError> {
        self.export_file(actor, subtree).await
    }

    async fn import(
        &self,
        actor: &Actor,
        text: &str,
        dry_run: bool,
        progress: app::services::Progress<'_>,
    ) -> Result<ImportReport, AppError> {
        self.import_file(actor, text, dry_run, progress).await
    }
}

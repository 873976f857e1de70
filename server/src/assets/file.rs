//! The model as a YAML file: export (the whole model, or a subtree) and import, matched by template name and asset
//! path (and the shared dashboards by name, in whole-model files). Import checks the whole file before it writes
//! anything, so a bad file changes nothing; a dry run reports the changes without making them; importing the same
//! file again changes nothing; export → import into an empty system → export gives the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet};

use app::assets::{
    split_path, validate_model_name, AssetEntry, AssetPatch, ImportReport, ModelFile, NewAsset, TemplateSpec,
    MODEL_FILE_VERSION,
};
use app::auth::{Actor, Permission, Scope};
use app::charts::DashboardSpec;
use app::error::{AppError, ErrorKind};
use app::services::{ModelService, Progress};

use super::Model;

/// What the model file needs of the dashboards area (`charts::Dashboards` implements it): the shared dashboards,
/// read and written by name. A trait, so the model depends on no other area.
#[async_trait::async_trait]
pub trait SharedDashboards: Send + Sync + 'static {
    /// The shared dashboards, for an export of the whole model.
    async fn shared_specs(&self, actor: &Actor) -> Result<Vec<DashboardSpec>, AppError>;
    /// Checks a model file's dashboards before anything is written: each valid and shared, names unique.
    fn check_file(&self, specs: &[DashboardSpec]) -> Result<(), AppError>;
    /// Creates or replaces the shared dashboard of that name (unless `dry_run`); the change made, if any.
    async fn import_shared(
        &self,
        actor: &Actor,
        spec: &DashboardSpec,
        dry_run: bool,
    ) -> Result<Option<String>, AppError>;
}

impl Model {
    /// The model (or the subtree at `subtree`) as YAML; the caller's grants limit what is included.
    pub(super) async fn export_file(&self, actor: &Actor, subtree: Option<&str>) -> Result<String, AppError> {
        actor.require(Permission::View)?;
        let mut templates: Vec<TemplateSpec> = self.list_templates(actor).await?.into_iter().map(|t| t.spec).collect();
        templates.sort_by(|a, b| a.name.cmp(&b.name));
        let roots: Vec<i64> = match (subtree, &actor.scope) {
            (Some(path), _) => vec![self.asset_by_path(actor, path).await?.summary.id],
            (None, Scope::Everything) => self.children(actor, None).await?.into_iter().map(|a| a.id).collect(),
            (None, Scope::Subtrees(granted)) => granted.clone(),
        };
        let mut assets = Vec::new();
        for root in roots {
            // A grant may name an asset that is gone; it contributes nothing.
            let Ok(subtree) = self.subtree(actor, root).await else {
                continue;
            };
            for summary in subtree {
                let asset = self.get_asset(actor, summary.id).await?;
                assets.push(AssetEntry {
                    path: summary.path,
                    template: summary.template,
                    description: asset.description,
                    labels: asset.labels,
                });
            }
        }
        assets.sort_by(|a, b| a.path.cmp(&b.path));
        // Dashboards show series of any part of the plant: a subtree's file, or a file of only the caller's
        // grants, leaves them out.
        let dashboards = match (subtree, &actor.scope) {
            (None, Scope::Everything) => self.dashboards.shared_specs(actor).await?,
            _ => Vec::new(),
        };
        let file = ModelFile {
            schema_version: MODEL_FILE_VERSION,
            templates,
            assets,
            dashboards,
        };
        serde_norway::to_string(&file).map_err(|e| AppError::bad_request(format!("could not write the model: {e}")))
    }

    /// Reads a model file, checks all of it, and applies it (unless `dry_run`).
    pub(super) async fn import_file(
        &self,
        actor: &Actor,
        text: &str,
        dry_run: bool,
        progress: Progress<'_>,
    ) -> Result<ImportReport, AppError> {
        actor.require(Permission::EditModel)?;
        actor.require_whole_plant("importing a model file")?;
        let file: ModelFile = serde_norway::from_str(text).map_err(|e| {
            let place = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            AppError::new(
                ErrorKind::Unprocessable,
                format!("the model file is invalid at {place}{e}"),
            )
        })?;
        if file.schema_version != MODEL_FILE_VERSION {
            return Err(AppError::bad_request(format!(
                "the model file has schema_version {}; this Gantry reads version {MODEL_FILE_VERSION}",
                file.schema_version
            )));
        }

        // Check everything first: names, references, parents.
        let existing: BTreeMap<String, TemplateSpec> = self
            .list_templates(actor)
            .await?
            .into_iter()
            .map(|t| (t.spec.name.clone(), t.spec))
            .collect();
        let in_file: HashSet<&str> = file.templates.iter().map(|t| t.name.as_str()).collect();
        if in_file.len() != file.templates.len() {
            return Err(AppError::bad_request("a template name appears twice in the file"));
        }
        for template in &file.templates {
            validate_model_name("template", &template.name)?;
            if let Some(base) = &template.base {
                if !in_file.contains(base.as_str()) && !existing.contains_key(base) {
                    return Err(AppError::bad_request(format!(
                        "template {:?} derives from {base:?}, which is neither in the file nor in Gantry",
                        template.name
                    )));
                }
            }
        }
        let mut paths = HashSet::new();
        for asset in &file.assets {
            let segments = split_path(&asset.path)
                .map_err(|e| AppError::bad_request(format!("asset {:?}: {}", asset.path, e.message)))?;
            for segment in &segments {
                validate_model_name("asset", segment)?;
            }
            if !paths.insert(asset.path.as_str()) {
                return Err(AppError::bad_request(format!(
                    "the asset {:?} appears twice in the file",
                    asset.path
                )));
            }
            if let Some(template) = &asset.template {
                if !in_file.contains(template.as_str()) && !existing.contains_key(template) {
                    return Err(AppError::bad_request(format!(
                        "asset {:?} uses the template {template:?}, which is neither in the file nor in Gantry",
                        asset.path
                    )));
                }
            }
        }
        self.dashboards.check_file(&file.dashboards)?;
        let mut assets = file.assets.clone();
        assets.sort_by_key(|a| (a.path.matches('/').count(), a.path.clone()));
        for asset in &assets {
            let parent = asset.path.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
            if !parent.is_empty() && !paths.contains(parent) && self.asset_by_path(actor, parent).await.is_err() {
                return Err(AppError::bad_request(format!(
                    "the parent of {:?} is neither in the file nor in Gantry (or outside your grants)",
                    asset.path
                )));
            }
        }

        // Templates base-first, so a derived template finds its base.
        let mut ordered: Vec<&TemplateSpec> = Vec::new();
        let mut placed: HashSet<&str> = HashSet::new();
        while ordered.len() < file.templates.len() {
            let before = ordered.len();
            for template in &file.templates {
                let ready = template
                    .base
                    .as_deref()
                    .is_none_or(|b| !in_file.contains(b) || placed.contains(b));
                if !placed.contains(template.name.as_str()) && ready {
                    placed.insert(&template.name);
                    ordered.push(template);
                }
            }
            if ordered.len() == before {
                return Err(AppError::bad_request(
                    "the templates in the file inherit from each other in a cycle",
                ));
            }
        }

        let mut changes = Vec::new();
        let total = ordered.len() + assets.len() + file.dashboards.len();
        let mut done = 0;
        for template in ordered {
            match existing.get(&template.name) {
                Some(current) if current == template => {}
                Some(_) => {
                    changes.push(format!("update template {:?}", template.name));
                    if !dry_run {
                        let id = self.template_id(actor, &template.name).await?;
                        self.replace_template(actor, id, template.clone(), None).await?;
                    }
                }
                None => {
                    changes.push(format!("create template {:?}", template.name));
                    if !dry_run {
                        self.create_template(actor, template.clone()).await?;
                    }
                }
            }
            done += 1;
            progress(done, total);
        }
        let mut ids: HashMap<String, i64> = HashMap::new();
        for asset in &assets {
            let (parent_path, name) = asset.path.rsplit_once('/').expect("paths start with '/'");
            match self.asset_by_path(actor, &asset.path).await.ok() {
                Some(current) => {
                    if current.summary.template != asset.template {
                        return Err(AppError::bad_request(format!(
                            "asset {:?} is built from {:?} in Gantry but {:?} in the file; import does not change \
                             an asset's template",
                            asset.path, current.summary.template, asset.template
                        )));
                    }
                    if current.description != asset.description || current.labels != asset.labels {
                        changes.push(format!("update asset {:?}", asset.path));
                        if !dry_run {
                            let patch = AssetPatch {
                                description: Some(asset.description.clone()),
                                labels: Some(asset.labels.clone()),
                                ..AssetPatch::default()
                            };
                            self.update_asset(actor, current.summary.id, patch, None).await?;
                        }
                    }
                    ids.insert(asset.path.clone(), current.summary.id);
                }
                None => {
                    changes.push(format!("create asset {:?}", asset.path));
                    if !dry_run {
                        let parent_id = match parent_path {
                            "" => None,
                            path => Some(match ids.get(path) {
                                Some(id) => *id,
                                None => self.asset_by_path(actor, path).await?.summary.id,
                            }),
                        };
                        let new = NewAsset {
                            parent_id,
                            name: name.to_string(),
                            template: asset.template.clone(),
                            description: asset.description.clone(),
                            labels: asset.labels.clone(),
                        };
                        ids.insert(asset.path.clone(), self.create_asset(actor, new).await?.summary.id);
                    }
                }
            }
            done += 1;
            progress(done, total);
        }
        // Last, so that a dry run of a file whose dashboards name its new assets checks out.
        for dashboard in &file.dashboards {
            changes.extend(self.dashboards.import_shared(actor, dashboard, dry_run).await?);
            done += 1;
            progress(done, total);
        }
        Ok(ImportReport { dry_run, changes })
    }

    async fn template_id(&self, actor: &Actor, name: &str) -> Result<i64, AppError> {
        self.list_templates(actor)
            .await?
            .into_iter()
            .find(|t| t.spec.name == name)
            .map(|t| t.id)
            .ok_or_else(|| AppError::not_found(format!("there is no template named {name:?}")))
    }
}

//! The search service: builds the index's documents from the metadata database, rebuilds them when the change
//! feed reports a change (on every instance, each with its own index), and answers searches within the caller's
//! grants.

use std::{collections::HashMap, sync::Arc, time::Duration};

use app::auth::Actor;
use app::error::{AppError, ErrorKind};
use app::search::{SearchKind, SearchQuery, SearchResults};
use app::services::ModelService;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::index::{IndexDoc, SearchIndex};
use super::query::{parse, Clause, Filter};
use crate::assets::{Model, ModelStore, TemplateRow};
use crate::devices::DeviceStore;

/// Results per search unless asked otherwise, and the most a search returns.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// The deepest tree walked (as the model's own walks).
const MAX_DEPTH: usize = 1000;
/// Changes arriving within this long of each other are indexed together.
const DEBOUNCE: Duration = Duration::from_millis(100);

pub struct Search {
    index: Arc<SearchIndex>,
    models: Arc<dyn ModelStore>,
    devices: Arc<dyn DeviceStore>,
    model: Arc<Model>,
    changed: Notify,
}

impl Search {
    pub fn new(
        index: SearchIndex,
        models: Arc<dyn ModelStore>,
        devices: Arc<dyn DeviceStore>,
        model: Arc<Model>,
    ) -> Search {
        Search {
            index: Arc::new(index),
            models,
            devices,
            model,
            changed: Notify::new(),
        }
    }

    /// Something in the model changed (the change feed says so): the index is rebuilt shortly.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// The documents of everything searchable, from the metadata database.
    async fn documents(&self) -> Result<Vec<IndexDoc>, AppError> {
        let templates = self.models.list_templates().await.map_err(|e| e.into_app_error())?;
        let assets = self.models.all_assets().await.map_err(|e| e.into_app_error())?;
        let devices = self.devices.list_devices().await.map_err(|e| e.into_app_error())?;
        let by_id: HashMap<i64, &TemplateRow> = templates.iter().map(|t| (t.id, t)).collect();
        // A template and its bases, nearest first (a cycle, which saving prevents, stops the walk).
        let chain = |id: Option<i64>| -> Vec<&TemplateRow> {
            let mut chain = Vec::new();
            let mut next = id;
            while let Some(template) = next.and_then(|id| by_id.get(&id)) {
                if chain.len() > 32 || chain.iter().any(|t: &&TemplateRow| t.id == template.id) {
                    break;
                }
                chain.push(*template);
                next = template.base_id;
            }
            chain
        };
        let described = |description: &str, chain: &[&TemplateRow]| -> String {
            let mut text = description.to_string();
            for template in chain {
                for attribute in &template.attributes {
                    text.push(' ');
                    text.push_str(&attribute.name);
                    if let Some(unit) = &attribute.unit {
                        text.push(' ');
                        text.push_str(unit);
                    }
                }
            }
            text
        };
        let categories = |chain: &[&TemplateRow]| -> Vec<String> {
            let mut all: Vec<String> = chain.iter().flat_map(|t| t.categories.iter().cloned()).collect();
            all.sort();
            all.dedup();
            all
        };
        // Paths and lineages, parents first whatever order the rows come in.
        let parents: HashMap<i64, (Option<i64>, &str)> =
            assets.iter().map(|a| (a.id, (a.parent_id, a.name.as_str()))).collect();
        let lineage_of = |id: i64| -> (Vec<i64>, String) {
            let mut ids = vec![id];
            let mut next = parents.get(&id).and_then(|(parent, _)| *parent);
            while let Some(parent) = next {
                if ids.len() > MAX_DEPTH || ids.contains(&parent) {
                    break;
                }
                ids.push(parent);
                next = parents.get(&parent).and_then(|(parent, _)| *parent);
            }
            ids.reverse();
            let path = ids
                .iter()
                .map(|id| format!("/{}", parents.get(id).map_or("", |(_, name)| *name)))
                .collect();
            (ids, path)
        };
        let mut lineages: HashMap<i64, (Vec<i64>, String)> = HashMap::with_capacity(assets.len());
        let mut docs = Vec::with_capacity(assets.len() + devices.len() + templates.len());
        for asset in &assets {
            let (lineage, path) = lineage_of(asset.id);
            let chain = chain(asset.template_id);
            docs.push(IndexDoc {
                kind: Some(SearchKind::Asset),
                id: asset.id,
                name: asset.name.clone(),
                path: Some(path.clone()),
                lineage: lineage.clone(),
                templates: chain.iter().map(|t| t.name.clone()).collect(),
                categories: categories(&chain),
                labels: asset.labels.clone(),
                text: described(&asset.description, &chain),
            });
            lineages.insert(asset.id, (lineage, path));
        }
        for device in &devices {
            let (lineage, path) = lineages.get(&device.asset_id).cloned().unwrap_or_default();
            let mut text = device.description.clone();
            for field in device.field_map.keys() {
                text.push(' ');
                text.push_str(field);
            }
            docs.push(IndexDoc {
                kind: Some(SearchKind::Device),
                id: device.id,
                name: device.name.clone(),
                path: (!path.is_empty()).then_some(path),
                lineage,
                text,
                ..IndexDoc::default()
            });
        }
        for template in &templates {
            let chain = chain(Some(template.id));
            docs.push(IndexDoc {
                kind: Some(SearchKind::Template),
                id: template.id,
                name: template.name.clone(),
                templates: chain.iter().map(|t| t.name.clone()).collect(),
                categories: categories(&chain),
                text: described(&template.description, &chain[..1]),
                ..IndexDoc::default()
            });
        }
        Ok(docs)
    }

    /// Rebuilds the whole index from the metadata database; returns how many documents it holds.
    pub async fn rebuild(&self) -> Result<usize, AppError> {
        let started = std::time::Instant::now();
        let docs = self.documents().await?;
        let index = self.index.clone();
        let count = docs.len();
        tokio::task::spawn_blocking(move || index.replace_all(&docs))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "The search index build stopped.");
                AppError::internal()
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "The search index could not be written.");
                AppError::internal()
            })?;
        metrics::gauge!("gantry_search_documents").set(count as f64);
        tracing::debug!(
            documents = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "The search index is current."
        );
        Ok(count)
    }

    /// Builds the index at start, then again after each burst of changes (supervised).
    pub fn spawn(self: &Arc<Self>, tasks: &crate::tasks::Tasks, shutdown: CancellationToken) {
        let this = self.clone();
        tasks.supervise("search index", move || {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            async move {
                loop {
                    match this.rebuild().await {
                        Ok(count) => tracing::debug!(documents = count, "Search index built."),
                        Err(err) => tracing::warn!(error = %err, "The search index could not be built; retrying."),
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = this.changed.notified() => {}
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                }
            }
        });
    }

    /// Answers a search within the caller's grants.
    pub async fn search(&self, actor: &Actor, query: &SearchQuery) -> Result<SearchResults, AppError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(AppError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}")).for_field("limit"));
        }
        let parsed = parse(&query.q).map_err(|e| AppError::bad_request(e.to_string()).for_field("q"))?;
        let mut under = Vec::new();
        for (clause, _) in &parsed.clauses {
            if let Clause::Filter(Filter::Under(path)) = clause {
                under.push(match self.model.asset_by_path(actor, path).await {
                    Ok(asset) => Some(asset.summary.id),
                    Err(err) if err.code == ErrorKind::NotFound => None,
                    Err(err) => return Err(err),
                });
            }
        }
        let (index, scope) = (self.index.clone(), actor.scope.clone());
        let answer = tokio::task::spawn_blocking(move || index.search(&parsed, &under, &scope, limit as usize))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "A search stopped.");
                AppError::internal()
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "The search index could not be read.");
                AppError::internal()
            })?;
        let found = answer.map_err(|unsupported| AppError::bad_request(unsupported.0).for_field("q"))?;
        Ok(SearchResults {
            q: query.q.clone(),
            total: found.total,
            hits: found.hits,
            facets: found.facets,
        })
    }
}

//! The search service: builds the index's documents from the metadata database and the current values from the
//! time-series store, rebuilds them when the change feed reports a change (on every instance, each with its own
//! index), takes new current values as they are published, and answers searches within the caller's grants.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use app::alarms::{AlarmRule, AlarmView, RuleKind};
use app::auth::Actor;
use app::error::{AppError, ErrorKind};
use app::search::{SearchKind, SearchQuery, SearchResults};
use app::services::{ModelService, SearchService};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::alarms::{AlarmFacts, PendingAlarms};
use super::index::{IndexDoc, IndexedAttribute, SearchIndex, PROGRESS_EVERY};
use super::query::{parse, Clause, Filter};
use super::values::PendingValues;
use crate::alarms::{alarm_view, AlarmStore, ListFilter};
use crate::assets::{Model, ModelStore, TemplateRow};
use crate::changes::Change;
use crate::charts::{dashboards::DashboardRow, DashboardStore};
use crate::devices::{DeviceRow, DeviceStore};
use crate::locks::MutexExt;
use crate::timeseries::{registry::SeriesRegistry, SeriesId, SharedStore};

/// Results per search unless asked otherwise, and the most a search returns.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// The deepest page a search serves: past it, a narrower query serves better.
const MAX_OFFSET: u32 = 10_000;
/// The deepest tree walked (as the model's own walks).
const MAX_DEPTH: usize = 1000;
/// Changes arriving within this long of each other are indexed together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Series whose latest readings are asked for at once when the index is built.
const LATEST_CHUNK: usize = 1_000;

/// Where the search service reads what it indexes.
pub struct SearchSources {
    pub models: Arc<dyn ModelStore>,
    pub devices: Arc<dyn DeviceStore>,
    pub model: Arc<Model>,
    pub series: Arc<dyn SeriesRegistry>,
    pub store: SharedStore,
    /// Current values published by every instance.
    pub values: Arc<PendingValues>,
    pub alarms: Arc<dyn AlarmStore>,
    pub dashboards: Arc<dyn DashboardStore>,
    /// Alarm events from every instance.
    pub alarm_events: Arc<PendingAlarms>,
}

/// What the change feed reported that the index has not taken yet.
#[derive(Debug, Default)]
struct Pending {
    /// Everything is rebuilt (at start, and for changes whose reach is wide: templates, model imports, the unknown).
    everything: bool,
    /// Assets whose subtree is written again (created, renamed, moved, relabelled or deleted).
    subtrees: HashSet<i64>,
    devices: HashSet<i64>,
    dashboards: HashSet<i64>,
}

impl Pending {
    fn take(&mut self, change: &Change) {
        match (change.target_type.as_str(), change.target()) {
            ("asset", Some(id)) => {
                self.subtrees.insert(id);
            }
            ("device", Some(id)) => {
                self.devices.insert(id);
            }
            ("dashboard", Some(id)) => {
                self.dashboards.insert(id);
            }
            // A template reaches every asset of it and of the templates based on it; `gantry search reindex`
            // asks for everything; so does a change to the model that names no asset.
            ("template" | "search" | "model", _) | ("asset" | "device" | "dashboard", None) => self.everything = true,
            // Users, tokens, webhooks, alarms (they arrive as alarm events) and grants (applied when searching)
            // are not in the index.
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        !self.everything && self.subtrees.is_empty() && self.devices.is_empty() && self.dashboards.is_empty()
    }
}

/// What [`Search::documents`] makes.
enum Scope<'a> {
    Everything,
    /// These assets' subtrees (with the devices on them) and these devices.
    Part {
        subtrees: &'a HashSet<i64>,
        devices: &'a HashSet<i64>,
    },
}

/// Documents made from the metadata database, and the asked-for devices that are gone.
struct Documents {
    docs: Vec<IndexDoc>,
    gone: Vec<(SearchKind, i64)>,
}

/// How far a full build of the index is (what `/readyz` shows while one runs).
#[derive(Debug, Default)]
pub struct BuildProgress {
    building: AtomicBool,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl BuildProgress {
    /// Documents written and to write, while a full build runs.
    pub fn building(&self) -> Option<(usize, usize)> {
        self.building
            .load(Ordering::Relaxed)
            .then(|| (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed)))
    }
}

pub struct Search {
    index: Arc<SearchIndex>,
    sources: SearchSources,
    progress: Arc<BuildProgress>,
    pending: Mutex<Pending>,
    changed: Notify,
    /// Which asset and attribute each series is (a series never changes owner).
    owners: Mutex<HashMap<SeriesId, (i64, String)>>,
}

impl Search {
    pub fn new(index: SearchIndex, sources: SearchSources) -> Search {
        Search {
            index: Arc::new(index),
            sources,
            progress: Arc::default(),
            pending: Mutex::new(Pending {
                everything: true,
                ..Pending::default()
            }),
            changed: Notify::new(),
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// The change feed reported these changes: what they touched is written again shortly.
    pub fn changed(&self, changes: &[Change]) {
        let mut pending = self.pending.lock_unpoisoned();
        for change in changes {
            pending.take(change);
        }
        if !pending.is_empty() {
            self.changed.notify_one();
        }
    }

    /// The documents of everything searchable, or of some assets' subtrees and some devices, from the metadata
    /// database; with the devices that are gone. A part takes a few queries whatever its size, so
    /// a burst of changes costs about what one change does.
    async fn documents(&self, scope: Scope<'_>) -> Result<Documents, AppError> {
        let sources = &self.sources;
        let error = |e: crate::error::ApiError| e.into_app_error();
        let templates = sources.models.list_templates().await.map_err(error)?;
        let everything = matches!(scope, Scope::Everything);
        let mut gone = Vec::new();
        // A part's paths and lineages begin with its roots' (and its devices' assets') ancestors.
        let (assets, above, devices) = match scope {
            Scope::Everything => (
                sources.models.all_assets().await.map_err(error)?,
                Vec::new(),
                sources.devices.list_devices().await.map_err(error)?,
            ),
            Scope::Part {
                subtrees,
                devices: changed,
            } => {
                let mut roots: Vec<i64> = subtrees.iter().copied().collect();
                roots.sort_unstable();
                let assets = if roots.is_empty() {
                    Vec::new()
                } else {
                    sources.models.subtrees(&roots).await.map_err(error)?
                };
                let inside: HashSet<i64> = assets.iter().map(|a| a.id).collect();
                let mut devices = if roots.is_empty() && changed.is_empty() {
                    Vec::new()
                } else {
                    sources.devices.list_devices().await.map_err(error)?
                };
                let present: HashSet<i64> = devices.iter().map(|d| d.id).collect();
                gone.extend(
                    changed
                        .iter()
                        .filter(|id| !present.contains(id))
                        .map(|id| (SearchKind::Device, *id)),
                );
                devices.retain(|d| inside.contains(&d.asset_id) || changed.contains(&d.id));
                let mut ask: Vec<i64> = roots.iter().filter(|root| inside.contains(root)).copied().collect();
                ask.extend(devices.iter().map(|d| d.asset_id).filter(|id| !inside.contains(id)));
                let above = if ask.is_empty() {
                    Vec::new()
                } else {
                    sources.models.ancestors(&ask).await.map_err(error)?
                };
                (assets, above, devices)
            }
        };
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
        // Time-series attributes, the nearest template's definition winning (as the model resolves them).
        let series_attributes = |chain: &[&TemplateRow]| -> Vec<IndexedAttribute> {
            let mut attributes: Vec<IndexedAttribute> = Vec::new();
            for attribute in chain.iter().flat_map(|t| &t.attributes) {
                if attribute.is_series && !attributes.iter().any(|a| a.name == attribute.name) {
                    attributes.push(IndexedAttribute {
                        name: attribute.name.clone(),
                        unit: attribute.unit.clone(),
                        latest: None,
                    });
                }
            }
            attributes
        };
        let categories = |chain: &[&TemplateRow]| -> Vec<String> {
            let mut all: Vec<String> = chain.iter().flat_map(|t| t.categories.iter().cloned()).collect();
            all.sort();
            all.dedup();
            all
        };
        // Paths and lineages, parents first whatever order the rows come in.
        let parents: HashMap<i64, (Option<i64>, &str)> = above
            .iter()
            .map(|(id, parent, name)| (*id, (*parent, name.as_str())))
            .chain(assets.iter().map(|a| (a.id, (a.parent_id, a.name.as_str()))))
            .collect();
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
        // What an asset takes from its template is the same for every asset of it: worked out once per template.
        let mut of_template: HashMap<Option<i64>, IndexDoc> = HashMap::new();
        let mut docs = Vec::with_capacity(assets.len() + devices.len() + templates.len());
        for asset in &assets {
            // A parent already seen gives its lineage and path; otherwise the tree is walked.
            let (lineage, path) = match asset.parent_id.and_then(|parent| lineages.get(&parent)) {
                Some((above, above_path)) => {
                    let mut lineage = Vec::with_capacity(above.len() + 1);
                    lineage.extend_from_slice(above);
                    lineage.push(asset.id);
                    (lineage, format!("{above_path}/{}", asset.name))
                }
                None => lineage_of(asset.id),
            };
            let template = of_template.entry(asset.template_id).or_insert_with(|| {
                let chain = chain(asset.template_id);
                IndexDoc {
                    templates: chain.iter().map(|t| t.name.clone()).collect(),
                    categories: categories(&chain),
                    text: described("", &chain),
                    attributes: series_attributes(&chain),
                    ..IndexDoc::default()
                }
            });
            docs.push(IndexDoc {
                kind: Some(SearchKind::Asset),
                id: asset.id,
                name: asset.name.clone(),
                path: Some(path.clone()),
                lineage: lineage.clone(),
                templates: template.templates.clone(),
                categories: template.categories.clone(),
                labels: asset.labels.clone(),
                text: format!("{}{}", asset.description, template.text),
                attributes: template.attributes.clone(),
                ..IndexDoc::default()
            });
            lineages.insert(asset.id, (lineage, path));
        }
        for device in &devices {
            let (lineage, path) = lineages
                .get(&device.asset_id)
                .cloned()
                .unwrap_or_else(|| lineage_of(device.asset_id));
            docs.push(device_doc(device, lineage, path));
        }
        if everything {
            // A subtree's update keeps the alarms its documents had; a full build reads the open ones.
            let now = crate::metadata::now_ms();
            let filter = ListFilter {
                state: app::alarms::StateFilter::Open,
                severities: Vec::new(),
                from: None,
                to: None,
                now,
                cap: i64::MAX,
            };
            let open = sources.alarms.list(&filter).await.map_err(error)?;
            let at = asset_positions(&docs);
            for row in open {
                let facts = AlarmFacts::from_view(&alarm_view(row, String::new()), now);
                if let Some(&i) = at.get(&facts.asset_id) {
                    docs[i].alarms.push(facts.alarm.clone());
                    let alarm = alarm_doc(&facts, &docs[i]);
                    docs.push(alarm);
                }
            }
        }
        if everything {
            let dashboards = sources.dashboards.all().await.map_err(error)?;
            docs.extend(self.dashboard_docs(&dashboards).await?);
        }
        for template in templates.iter().filter(|_| everything) {
            let chain = chain(Some(template.id));
            let doc = IndexDoc {
                kind: Some(SearchKind::Template),
                id: template.id,
                name: template.name.clone(),
                templates: chain.iter().map(|t| t.name.clone()).collect(),
                categories: categories(&chain),
                text: described(&template.description, &chain[..1]),
                ..IndexDoc::default()
            };
            for attribute in &template.attributes {
                for rule in &attribute.alarms {
                    docs.push(rule_doc(&attribute.name, attribute.unit.as_deref(), rule, &doc));
                }
            }
            docs.push(doc);
        }
        // Assets' own rules, for every asset written.
        let written: Vec<i64> = assets.iter().map(|a| a.id).collect();
        let own_rules = if everything {
            sources.alarms.rules_of_assets(None).await.map_err(error)?
        } else if written.is_empty() {
            Vec::new()
        } else {
            sources.alarms.rules_of_assets(Some(&written)).await.map_err(error)?
        };
        let at = asset_positions(&docs);
        for (asset, rules) in own_rules {
            let Some(&i) = at.get(&asset) else { continue };
            for own in rules {
                // The unit of the attribute as the asset's template names it.
                let unit = docs[i]
                    .attributes
                    .iter()
                    .find(|a| a.name == own.attribute)
                    .and_then(|a| a.unit.clone());
                let doc = rule_doc(&own.attribute, unit.as_deref(), &own.rule, &docs[i]);
                docs.push(doc);
            }
        }
        Ok(Documents { docs, gone })
    }

    /// The documents of these dashboards, with their panels' assets' lineages.
    async fn dashboard_docs(&self, rows: &[DashboardRow]) -> Result<Vec<IndexDoc>, AppError> {
        let mut lineages: HashMap<String, Vec<i64>> = HashMap::new();
        for row in rows {
            for path in row.spec.panels.iter().flat_map(|panel| panel.content.asset_paths()) {
                if lineages.contains_key(path) {
                    continue;
                }
                let lineage = self.sources.model.lineage_at(path).await?;
                if !lineage.is_empty() {
                    lineages.insert(path.to_string(), lineage.into_iter().map(|(id, _)| id).collect());
                }
            }
        }
        Ok(rows.iter().map(|row| dashboard_doc(row, &lineages)).collect())
    }

    /// Fills in the latest reading of every asset's series.
    async fn current_values(&self, docs: &mut [IndexDoc]) -> Result<(), AppError> {
        let series = self.sources.series.all().await.map_err(|e| e.into_app_error())?;
        let at = asset_positions(docs);
        for chunk in series.chunks(LATEST_CHUNK) {
            let ids: Vec<SeriesId> = chunk.iter().map(|s| s.id).collect();
            let latest = self.sources.store.latest(&ids).await.map_err(AppError::from)?;
            for row in chunk {
                if let (Some(point), Some(&i)) = (latest.get(&row.id), at.get(&row.asset_id)) {
                    docs[i].take_value(&row.attribute, point.ts, point.value);
                }
            }
        }
        let mut owners = self.owners.lock_unpoisoned();
        owners.extend(series.into_iter().map(|row| (row.id, (row.asset_id, row.attribute))));
        Ok(())
    }

    /// Takes the current values that arrived since the last call into the assets' documents.
    async fn take_values(&self) -> Result<usize, AppError> {
        let arrived = self.sources.values.take();
        if arrived.is_empty() {
            return Ok(0);
        }
        let unknown: Vec<SeriesId> = {
            let owners = self.owners.lock_unpoisoned();
            arrived.keys().filter(|id| !owners.contains_key(id)).copied().collect()
        };
        for id in unknown {
            if let Some(owner) = self.sources.series.owner(id).await.map_err(|e| e.into_app_error())? {
                self.owners.lock_unpoisoned().insert(id, owner);
            }
        }
        let mut by_asset: HashMap<i64, Vec<(String, i64, f64)>> = HashMap::new();
        {
            let owners = self.owners.lock_unpoisoned();
            for (series, (ts, value)) in arrived {
                if let Some((asset, attribute)) = owners.get(&series) {
                    by_asset.entry(*asset).or_default().push((attribute.clone(), ts, value));
                }
            }
        }
        let index = self.index.clone();
        blocking(move || {
            let ids: Vec<i64> = by_asset.keys().copied().collect();
            let mut changed = Vec::new();
            for mut doc in index.get(SearchKind::Asset, &ids)? {
                let mut any = false;
                for (attribute, ts, value) in by_asset.get(&doc.id).into_iter().flatten() {
                    any |= doc.take_value(attribute, *ts, *value);
                }
                if any {
                    changed.push(doc);
                }
            }
            if !changed.is_empty() {
                index.upsert(&changed, &[], &[])?;
            }
            Ok(changed.len())
        })
        .await
    }

    /// Writes again the subtrees, devices and dashboards the change feed reported; returns how many documents it
    /// wrote.
    async fn update(&self, pending: &Pending) -> Result<usize, AppError> {
        let started = std::time::Instant::now();
        let Documents { mut docs, mut gone } = self
            .documents(Scope::Part {
                subtrees: &pending.subtrees,
                devices: &pending.devices,
            })
            .await?;
        let mut dashboards = Vec::new();
        for &id in &pending.dashboards {
            match self
                .sources
                .dashboards
                .by_id(id)
                .await
                .map_err(|e| e.into_app_error())?
            {
                Some(row) => dashboards.push(row),
                None => gone.push((SearchKind::Dashboard, id)),
            }
        }
        docs.extend(self.dashboard_docs(&dashboards).await?);
        let read_ms = started.elapsed().as_millis() as u64;
        let replaced: Vec<i64> = pending.subtrees.iter().copied().collect();
        let changes = pending.subtrees.len() + pending.devices.len() + pending.dashboards.len();
        let index = self.index.clone();
        blocking(move || {
            // Current values stay as they were: the model changed, not the readings.
            let ids: Vec<i64> = docs
                .iter()
                .filter(|d| d.kind == Some(SearchKind::Asset))
                .map(|d| d.id)
                .collect();
            let before: HashMap<i64, IndexDoc> = index
                .get(SearchKind::Asset, &ids)?
                .into_iter()
                .map(|doc| (doc.id, doc))
                .collect();
            // So do its open alarms, whose documents follow the asset's new path.
            let mut alarms = Vec::new();
            for doc in docs.iter_mut() {
                if let Some(old) = before.get(&doc.id).filter(|_| doc.kind == Some(SearchKind::Asset)) {
                    for attribute in &old.attributes {
                        if let Some((ts, value)) = attribute.latest {
                            doc.take_value(&attribute.name, ts, value);
                        }
                    }
                    doc.alarms = old.alarms.clone();
                    let ids: Vec<i64> = old.alarms.iter().map(|a| a.id).collect();
                    for mut alarm in index.get(SearchKind::Alarm, &ids)? {
                        alarm.path = doc.path.clone();
                        alarm.lineage = doc.lineage.clone();
                        alarms.push(alarm);
                    }
                }
            }
            docs.extend(alarms);
            // Everything under a changed asset is written afresh: what is no longer there (a deleted asset, a
            // rule taken away) goes.
            index.upsert(&docs, &gone, &replaced)?;
            Ok(docs.len())
        })
        .await
        .inspect(|written| {
            tracing::debug!(
                changes,
                documents = written,
                read_ms,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Changes are indexed."
            )
        })
    }

    /// Takes the alarm events that arrived since the last call into the alarms' and their assets' documents.
    async fn take_alarms(&self) -> Result<usize, AppError> {
        let views: Vec<AlarmView> = self
            .sources
            .alarm_events
            .take()
            .into_values()
            .map(|(_, view)| view)
            .collect();
        if views.is_empty() {
            return Ok(0);
        }
        let index = self.index.clone();
        let now = crate::metadata::now_ms();
        blocking(move || {
            let facts: Vec<AlarmFacts> = views.iter().map(|view| AlarmFacts::from_view(view, now)).collect();
            let mut asset_ids: Vec<i64> = facts.iter().map(|f| f.asset_id).collect();
            asset_ids.sort_unstable();
            asset_ids.dedup();
            let mut assets: HashMap<i64, IndexDoc> = index
                .get(SearchKind::Asset, &asset_ids)?
                .into_iter()
                .map(|doc| (doc.id, doc))
                .collect();
            let (mut docs, mut gone) = (Vec::new(), Vec::new());
            for facts in &facts {
                let Some(asset) = assets.get_mut(&facts.asset_id) else {
                    continue;
                };
                asset.alarms.retain(|alarm| alarm.id != facts.alarm.id);
                if facts.is_open() {
                    asset.alarms.push(facts.alarm.clone());
                    docs.push(alarm_doc(facts, asset));
                } else {
                    gone.push((SearchKind::Alarm, facts.alarm.id));
                }
            }
            docs.extend(assets.into_values());
            index.upsert(&docs, &gone, &[])?;
            Ok(docs.len())
        })
        .await
    }

    /// Rebuilds the whole index from the metadata database and the latest readings; returns how many documents it
    /// holds.
    pub async fn rebuild(&self) -> Result<usize, AppError> {
        let progress = self.progress.clone();
        progress.done.store(0, Ordering::Relaxed);
        progress.building.store(true, Ordering::Relaxed);
        let built = self
            .rebuild_with(Arc::new(move |done, total| {
                progress.done.store(done, Ordering::Relaxed);
                progress.total.store(total, Ordering::Relaxed);
                tracing::info!(done, total, "Building the search index.");
            }))
            .await;
        self.progress.building.store(false, Ordering::Relaxed);
        built
    }

    /// How far a full build is, for `/readyz`.
    pub fn progress(&self) -> Arc<BuildProgress> {
        self.progress.clone()
    }

    /// [`Search::rebuild`], telling `progress` how many documents of how many are written as it goes.
    pub async fn rebuild_with(&self, progress: Arc<dyn Fn(usize, usize) + Send + Sync>) -> Result<usize, AppError> {
        let started = std::time::Instant::now();
        let mut docs = self.documents(Scope::Everything).await?.docs;
        let read_ms = started.elapsed().as_millis() as u64;
        self.current_values(&mut docs).await?;
        let values_ms = started.elapsed().as_millis() as u64 - read_ms;
        let index = self.index.clone();
        let count = docs.len();
        // A small index is built at once; only a long build says how far it is.
        let report = move |done: usize, total: usize| {
            if total > PROGRESS_EVERY {
                progress(done, total)
            }
        };
        blocking(move || index.replace_all(&docs, &report)).await?;
        metrics::gauge!("gantry_search_documents").set(count as f64);
        tracing::info!(
            documents = count,
            read_ms,
            values_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "The search index is built."
        );
        Ok(count)
    }

    /// Builds the index at start, then again after each burst of changes, and takes current values as they
    /// arrive (supervised).
    pub fn spawn(self: &Arc<Self>, tasks: &crate::tasks::Tasks, shutdown: CancellationToken) {
        let this = self.clone();
        tasks.supervise("search index", move || {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            async move {
                loop {
                    let pending = std::mem::take(&mut *this.pending.lock_unpoisoned());
                    let written = if pending.everything {
                        this.rebuild().await
                    } else if !pending.is_empty() {
                        this.update(&pending).await
                    } else {
                        Ok(0)
                    };
                    if let Err(err) = written {
                        tracing::warn!(error = %err, "The search index could not be written; retrying.");
                        // Put the work back, with what arrived meanwhile.
                        let mut again = this.pending.lock_unpoisoned();
                        again.everything |= pending.everything;
                        again.subtrees.extend(pending.subtrees);
                        again.devices.extend(pending.devices);
                        again.dashboards.extend(pending.dashboards);
                        this.changed.notify_one();
                    }
                    if let Err(err) = this.take_values().await {
                        tracing::warn!(error = %err, "Current values could not be indexed; retrying.");
                    }
                    if let Err(err) = this.take_alarms().await {
                        tracing::warn!(error = %err, "Alarms could not be indexed; retrying.");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = this.changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                        _ = this.sources.values.arrived() => {}
                        _ = this.sources.alarm_events.arrived() => {}
                    }
                }
            }
        });
    }
}

#[async_trait::async_trait]
impl SearchService for Search {
    /// Answers a search within the caller's grants.
    async fn search(&self, actor: &Actor, query: &SearchQuery) -> Result<SearchResults, AppError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(AppError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}")).for_field("limit"));
        }
        let offset = match &query.cursor {
            None => 0,
            Some(cursor) => cursor
                .parse::<u32>()
                .ok()
                .filter(|offset| *offset <= MAX_OFFSET)
                .ok_or_else(|| {
                    AppError::bad_request("`cursor` is not one a search answered (pass `next_cursor` as it came)")
                        .for_field("cursor")
                })?,
        };
        let mut parsed = parse(&query.q).map_err(|e| AppError::bad_request(e.to_string()).for_field("q"))?;
        if let Some(kinds) = &query.kind {
            let kind = parse(&format!("kind:{kinds}")).map_err(|e| {
                let message = e.message.replace("`kind:` needs a value", "`kind` needs a value");
                AppError::bad_request(message).for_field("kind")
            })?;
            parsed.clauses.extend(kind.clauses);
        }
        let facets = query.facets.unwrap_or(true);
        let mut under = Vec::new();
        for (clause, _) in &parsed.clauses {
            if let Clause::Filter(Filter::Under(path)) = clause {
                under.push(match self.sources.model.asset_by_path(actor, path).await {
                    Ok(asset) => Some(asset.summary.id),
                    Err(err) if err.code == ErrorKind::NotFound => None,
                    Err(err) => return Err(err),
                });
            }
        }
        let (index, scope, viewer) = (self.index.clone(), actor.scope.clone(), actor.user_id);
        let found = blocking(move || {
            index.search(
                &parsed,
                &under,
                (&scope, viewer),
                facets,
                offset as usize,
                limit as usize,
            )
        })
        .await?;
        let next = u64::from(offset) + found.hits.len() as u64;
        Ok(SearchResults {
            q: query.q.clone(),
            total: found.total,
            next_cursor: (next < found.total && next <= u64::from(MAX_OFFSET)).then(|| next.to_string()),
            hits: found.hits,
            facets: found.facets,
        })
    }
}

/// Where each asset's document is in `docs`, by asset id.
fn asset_positions(docs: &[IndexDoc]) -> HashMap<i64, usize> {
    docs.iter()
        .enumerate()
        .filter(|(_, doc)| doc.kind == Some(SearchKind::Asset))
        .map(|(i, doc)| (doc.id, i))
        .collect()
}

/// A device's document: found by its name, description and field names, and by its asset's path.
fn device_doc(device: &DeviceRow, lineage: Vec<i64>, path: String) -> IndexDoc {
    let mut text = device.description.clone();
    for field in device.field_map.keys() {
        text.push(' ');
        text.push_str(field);
    }
    IndexDoc {
        kind: Some(SearchKind::Device),
        id: device.id,
        name: device.name.clone(),
        path: (!path.is_empty()).then_some(path),
        lineage,
        text,
        ..IndexDoc::default()
    }
}

/// A dashboard's document: found by its name and its panels' titles, and by its panels' assets' paths by those
/// who may see all of them (`lineages`: each existing path's lineage); by its owner alone unless shared.
fn dashboard_doc(row: &DashboardRow, lineages: &HashMap<String, Vec<i64>>) -> IndexDoc {
    let titles: Vec<&str> = row.spec.panels.iter().map(|panel| panel.title.as_str()).collect();
    let mut panel_paths: Vec<String> = Vec::new();
    let mut panel_scope: Option<Vec<i64>> = None;
    for path in row.spec.panels.iter().flat_map(|panel| panel.content.asset_paths()) {
        let Some(lineage) = lineages.get(path) else { continue };
        if !panel_paths.iter().any(|p| p == path) {
            panel_paths.push(path.to_string());
        }
        // The lowest asset common to every panel: the longest lineage they all begin with.
        let common = panel_scope.get_or_insert_with(|| lineage.clone());
        let shared = common.iter().zip(lineage).take_while(|(a, b)| a == b).count();
        common.truncate(shared);
    }
    let panel_scope = panel_scope.unwrap_or_default();
    IndexDoc {
        kind: Some(SearchKind::Dashboard),
        id: row.id,
        name: row.spec.name.clone(),
        text: titles.join(" "),
        // A private dashboard made by the command line has no owner: nobody finds it but through the list.
        owner: (!row.spec.shared).then_some(row.owner_id.unwrap_or(0)),
        // Panels on several sites have no common asset: only callers who see the whole plant find them by path.
        panel_paths,
        panel_scope,
        ..IndexDoc::default()
    }
}

/// An open alarm's document: found by its rule, message and attribute, on its asset's path, within the same grants.
fn alarm_doc(facts: &AlarmFacts, asset: &IndexDoc) -> IndexDoc {
    IndexDoc {
        kind: Some(SearchKind::Alarm),
        id: facts.alarm.id,
        name: facts.rule.clone(),
        path: asset.path.clone(),
        lineage: asset.lineage.clone(),
        text: format!("{} {}", facts.message, facts.attribute),
        alarms: vec![facts.alarm.clone()],
        ..IndexDoc::default()
    }
}

/// An alarm rule's document: a template's (`owner` none: found by everyone, opens the templates) or one asset's own
/// (on the asset's path, within the same grants); found by its name, attribute, unit, condition and message, and by
/// `severity:`.
fn rule_doc(attribute: &str, unit: Option<&str>, rule: &AlarmRule, owner: &IndexDoc) -> IndexDoc {
    let condition = match &rule.condition {
        RuleKind::Limit { level, .. } => format!("{} limit", level.as_str()),
        RuleKind::RateOfChange { .. } => "rate of change".to_string(),
        RuleKind::NoData { .. } => "no data".to_string(),
        RuleKind::State { .. } => "state".to_string(),
    };
    // The message's own words, not its placeholders.
    let message = rule.message.as_deref().unwrap_or(rule.default_message());
    let words: Vec<&str> = message.split_whitespace().filter(|word| !word.contains('{')).collect();
    IndexDoc {
        kind: Some(SearchKind::Rule),
        id: owner.id,
        name: format!("{} ({attribute})", rule.name),
        path: owner.path.clone(),
        lineage: owner.lineage.clone(),
        templates: owner.templates.clone(),
        text: format!(
            "{attribute} {} {condition} {}",
            unit.unwrap_or_default(),
            words.join(" ")
        ),
        severity: Some(rule.severity.as_str().to_string()),
        ..IndexDoc::default()
    }
}

/// Runs index work off the async threads; a failure is logged and answers 500.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Search index work stopped.");
            AppError::internal()
        })?
        .map_err(|e| {
            tracing::error!(error = %e, "The search index could not be read or written.");
            AppError::internal()
        })
}

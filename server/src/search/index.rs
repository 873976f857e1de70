//! The search index: one Tantivy index per instance, on local disk (`<data_dir>/search`), holding a document per
//! asset, device, template, dashboard, open alarm and alarm rule. [`SearchIndex::replace_all`] writes a whole new
//! generation of documents and [`SearchIndex::upsert`] replaces some; queries read the last committed state, so a
//! search never sees a half-written one. Each document keeps its [`IndexDoc`] whole (stored), so a change to part of
//! it (a new current value) rewrites it without a trip to the metadata database.

use std::{collections::BTreeMap, ops::Bound, path::Path, sync::Mutex};

use app::auth::Scope;
use app::search::{FacetCount, Facets, SearchHit, SearchKind};
use tantivy::{
    collector::{Count, FacetCollector, TopDocs},
    query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery},
    schema::{
        Facet, FacetOptions, Field, IndexRecordOption, JsonObjectOptions, OwnedValue, Schema, Value, INDEXED, STORED,
        STRING, TEXT,
    },
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

use super::query::{Clause, Comparison, Condition, Filter, ParsedQuery};

/// What the index holds of one thing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexDoc {
    pub kind: Option<SearchKind>,
    pub id: i64,
    pub name: String,
    /// The full asset path (of the asset, or of a device's asset).
    pub path: Option<String>,
    /// The asset's ancestors and itself, root first (a device's asset's): what grants and `under:` match.
    pub lineage: Vec<i64>,
    /// The template and the templates it is based on, nearest first (a template: itself and its bases).
    pub templates: Vec<String>,
    pub categories: Vec<String>,
    pub labels: Vec<String>,
    /// Everything else worth finding it by: description, attribute names and units, a device's field names.
    pub text: String,
    /// An asset's time-series attributes, with their current values: what attribute conditions compare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<IndexedAttribute>,
    /// Who may find a dashboard: its owner only, or everyone when shared (none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
    /// An asset's open alarms (an alarm's document: the alarm itself): what `has:alarm`, `severity:` and `state:`
    /// match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<IndexedAlarm>,
    /// An alarm rule's severity (what `severity:` matches of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// A dashboard's panels' asset paths: words that find it for those who may see all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub panel_paths: Vec<String>,
    /// The lineage of the lowest asset above (or at) every panel's asset: a caller whose grant is one of these may
    /// see them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub panel_scope: Vec<i64>,
}

/// An open alarm occurrence: active, or returned but not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexedAlarm {
    pub id: i64,
    pub severity: String,
    pub active: bool,
    pub acknowledged: bool,
    /// Shelved or out of service.
    pub shelved: bool,
}

/// The states `state:` takes.
pub const ALARM_STATES: [&str; 5] = ["active", "returned", "unacknowledged", "acknowledged", "shelved"];

impl IndexedAlarm {
    /// The states it is in, as `state:` names them.
    pub fn states(&self) -> Vec<&'static str> {
        let mut states = vec![
            if self.active { "active" } else { "returned" },
            if self.acknowledged {
                "acknowledged"
            } else {
                "unacknowledged"
            },
        ];
        if self.shelved {
            states.push("shelved");
        }
        states
    }
}

/// A time-series attribute of an asset and its latest reading, if any.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedAttribute {
    pub name: String,
    pub unit: Option<String>,
    /// The latest reading: its time (ms UTC) and value.
    pub latest: Option<(i64, f64)>,
}

impl IndexDoc {
    /// Takes a reading of the attribute `name` as its current value unless a later one is already known; says
    /// whether the document changed.
    pub fn take_value(&mut self, name: &str, ts: i64, value: f64) -> bool {
        match self.attributes.iter_mut().find(|a| a.name == name) {
            Some(attribute) if attribute.latest.is_some_and(|(at, _)| at > ts) => false,
            Some(attribute) => {
                let changed = attribute.latest != Some((ts, value));
                attribute.latest = Some((ts, value));
                changed
            }
            None => {
                // A series the template does not (or no longer) name still has a current value worth finding.
                self.attributes.push(IndexedAttribute {
                    name: name.to_string(),
                    unit: None,
                    latest: Some((ts, value)),
                });
                true
            }
        }
    }
}

/// The key of an attribute in the index: its name's words joined by `_` (`"Outlet Temperature"` and
/// `outlet_temperature` are one attribute to a search).
pub fn attribute_key(name: &str) -> String {
    super::query::words_of(name).join("_")
}

/// A unit as a search compares it: lowercase, without a leading degree sign (`°C` and `c` match).
pub fn unit_key(unit: &str) -> String {
    unit.trim().trim_start_matches('°').to_lowercase()
}

#[derive(Clone, Copy)]
struct Fields {
    /// `kind:id`, unique: what an update replaces.
    key: Field,
    /// The whole [`IndexDoc`] as JSON (stored only).
    doc: Field,
    kind: Field,
    id: Field,
    name: Field,
    path: Field,
    text: Field,
    template: Field,
    category: Field,
    label: Field,
    lineage: Field,
    facets: Field,
    /// Current values by attribute key (a fast JSON field: conditions are range queries over it).
    values: Field,
    /// `attribute key=unit` of each attribute with a unit, for conditions that name one.
    unit_of: Field,
    /// Of each open alarm: `open`, `severity=…`, `state=…` and `severity&state`.
    alarm: Field,
    /// A dashboard's panels' asset paths, and the lineage of their lowest common asset.
    panels: Field,
    panel_scope: Field,
    /// Of a dashboard: `all` when shared, else `user:<owner id>`.
    audience: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        key: builder.add_text_field("key", STRING),
        doc: builder.add_text_field("doc", STORED),
        kind: builder.add_text_field("kind", STRING),
        id: builder.add_i64_field("id", INDEXED),
        name: builder.add_text_field("name", TEXT),
        path: builder.add_text_field("path", TEXT),
        text: builder.add_text_field("text", TEXT),
        template: builder.add_text_field("template", STRING),
        category: builder.add_text_field("category", STRING),
        label: builder.add_text_field("label", STRING),
        lineage: builder.add_i64_field("lineage", INDEXED),
        facets: builder.add_facet_field("facets", FacetOptions::default()),
        values: builder.add_json_field("values", JsonObjectOptions::default().set_fast(None)),
        unit_of: builder.add_text_field("unit_of", STRING),
        alarm: builder.add_text_field("alarm", STRING),
        audience: builder.add_text_field("audience", STRING),
        panels: builder.add_text_field("panels", TEXT),
        panel_scope: builder.add_i64_field("panel_scope", INDEXED),
    };
    (builder.build(), fields)
}

/// How often a full build reports its progress, in documents.
pub const PROGRESS_EVERY: usize = 50_000;

/// The index is held by another process (a running `gantry serve` on the same data dir).
#[derive(Debug, thiserror::Error)]
#[error("the search index in {0} is in use by a running gantry serve")]
pub struct IndexBusy(pub std::path::PathBuf);

fn index_error(err: tantivy::TantivyError) -> anyhow::Error {
    anyhow::anyhow!("search index: {err}")
}

pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

/// What a search found: the best results, their total and facet counts.
pub struct Found {
    pub total: u64,
    pub hits: Vec<SearchHit>,
    pub facets: Facets,
}

/// The audience term of a dashboard owned by `owner` (none: shared, and a template's rule).
fn audience(owner: Option<i64>) -> String {
    owner.map_or("all".to_string(), |id| format!("user:{id}"))
}

fn key_of(kind: SearchKind, id: i64) -> String {
    format!("{}:{id}", kind.as_str())
}

/// A document's key: its kind and id, and for a rule (whose id is its template's or asset's) also whose it is and
/// its name, which is unique there.
fn doc_key(kind: SearchKind, doc: &IndexDoc) -> String {
    match kind {
        SearchKind::Rule => {
            let owner = if doc.lineage.is_empty() { "template" } else { "asset" };
            format!("rule:{owner}:{}:{}", doc.id, doc.name)
        }
        _ => key_of(kind, doc.id),
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, or creates it; an index that cannot be opened (corrupt, or of another schema) is
    /// removed and created afresh: it is rebuilt from the metadata database either way.
    pub fn open(dir: &Path) -> anyhow::Result<SearchIndex> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir)?;
        let index = match Index::open_in_dir(dir) {
            Ok(index) if index.schema() == schema => index,
            Ok(_) => {
                tracing::info!(dir = %dir.display(), "The search index has an older layout; it is built afresh.");
                Self::recreate(dir, &schema)?
            }
            Err(tantivy::TantivyError::OpenDirectoryError(_)) | Err(tantivy::TantivyError::OpenReadError(_))
                if std::fs::read_dir(dir)?.next().is_none() =>
            {
                Index::create_in_dir(dir, schema.clone()).map_err(index_error)?
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "The search index cannot be read; it is built afresh.");
                Self::recreate(dir, &schema)?
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        let writer = index.writer(64 * 1024 * 1024).map_err(|err| match err {
            tantivy::TantivyError::LockFailure(..) => anyhow::Error::new(IndexBusy(dir.to_path_buf())),
            err => index_error(err),
        })?;
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    fn recreate(dir: &Path, schema: &Schema) -> anyhow::Result<Index> {
        std::fs::remove_dir_all(dir)?;
        std::fs::create_dir_all(dir)?;
        Index::create_in_dir(dir, schema.clone()).map_err(index_error)
    }

    /// The Tantivy document of `doc` (none for a document without a kind).
    fn document(&self, doc: &IndexDoc) -> anyhow::Result<Option<TantivyDocument>> {
        let f = self.fields;
        let Some(kind) = doc.kind else { return Ok(None) };
        let mut d = TantivyDocument::default();
        d.add_text(f.key, doc_key(kind, doc));
        d.add_text(f.doc, serde_json::to_string(doc)?);
        d.add_text(f.kind, kind.as_str());
        d.add_i64(f.id, doc.id);
        d.add_text(f.name, &doc.name);
        if let Some(path) = &doc.path {
            d.add_text(f.path, path);
        }
        d.add_text(f.text, &doc.text);
        for template in &doc.templates {
            d.add_text(f.template, template.to_lowercase());
        }
        if let Some(own) = doc.templates.first() {
            // A template's own facet is its base, if any; an asset's is its template.
            let facet_template = if kind == SearchKind::Template {
                doc.templates.get(1)
            } else {
                Some(own)
            };
            if let Some(template) = facet_template {
                d.add_facet(f.facets, Facet::from_path(["template", template.as_str()]));
            }
        }
        for category in &doc.categories {
            d.add_text(f.category, category.to_lowercase());
            d.add_facet(f.facets, Facet::from_path(["category", category.as_str()]));
        }
        for label in &doc.labels {
            d.add_text(f.label, label.to_lowercase());
        }
        for id in &doc.lineage {
            d.add_i64(f.lineage, *id);
        }
        d.add_facet(f.facets, Facet::from_path(["kind", kind.as_str()]));
        if kind == SearchKind::Dashboard || (kind == SearchKind::Rule && doc.lineage.is_empty()) {
            // A template's rule, like a shared dashboard, is for everyone.
            d.add_text(f.audience, audience(doc.owner));
        }
        // The site: the top of the path, with its id so that a facet never names a site the caller may not see.
        if let (Some(site), Some(name)) = (
            doc.lineage.first(),
            doc.path.as_deref().and_then(|p| p.split('/').nth(1)),
        ) {
            d.add_facet(f.facets, Facet::from_path(["site", format!("{site}:{name}").as_str()]));
        }
        let mut values = BTreeMap::new();
        for attribute in &doc.attributes {
            let key = attribute_key(&attribute.name);
            if key.is_empty() {
                continue;
            }
            if let Some(unit) = &attribute.unit {
                d.add_text(f.unit_of, format!("{key}={}", unit_key(unit)));
            }
            if let Some((_, value)) = attribute.latest.filter(|(_, v)| v.is_finite()) {
                values.insert(key, OwnedValue::F64(value));
            }
        }
        if !values.is_empty() {
            d.add_object(f.values, values);
        }
        for path in &doc.panel_paths {
            d.add_text(f.panels, path);
        }
        for id in &doc.panel_scope {
            d.add_i64(f.panel_scope, *id);
        }
        if let Some(severity) = &doc.severity {
            d.add_text(f.alarm, format!("severity={severity}"));
        }
        let mut alarm_states = std::collections::BTreeSet::new();
        for alarm in &doc.alarms {
            d.add_text(f.alarm, "open");
            d.add_text(f.alarm, format!("severity={}", alarm.severity));
            for state in alarm.states() {
                d.add_text(f.alarm, format!("state={state}"));
                d.add_text(f.alarm, format!("{}&{state}", alarm.severity));
                alarm_states.insert(state);
            }
        }
        for state in alarm_states {
            d.add_facet(f.facets, Facet::from_path(["alarm", state]));
        }
        Ok(Some(d))
    }

    /// Replaces every document with `docs`, in one commit, telling `progress` how many are written every
    /// [`PROGRESS_EVERY`].
    pub fn replace_all(&self, docs: &[IndexDoc], progress: &dyn Fn(usize, usize)) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_all_documents().map_err(index_error)?;
        for (done, doc) in docs.iter().enumerate() {
            if let Some(d) = self.document(doc)? {
                writer.add_document(d).map_err(index_error)?;
            }
            if done % PROGRESS_EVERY == 0 {
                progress(done, docs.len());
            }
        }
        progress(docs.len(), docs.len());
        writer.commit().map_err(index_error)?;
        drop(writer);
        self.reader.reload().map_err(index_error)?;
        Ok(())
    }

    /// Removes `gone` and the documents at or below the assets `subtrees` (assets, the devices, alarms and rules on
    /// them), then writes `docs` in place of the documents of the same key, in one commit.
    pub fn upsert(&self, docs: &[IndexDoc], gone: &[(SearchKind, i64)], subtrees: &[i64]) -> anyhow::Result<()> {
        let f = self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for root in subtrees {
            writer.delete_term(Term::from_field_i64(f.lineage, *root));
        }
        for (kind, id) in gone {
            writer.delete_term(Term::from_field_text(f.key, &key_of(*kind, *id)));
        }
        for doc in docs {
            let (Some(kind), Some(d)) = (doc.kind, self.document(doc)?) else {
                continue;
            };
            writer.delete_term(Term::from_field_text(f.key, &doc_key(kind, doc)));
            writer.add_document(d).map_err(index_error)?;
        }
        writer.commit().map_err(index_error)?;
        drop(writer);
        self.reader.reload().map_err(index_error)?;
        Ok(())
    }

    /// The stored documents of these ids of one kind (those the index has).
    pub fn get(&self, kind: SearchKind, ids: &[i64]) -> anyhow::Result<Vec<IndexDoc>> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut docs = Vec::with_capacity(ids.len());
        for id in ids {
            let query = TermQuery::new(
                Term::from_field_text(f.key, &key_of(kind, *id)),
                IndexRecordOption::Basic,
            );
            if let Some((_, address)) = searcher
                .search(&query, &TopDocs::with_limit(1))
                .map_err(index_error)?
                .pop()
            {
                docs.push(self.stored(&searcher.doc(address).map_err(index_error)?)?);
            }
        }
        Ok(docs)
    }

    fn stored(&self, doc: &TantivyDocument) -> anyhow::Result<IndexDoc> {
        let json = doc
            .get_first(self.fields.doc)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        Ok(serde_json::from_str(json)?)
    }

    /// How many documents the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A word in a name, path or text (exact over prefix over one typo), or in a dashboard's panels' paths for
    /// a caller who may see all of the panels' assets.
    fn word_query(&self, word: &str, scope: &Scope) -> Box<dyn Query> {
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let in_panels = FuzzyTermQuery::new_prefix(Term::from_field_text(f.panels, word), 0, true);
        should.push((Occur::Should, self.panels_within(Box::new(in_panels), scope)));
        for (field, weight) in [(f.name, 4.0), (f.path, 2.0), (f.text, 1.0)] {
            let term = Term::from_field_text(field, word);
            // Exact words rank over prefixes, and prefixes over typos.
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                    weight * 2.0,
                )),
            ));
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
                    weight,
                )),
            ));
            // One typo in a word of four letters or more, in names and paths: not in numbers (a tag number one
            // digit off is another machine, and every number in a large plant is one digit off a thousand others),
            // nor in the descriptive text, where a typo finds more noise than help.
            if word.chars().count() >= 4 && word.chars().any(char::is_alphabetic) && field != f.text {
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(FuzzyTermQuery::new_prefix(term, 1, true)),
                        weight * 0.5,
                    )),
                ));
            }
        }
        Box::new(BooleanQuery::new(should))
    }

    fn phrase_query(&self, words: &[String], scope: &Scope) -> Box<dyn Query> {
        let f = self.fields;
        let phrase = |field: Field| PhraseQuery::new(words.iter().map(|w| Term::from_field_text(field, w)).collect());
        let mut should: Vec<(Occur, Box<dyn Query>)> = [(f.name, 4.0), (f.path, 2.0), (f.text, 1.0)]
            .into_iter()
            .map(|(field, weight)| {
                let phrase: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(phrase(field)), weight));
                (Occur::Should, phrase)
            })
            .collect();
        should.push((Occur::Should, self.panels_within(Box::new(phrase(f.panels)), scope)));
        Box::new(BooleanQuery::new(should))
    }

    /// `found` in dashboards' panels' paths, only where the caller may see every panel's asset (within a grant at
    /// or above their lowest common asset): a dashboard never gives away what lies outside the caller's grants.
    fn panels_within(&self, found: Box<dyn Query>, scope: &Scope) -> Box<dyn Query> {
        match scope {
            Scope::Everything => found,
            Scope::Subtrees(roots) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, found),
                (
                    Occur::Must,
                    Self::any_of(
                        roots
                            .iter()
                            .map(|id| Term::from_field_i64(self.fields.panel_scope, *id)),
                    ),
                ),
            ])),
        }
    }

    /// Assets whose attribute's current value satisfies the condition (and whose unit is the one it names).
    fn condition_query(&self, condition: &Condition) -> Box<dyn Query> {
        let f = self.fields;
        let key = attribute_key(&condition.attribute);
        let bound = |value: f64| {
            let mut term = Term::from_field_json_path(f.values, &key, false);
            term.append_type_and_fast_value(value);
            term
        };
        let value = condition.value;
        let (lower, upper) = match condition.comparison {
            Comparison::Less => (Bound::Unbounded, Bound::Excluded(bound(value))),
            Comparison::LessOrEqual => (Bound::Unbounded, Bound::Included(bound(value))),
            Comparison::Equal => (Bound::Included(bound(value)), Bound::Included(bound(value))),
            Comparison::GreaterOrEqual => (Bound::Included(bound(value)), Bound::Unbounded),
            Comparison::Greater => (Bound::Excluded(bound(value)), Bound::Unbounded),
        };
        let range: Box<dyn Query> = Box::new(RangeQuery::new(lower, upper));
        match &condition.unit {
            None => range,
            Some(unit) => {
                let unit: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.unit_of, &format!("{key}={}", unit_key(unit))),
                    IndexRecordOption::Basic,
                ));
                Box::new(BooleanQuery::new(vec![(Occur::Must, range), (Occur::Must, unit)]))
            }
        }
    }

    fn alarm_term(&self, term: String) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(self.fields.alarm, &term),
            IndexRecordOption::Basic,
        ))
    }

    fn any_of(values: impl IntoIterator<Item = Term>) -> Box<dyn Query> {
        Box::new(BooleanQuery::new(
            values
                .into_iter()
                .map(|term| {
                    let query: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                    (Occur::Should, query)
                })
                .collect(),
        ))
    }

    /// The query of a parsed search, with `under` filters already resolved to asset ids by the caller.
    fn build(&self, parsed: &ParsedQuery, under: &[Option<i64>], scope: &Scope, viewer: i64) -> Box<dyn Query> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut under = under.iter();
        let wanted = |pick: fn(&Filter) -> Option<&String>| -> Vec<&String> {
            parsed
                .clauses
                .iter()
                .filter(|(_, negated)| !negated)
                .filter_map(|(clause, _)| match clause {
                    Clause::Filter(filter) => pick(filter),
                    _ => None,
                })
                .collect()
        };
        let severities = wanted(|f| match f {
            Filter::Severity(s) => Some(s),
            _ => None,
        });
        let states = wanted(|f| match f {
            Filter::State(s) => Some(s),
            _ => None,
        });
        for (clause, negated) in &parsed.clauses {
            let query: Box<dyn Query> = match clause {
                Clause::Word(word) => self.word_query(word, scope),
                Clause::Phrase(words) => self.phrase_query(words, scope),
                Clause::Filter(Filter::Template(name)) => Box::new(TermQuery::new(
                    Term::from_field_text(f.template, &name.to_lowercase()),
                    IndexRecordOption::Basic,
                )),
                Clause::Filter(Filter::Category(name)) => Box::new(TermQuery::new(
                    Term::from_field_text(f.category, name),
                    IndexRecordOption::Basic,
                )),
                Clause::Filter(Filter::Label(name)) => Box::new(TermQuery::new(
                    Term::from_field_text(f.label, name),
                    IndexRecordOption::Basic,
                )),
                Clause::Filter(Filter::Kind(kinds)) => {
                    Self::any_of(kinds.iter().map(|k| Term::from_field_text(f.kind, k.as_str())))
                }
                Clause::Filter(Filter::Under(_)) => match under.next().copied().flatten() {
                    Some(id) => Box::new(TermQuery::new(
                        Term::from_field_i64(f.lineage, id),
                        IndexRecordOption::Basic,
                    )),
                    // No such path (or none the caller may see): nothing is under it.
                    None => Box::new(BooleanQuery::new(Vec::new())),
                },
                Clause::Filter(Filter::HasAlarm) => self.alarm_term("open".into()),
                // One alarm in both: `severity:critical state:active` is an active critical alarm, not a critical
                // alarm beside some other active one.
                Clause::Filter(Filter::Severity(severity)) if !negated && !states.is_empty() => Self::any_of(
                    states
                        .iter()
                        .map(|state| Term::from_field_text(f.alarm, &format!("{severity}&{state}"))),
                ),
                Clause::Filter(Filter::State(_)) if !negated && !severities.is_empty() => continue,
                Clause::Filter(Filter::Severity(severity)) => self.alarm_term(format!("severity={severity}")),
                Clause::Filter(Filter::State(state)) => self.alarm_term(format!("state={state}")),
                Clause::Condition(condition) => self.condition_query(condition),
            };
            clauses.push((if *negated { Occur::MustNot } else { Occur::Must }, query));
        }
        if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        if let Scope::Subtrees(roots) = scope {
            // Within the grants: what lies under a granted asset, and templates, their rules and dashboards, which
            // are not in the tree (a dashboard's panels hide what lies outside the viewer's grants).
            let visible = Self::any_of(roots.iter().map(|id| Term::from_field_i64(f.lineage, *id)).chain([
                Term::from_field_text(f.kind, SearchKind::Template.as_str()),
                Term::from_field_text(f.audience, &audience(None)),
                Term::from_field_text(f.kind, SearchKind::Dashboard.as_str()),
            ]));
            clauses.push((Occur::Must, visible));
        }
        // Dashboards: the shared ones and one's own.
        let someone_elses: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (
                Occur::Must,
                Self::any_of([Term::from_field_text(f.kind, SearchKind::Dashboard.as_str())]),
            ),
            (
                Occur::MustNot,
                Self::any_of([
                    Term::from_field_text(f.audience, &audience(None)),
                    Term::from_field_text(f.audience, &audience(Some(viewer))),
                ]),
            ),
        ]));
        clauses.push((Occur::MustNot, someone_elses));
        Box::new(BooleanQuery::new(clauses))
    }

    /// The best results of a query within `scope` (`limit` of them after the first `offset`), their total and
    /// facet counts.
    pub fn search(
        &self,
        parsed: &ParsedQuery,
        under: &[Option<i64>],
        (scope, viewer): (&Scope, i64),
        with_facets: bool,
        offset: usize,
        limit: usize,
    ) -> anyhow::Result<Found> {
        let query = self.build(parsed, under, scope, viewer);
        let searcher = self.reader.searcher();
        let top_docs = TopDocs::with_limit(limit.max(1)).and_offset(offset);
        let (top, total, counts) = if with_facets {
            let mut facets = FacetCollector::for_field("facets");
            for facet in ["/kind", "/template", "/category", "/alarm", "/site"] {
                facets.add_facet(facet);
            }
            let (top, total, counts) = searcher
                .search(&query, &(top_docs, Count, facets))
                .map_err(index_error)?;
            (top, total, Some(counts))
        } else {
            let (top, total) = searcher.search(&query, &(top_docs, Count)).map_err(index_error)?;
            (top, total, None)
        };
        let mut hits = Vec::with_capacity(top.len());
        for (_, address) in top.into_iter().take(limit) {
            let doc = self.stored(&searcher.doc(address).map_err(index_error)?)?;
            let Some(kind) = doc.kind else { continue };
            let id = doc.id;
            let href = match kind {
                SearchKind::Asset => format!("/assets/{id}"),
                SearchKind::Device => "/devices".to_string(),
                SearchKind::Template => "/templates".to_string(),
                SearchKind::Dashboard => format!("/dashboards/{id}"),
                SearchKind::Alarm => format!("/alarms/{id}"),
                SearchKind::Rule if doc.lineage.is_empty() => "/templates".to_string(),
                SearchKind::Rule => format!("/assets/{id}"),
            };
            hits.push(SearchHit {
                kind,
                id,
                path: doc.path.as_ref().map(|path| scope.shown_path(&doc.lineage, path)),
                // An asset's template, or a template's base.
                template: doc.templates.get(usize::from(kind == SearchKind::Template)).cloned(),
                name: doc.name,
                href,
            });
        }
        let count = |root: &str| -> Vec<FacetCount> {
            let Some(counts) = &counts else {
                return Vec::new();
            };
            let mut values: Vec<FacetCount> = counts
                .get(root)
                .map(|(facet, count)| FacetCount {
                    value: facet.to_path().last().map(|s| s.to_string()).unwrap_or_default(),
                    count,
                })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values
        };
        let facets = Facets {
            kind: count("/kind"),
            template: count("/template"),
            category: count("/category"),
            alarm_state: count("/alarm"),
            // Only sites the caller may see by name: a grant below a site shows its results, not the site's name.
            site: count("/site")
                .into_iter()
                .filter_map(|facet| {
                    let (id, name) = facet.value.split_once(':')?;
                    let id: i64 = id.parse().ok()?;
                    let visible = match scope {
                        Scope::Everything => true,
                        Scope::Subtrees(roots) => roots.contains(&id),
                    };
                    visible.then(|| FacetCount {
                        value: name.to_string(),
                        count: facet.count,
                    })
                })
                .collect(),
        };
        Ok(Found {
            total: total as u64,
            hits,
            facets,
        })
    }
}

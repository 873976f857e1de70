//! The search index: one Tantivy index per instance, on local disk (`<data_dir>/search`), holding a document per
//! asset, device and template. [`SearchIndex::replace_all`] writes a whole new generation of documents; queries
//! read the last committed one, so a search never sees a half-built index.

use std::{path::Path, sync::Mutex};

use app::auth::Scope;
use app::search::{FacetCount, Facets, SearchHit, SearchKind};
use tantivy::{
    collector::{Count, FacetCollector, TopDocs},
    query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, TermQuery},
    schema::{Facet, FacetOptions, Field, IndexRecordOption, Schema, Value, INDEXED, STORED, STRING, TEXT},
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

use super::query::{Clause, Filter, ParsedQuery};

/// What the index holds of one thing.
#[derive(Debug, Clone, Default, PartialEq)]
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
}

#[derive(Clone, Copy)]
struct Fields {
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
    shown_template: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        kind: builder.add_text_field("kind", STRING | STORED),
        id: builder.add_i64_field("id", INDEXED | STORED),
        name: builder.add_text_field("name", TEXT | STORED),
        path: builder.add_text_field("path", TEXT | STORED),
        text: builder.add_text_field("text", TEXT),
        template: builder.add_text_field("template", STRING),
        category: builder.add_text_field("category", STRING),
        label: builder.add_text_field("label", STRING),
        lineage: builder.add_i64_field("lineage", INDEXED | STORED),
        facets: builder.add_facet_field("facets", FacetOptions::default()),
        shown_template: builder.add_text_field("shown_template", STORED),
    };
    (builder.build(), fields)
}

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

/// Why a search cannot be answered as asked (a 400 for the caller).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

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
        let writer = index.writer(64 * 1024 * 1024).map_err(index_error)?;
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

    /// Replaces every document with `docs`, in one commit.
    pub fn replace_all(&self, docs: &[IndexDoc]) -> anyhow::Result<()> {
        let f = self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_all_documents().map_err(index_error)?;
        for doc in docs {
            let Some(kind) = doc.kind else { continue };
            let mut d = TantivyDocument::default();
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
                d.add_text(f.shown_template, own);
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
            writer.add_document(d).map_err(index_error)?;
        }
        writer.commit().map_err(index_error)?;
        drop(writer);
        self.reader.reload().map_err(index_error)?;
        Ok(())
    }

    /// How many documents the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn word_query(&self, word: &str) -> Box<dyn Query> {
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
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
            if word.chars().count() >= 4 {
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

    fn phrase_query(&self, words: &[String]) -> Box<dyn Query> {
        let f = self.fields;
        let should = [(f.name, 4.0), (f.path, 2.0), (f.text, 1.0)]
            .into_iter()
            .map(|(field, weight)| {
                let terms = words.iter().map(|w| Term::from_field_text(field, w)).collect();
                let phrase: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(PhraseQuery::new(terms)), weight));
                (Occur::Should, phrase)
            })
            .collect();
        Box::new(BooleanQuery::new(should))
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
    fn build(&self, parsed: &ParsedQuery, under: &[Option<i64>], scope: &Scope) -> Result<Box<dyn Query>, Unsupported> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut under = under.iter();
        for (clause, negated) in &parsed.clauses {
            let query: Box<dyn Query> = match clause {
                Clause::Word(word) => self.word_query(word),
                Clause::Phrase(words) => self.phrase_query(words),
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
                Clause::Filter(Filter::Severity(_) | Filter::State(_) | Filter::HasAlarm) => {
                    return Err(Unsupported(
                        "alarms are not in the search index yet: `severity:`, `state:` and `has:alarm` come with them"
                            .into(),
                    ))
                }
                Clause::Condition(_) => {
                    return Err(Unsupported(
                        "attribute conditions need current values, which are not in the search index yet".into(),
                    ))
                }
            };
            clauses.push((if *negated { Occur::MustNot } else { Occur::Must }, query));
        }
        if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        if let Scope::Subtrees(roots) = scope {
            // Within the grants: what lies under a granted asset, and templates, which everyone may read.
            let visible = Self::any_of(
                roots
                    .iter()
                    .map(|id| Term::from_field_i64(f.lineage, *id))
                    .chain([Term::from_field_text(f.kind, SearchKind::Template.as_str())]),
            );
            clauses.push((Occur::Must, visible));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// The best `limit` results of a query within `scope`, their total and facet counts.
    pub fn search(
        &self,
        parsed: &ParsedQuery,
        under: &[Option<i64>],
        scope: &Scope,
        limit: usize,
    ) -> anyhow::Result<Result<Found, Unsupported>> {
        let query = match self.build(parsed, under, scope) {
            Ok(query) => query,
            Err(unsupported) => return Ok(Err(unsupported)),
        };
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut facets = FacetCollector::for_field("facets");
        for facet in ["/kind", "/template", "/category"] {
            facets.add_facet(facet);
        }
        let (top, total, counts) = searcher
            .search(&query, &(TopDocs::with_limit(limit.max(1)), Count, facets))
            .map_err(index_error)?;
        let mut hits = Vec::with_capacity(top.len());
        for (_, address) in top.into_iter().take(limit) {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            let text = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).map(str::to_string);
            let Some(kind) = text(f.kind).and_then(|k| SearchKind::ALL.into_iter().find(|x| x.as_str() == k)) else {
                continue;
            };
            let id = doc.get_first(f.id).and_then(|v| v.as_i64()).unwrap_or_default();
            let lineage: Vec<i64> = doc.get_all(f.lineage).filter_map(|v| v.as_i64()).collect();
            let path = text(f.path).map(|path| scope.shown_path(&lineage, &path));
            let href = match kind {
                SearchKind::Asset => format!("/assets/{id}"),
                SearchKind::Device => "/devices".to_string(),
                SearchKind::Template => "/templates".to_string(),
                SearchKind::Dashboard => format!("/dashboards/{id}"),
                SearchKind::Alarm => format!("/alarms/{id}"),
            };
            hits.push(SearchHit {
                kind,
                id,
                name: text(f.name).unwrap_or_default(),
                path,
                template: text(f.shown_template),
                href,
            });
        }
        let count = |root: &str| -> Vec<FacetCount> {
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
        };
        Ok(Ok(Found {
            total: total as u64,
            hits,
            facets,
        }))
    }
}

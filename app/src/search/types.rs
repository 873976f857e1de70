//! The search types the browser and the server share: what a search finds, grouped by kind, with facet counts.

use serde::{Deserialize, Serialize};

/// What a search result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum SearchKind {
    Asset,
    Device,
    Template,
    Dashboard,
    Alarm,
}

impl SearchKind {
    pub const ALL: [SearchKind; 5] = [
        SearchKind::Asset,
        SearchKind::Device,
        SearchKind::Template,
        SearchKind::Dashboard,
        SearchKind::Alarm,
    ];

    /// The name the query language and the API use (`kind:asset`).
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Asset => "asset",
            SearchKind::Device => "device",
            SearchKind::Template => "template",
            SearchKind::Dashboard => "dashboard",
            SearchKind::Alarm => "alarm",
        }
    }
}

/// The query of `GET /api/v1/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The search box's text (see the README's query language).
    #[serde(default)]
    pub q: String,
    /// At most this many results (default 20, up to 100).
    pub limit: Option<u32>,
}

/// One thing a search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub kind: SearchKind,
    pub id: i64,
    pub name: String,
    /// The asset path (of the asset, or of the device's asset), as the caller may see it.
    pub path: Option<String>,
    /// The template of an asset, or the base of a template.
    pub template: Option<String>,
    /// Where the result opens in the UI.
    pub href: String,
}

/// How many results a facet value has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Counts of the results by kind, template and category, over what the caller may see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Facets {
    pub kind: Vec<FacetCount>,
    pub template: Vec<FacetCount>,
    pub category: Vec<FacetCount>,
}

/// What a search answers: the best results first, their total, and facet counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub q: String,
    pub total: u64,
    pub hits: Vec<SearchHit>,
    pub facets: Facets,
}

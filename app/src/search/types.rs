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
    /// An alarm rule: a template's (for every asset of it) or one asset's own.
    Rule,
}

impl SearchKind {
    pub const ALL: [SearchKind; 6] = [
        SearchKind::Asset,
        SearchKind::Device,
        SearchKind::Template,
        SearchKind::Dashboard,
        SearchKind::Alarm,
        SearchKind::Rule,
    ];

    /// The name the query language and the API use (`kind:asset`).
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Asset => "asset",
            SearchKind::Device => "device",
            SearchKind::Template => "template",
            SearchKind::Dashboard => "dashboard",
            SearchKind::Alarm => "alarm",
            SearchKind::Rule => "rule",
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
    /// Only results of these kinds (`asset|device`), as `kind:` in the query.
    pub kind: Option<String>,
    /// Whether to count facets (default true; suggestions as you type need none, and skip their cost).
    pub facets: Option<bool>,
    /// At most this many results (default 20, up to 100).
    pub limit: Option<u32>,
    /// Where the next page starts: the `next_cursor` of the previous answer.
    pub cursor: Option<String>,
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

/// Counts of the results by kind, template, category and the states of their open alarms, over what the caller
/// may see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Facets {
    pub kind: Vec<FacetCount>,
    pub template: Vec<FacetCount>,
    pub category: Vec<FacetCount>,
    /// Results with an open alarm in each state (`active`, `unacknowledged`, …; `state:` narrows to one).
    pub alarm_state: Vec<FacetCount>,
    /// Results by site (the top of their path; `under:"/Site"` narrows to one), for the sites the caller may see.
    pub site: Vec<FacetCount>,
}

/// What a search answers: the best results first, their total, and facet counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub q: String,
    pub total: u64,
    pub hits: Vec<SearchHit>,
    pub facets: Facets,
    /// The `cursor` of the next page, when there are more results.
    pub next_cursor: Option<String>,
}

/// The words of a query worth highlighting in its results: its bare and quoted words, not filters, negated words,
/// conditions' numbers and units, or comparison signs. (The server parses the query; this only marks text.)
pub fn highlighted_words(q: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut after_comparison = 0;
    for token in q.split_whitespace() {
        if token.starts_with(['<', '>', '=']) {
            // The number, and maybe a unit, follow.
            after_comparison = 2;
            continue;
        }
        if after_comparison > 0 {
            after_comparison -= 1;
            continue;
        }
        if token.starts_with('-') || token.contains(':') {
            continue;
        }
        words.extend(
            token
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase),
        );
    }
    words
}

/// Whether `word` (lowercase) matches a query word as the index does: the same word, a prefix of it, or one typo
/// away in words of four letters or more that are not numbers.
fn matches_word(word: &str, query: &str) -> bool {
    if word.starts_with(query) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (word.chars().collect(), query.chars().collect());
    // As the index: typos only in words of four letters or more, never in numbers.
    if b.len() < 4 || !b.iter().any(|c| c.is_alphabetic()) {
        return false;
    }
    // One edit away from the query, or from a prefix of the word as long as the query.
    let one_edit = |a: &[char], b: &[char]| -> bool {
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        if long.len() - short.len() > 1 {
            return false;
        }
        let start = short.iter().zip(long).take_while(|(x, y)| x == y).count();
        if short.len() == long.len() {
            // One substitution, or two neighbours swapped.
            short[start + 1..] == long[start + 1..]
                || (start + 1 < short.len()
                    && short[start] == long[start + 1]
                    && short[start + 1] == long[start]
                    && short[start + 2..] == long[start + 2..])
        } else {
            short[start..] == long[start + 1..]
        }
    };
    (a.len() + 1 >= b.len() && one_edit(&a, &b))
        || [b.len() - 1, b.len(), b.len() + 1]
            .into_iter()
            .any(|n| n < a.len() && one_edit(&a[..n], &b))
}

/// `text` cut into runs, each marked when it is a word that one of `words` matches.
pub fn highlight(text: &str, words: &[String]) -> Vec<(String, bool)> {
    let mut runs: Vec<(String, bool)> = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let alphanumeric = first.is_alphanumeric();
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric() != alphanumeric)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        let marked = alphanumeric && {
            let lower = run.to_lowercase();
            words.iter().any(|w| matches_word(&lower, w))
        };
        match runs.last_mut() {
            Some((last, false)) if !marked => last.push_str(run),
            _ => runs.push((run.to_string(), marked)),
        }
        rest = tail;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(text: &str, q: &str) -> Vec<String> {
        highlight(text, &highlighted_words(q))
            .into_iter()
            .filter(|(_, marked)| *marked)
            .map(|(run, _)| run)
            .collect()
    }

    #[test]
    fn marks_words_prefixes_and_one_typo() {
        assert_eq!(marked("Pump 7", "pump 7 north"), vec!["Pump", "7"]);
        assert_eq!(marked("Pumphouse heater", "pump"), vec!["Pumphouse"]);
        assert_eq!(marked("Compressor 1", "compresor"), vec!["Compressor"]);
        assert_eq!(marked("Pump 7", "pmup"), vec!["Pump"]);
        // Short words need an exact prefix; filters, negations and conditions mark nothing.
        assert!(marked("Pump 7", "pmu").is_empty());
        assert!(marked("Pump 7", "template:pump -pump \"speed\" > 7 rpm").is_empty());
        assert_eq!(
            marked("Outlet temperature", "\"outlet temperature\" > 100"),
            vec!["Outlet", "temperature"]
        );
    }

    #[test]
    fn keeps_the_text_whole() {
        let runs = highlight("/North Plant/Line 2", &highlighted_words("line"));
        let joined: String = runs.iter().map(|(run, _)| run.as_str()).collect();
        assert_eq!(joined, "/North Plant/Line 2");
        assert_eq!(runs.iter().filter(|(_, m)| *m).count(), 1);
    }
}

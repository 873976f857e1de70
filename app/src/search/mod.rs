//! The search area: the types the browser and the server share, the search box in the header (suggestions as
//! you type, `/` to focus it, arrows and Enter to open), and the Search page (results by kind, facets that
//! narrow the query, highlighted words, pages; the query kept in the URL).

mod types;

pub use types::*;

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{EmptyState, Page};

/// Suggestions the header box shows.
const SUGGESTIONS: u32 = 8;
/// Results per page of the Search page.
const PAGE: u32 = 20;

/// Searches everything the caller may see (the REST API's `GET /api/v1/search`).
#[server(prefix = "/_fn", endpoint = "search", client = CsrfClient)]
pub async fn run_search(
    q: String,
    facets: bool,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<SearchResults, AppError> {
    let actor = crate::services::current_actor()?;
    let query = SearchQuery {
        q,
        kind: None,
        facets: Some(facets),
        limit,
        cursor,
    };
    crate::services::services()?.search.search(&actor, &query).await
}

/// The Search page's address for a query (and a page of it).
pub fn search_href(q: &str, cursor: Option<&str>) -> String {
    let mut href = format!("/search?q={}", encode(q));
    if let Some(cursor) = cursor {
        href.push_str("&cursor=");
        href.push_str(&encode(cursor));
    }
    href
}

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `q` narrowed by a facet's filter (its value quoted when it has spaces), unless it already has it. A site
/// narrows with `under:"/Site"`.
pub fn narrowed(q: &str, key: &str, value: &str) -> String {
    let site;
    let (key, value) = if key == "site" {
        site = format!("/{value}");
        ("under", site.as_str())
    } else {
        (key, value)
    };
    let filter = if value.contains(char::is_whitespace) {
        format!("{key}:\"{value}\"")
    } else {
        format!("{key}:{value}")
    };
    if q.split_whitespace().any(|part| part == filter) {
        return q.to_string();
    }
    format!("{} {filter}", q.trim()).trim().to_string()
}

/// A text with the query's words marked.
#[component]
fn Highlighted(text: String, words: StoredValue<Vec<String>>) -> impl IntoView {
    highlight(&text, &words.read_value())
        .into_iter()
        .map(|(run, marked)| {
            if marked {
                view! { <mark>{run}</mark> }.into_any()
            } else {
                run.into_any()
            }
        })
        .collect_view()
}

fn kind_heading(kind: SearchKind) -> &'static str {
    match kind {
        SearchKind::Asset => "Assets",
        SearchKind::Device => "Devices",
        SearchKind::Template => "Templates",
        SearchKind::Dashboard => "Dashboards",
        SearchKind::Alarm => "Alarms",
        SearchKind::Rule => "Alarm rules",
    }
}

/// The search box in the header: results as you type (after two characters), arrows to choose, Enter to open,
/// Escape to close; `/` anywhere else on the page focuses it.
#[component]
pub fn HeaderSearch() -> impl IntoView {
    let text = RwSignal::new(String::new());
    let open = RwSignal::new(false);
    let active = RwSignal::new(0usize);
    let input = NodeRef::<leptos::html::Input>::new();
    let suggestions = LocalResource::new(move || {
        let q = text.get();
        async move {
            if q.trim().chars().count() < 2 {
                return None;
            }
            Some(run_search(q, false, Some(SUGGESTIONS), None).await)
        }
    });
    // What Enter opens: each suggestion, then "all results".
    let targets = move || -> Vec<String> {
        let mut targets: Vec<String> = match suggestions.get() {
            Some(Some(Ok(results))) => results.hits.into_iter().map(|hit| hit.href).collect(),
            _ => Vec::new(),
        };
        targets.push(search_href(&text.get_untracked(), None));
        targets
    };
    let navigate = use_navigate();
    let go = Callback::new(move |href: String| {
        open.set(false);
        text.set(String::new());
        if let Some(input) = input.get_untracked() {
            let _ = input.blur();
        }
        navigate(&href, Default::default());
    });
    let on_keydown = {
        move |ev: leptos::ev::KeyboardEvent| {
            let count = targets().len();
            match ev.key().as_str() {
                "ArrowDown" => {
                    ev.prevent_default();
                    open.set(true);
                    active.update(|i| *i = (*i + 1) % count);
                }
                "ArrowUp" => {
                    ev.prevent_default();
                    active.update(|i| *i = (*i + count - 1) % count);
                }
                "Escape" => open.set(false),
                "Enter" => {
                    ev.prevent_default();
                    if text.get_untracked().trim().chars().count() >= 2 {
                        let at = active.get_untracked().min(count - 1);
                        if let Some(href) = targets().into_iter().nth(at) {
                            go.run(href);
                        }
                    }
                }
                _ => {}
            }
        }
    };
    // `/` focuses the box unless one is typing in a field already.
    let shortcut = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() != "/" || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let typing = document().active_element().is_some_and(|element| {
            matches!(element.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || element.get_attribute("contenteditable").is_some()
        });
        if !typing {
            if let Some(input) = input.get_untracked() {
                ev.prevent_default();
                let _ = input.focus();
            }
        }
    });
    on_cleanup(move || shortcut.remove());

    let option_id = |i: usize| format!("search-option-{i}");
    let showing = move || open.get() && suggestions.get().flatten().is_some();
    view! {
        <form class="header-search" role="search" method="get" action="/search"
            on:submit=move |ev| ev.prevent_default()>
            <label for="header-search-input" class="visually-hidden">"Search"</label>
            <input id="header-search-input" type="search" name="q" node_ref=input autocomplete="off"
                placeholder="Search  ( / )"
                role="combobox" aria-autocomplete="list" aria-controls="search-suggestions"
                aria-expanded=move || showing().to_string()
                aria-activedescendant=move || showing().then(|| option_id(active.get()))
                prop:value=move || text.get()
                on:input=move |ev| {
                    text.set(event_target_value(&ev));
                    active.set(0);
                    open.set(true);
                }
                on:focus=move |_| open.set(true)
                on:blur=move |_| open.set(false)
                on:keydown=on_keydown/>
            // Always in the page (the combobox names it), hidden while there is nothing to show.
            <ul id="search-suggestions" role="listbox" aria-label="Suggestions" class="search-suggestions"
                hidden=move || !showing()>
                    {move || {
                        let results = suggestions.get().flatten();
                        let words = StoredValue::new(highlighted_words(&text.get_untracked()));
                        let (hits, error) = match results {
                            Some(Ok(results)) => (results.hits, None),
                            Some(Err(err)) => (Vec::new(), Some(err.message)),
                            None => (Vec::new(), None),
                        };
                        let count = hits.len();
                        let all = search_href(&text.get_untracked(), None);
                        let rows = hits.into_iter().enumerate().map(|(i, hit)| {
                            let href = hit.href.clone();
                            view! {
                                <li role="option" id=option_id(i) class="suggestion"
                                    aria-selected=move || (active.get() == i).to_string()
                                    on:mousedown=move |ev| { ev.prevent_default(); go.run(href.clone()); }>
                                    <span class="kind">{hit.kind.as_str()}</span>
                                    <span class="name"><Highlighted text=hit.name words/></span>
                                    {hit.path.map(|path| view! { <span class="path muted">{path}</span> })}
                                </li>
                            }
                        }).collect_view();
                        view! {
                            {error.map(|message| view! { <li class="error" role="alert">{message}</li> })}
                            {(count == 0).then(|| view! { <li class="muted" role="presentation">"Nothing found yet"</li> })}
                            {rows}
                            <li role="option" id=option_id(count) class="suggestion all"
                                aria-selected=move || (active.get() == count).to_string()
                                on:mousedown=move |ev| { ev.prevent_default(); go.run(all.clone()); }>
                                "All results…"
                            </li>
                        }
                    }}
            </ul>
        </form>
    }
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let cursor = move || query.read().get("cursor");
    let results = Resource::new(
        move || (q(), cursor()),
        |(q, cursor)| async move {
            if q.trim().is_empty() {
                return None;
            }
            Some(run_search(q, true, Some(PAGE), cursor).await)
        },
    );
    view! {
        <Page title="Search">
            <form method="get" action="/search" class="form inline-form" role="search" id="search-form">
                <label>
                    "Search"
                    <input name="q" id="search-q" type="search" size="50" value=q
                        placeholder="pump 7 north, template:Pump, \"outlet temperature\" > 100"/>
                </label>
                <button type="submit" class="button">"Search"</button>
            </form>
            <Transition fallback=|| view! { <p>"Searching…"</p> }>
                {move || Suspend::new(async move {
                    match results.await {
                        None => view! { <SearchHelp/> }.into_any(),
                        Some(Err(err)) => view! { <p class="error" role="alert" id="search-error">{err.message}</p> }.into_any(),
                        Some(Ok(results)) => view! { <Results results/> }.into_any(),
                    }
                })}
            </Transition>
        </Page>
    }
}

/// What the Search page shows before a query: what it finds, and examples to start from.
#[component]
fn SearchHelp() -> impl IntoView {
    let examples = [
        "pump 7 north",
        "template:Pump under:\"/South Plant\"",
        "\"outlet temperature\" > 100",
        "kind:device",
        "has:alarm severity:critical",
    ];
    view! {
        <EmptyState>
            "Find assets, devices, templates and open alarms by name, path, template, category, label or \
             description, and assets by their current values or their alarms. Results include only what your access \
             grants let you see. Try: "
            {examples.into_iter().map(|example| view! {
                <a class="example" href=search_href(example, None)><code>{example}</code></a>" "
            }).collect_view()}
        </EmptyState>
    }
}

#[component]
fn Results(results: SearchResults) -> impl IntoView {
    let SearchResults {
        q,
        total,
        hits,
        facets,
        next_cursor,
    } = results;
    if total == 0 {
        return view! {
            <EmptyState>"Nothing matches. Fewer words, a shorter prefix or fewer filters find more."</EmptyState>
        }
        .into_any();
    }
    let words = StoredValue::new(highlighted_words(&q));
    let shown = hits.len();
    let facet_list = |key: &'static str, label: &'static str, values: Vec<FacetCount>| {
        let q = q.clone();
        (!values.is_empty()).then(|| {
            view! {
                <h3>{label}</h3>
                <ul class="facet" data-facet=key>
                    {values.into_iter().map(|facet| {
                        let href = search_href(&narrowed(&q, key, &facet.value), None);
                        view! {
                            <li><a href=href>{facet.value}" "<span class="count">{facet.count}</span></a></li>
                        }
                    }).collect_view()}
                </ul>
            }
        })
    };
    let groups = SearchKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let of_kind: Vec<SearchHit> = hits.iter().filter(|hit| hit.kind == kind).cloned().collect();
            (!of_kind.is_empty()).then(|| {
                view! {
                    <h2>{kind_heading(kind)}</h2>
                    <ul class="search-results" data-kind=kind.as_str()>
                        {of_kind.into_iter().map(|hit| view! {
                            <li class="search-hit">
                                <a href=hit.href><Highlighted text=hit.name words/></a>
                                {hit.template.map(|t| view! { " " <span class="muted template">{t}</span> })}
                                {hit.path.map(|path| view! { <br/><span class="path muted"><Highlighted text=path words/></span> })}
                            </li>
                        }).collect_view()}
                    </ul>
                }
            })
        })
        .collect_view();
    view! {
        <p id="search-total" aria-live="polite">{format!("{total} found")}
            {(u64::try_from(shown).unwrap_or(0) < total).then(|| format!(", {shown} shown"))}</p>
        <div class="search-layout">
            <aside class="facets" aria-label="Narrow the results">
                {facet_list("kind", "Kind", facets.kind)}
                {facet_list("site", "Site", facets.site)}
                {facet_list("template", "Template", facets.template)}
                {facet_list("category", "Category", facets.category)}
                {facet_list("state", "Open alarms", facets.alarm_state)}
            </aside>
            <div class="search-groups">
                {groups}
                {next_cursor.map(|cursor| view! {
                    <p><a class="button" id="search-next" href=search_href(&q, Some(&cursor))>"More results"</a></p>
                })}
            </div>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_facet_narrows_the_query_once() {
        assert_eq!(narrowed("pump", "kind", "asset"), "pump kind:asset");
        assert_eq!(narrowed("pump kind:asset", "kind", "asset"), "pump kind:asset");
        assert_eq!(
            narrowed("pump", "template", "Centrifugal pump"),
            "pump template:\"Centrifugal pump\""
        );
        assert_eq!(narrowed("", "site", "South Plant"), "under:\"/South Plant\"");
        assert_eq!(
            search_href("\"outlet temperature\" > 100 °C", Some("20")),
            "/search?q=%22outlet+temperature%22+%3E+100+%C2%B0C&cursor=20"
        );
    }
}

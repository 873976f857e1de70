//! The asset explorer: the caller's tree one level at a time, with live alarm counts per subtree and keyboard
//! navigation.

use super::asset_page::NewAssetForm;
use super::*;
use crate::alarms::AlarmBadges;
use crate::error::AppError;
use crate::shell::{EmptyState, Page};
use leptos::prelude::*;

/// Live alarm counts of each listed asset's subtree. Fetched by the browser after hydration and again on every
/// alarm change, so a page listing a thousand assets renders on the server without waiting for them.
type SubtreeCounts = LocalResource<Result<Vec<(i64, crate::alarms::AlarmCounts)>, AppError>>;

/// None on the server, which renders the lists without counts (a local resource there only logs warnings).
fn subtree_counts(ids: Vec<i64>) -> Option<SubtreeCounts> {
    #[cfg(feature = "hydrate")]
    return Some(LocalResource::new(move || {
        crate::alarms::live_version();
        crate::alarms::count_alarms_of(ids.clone())
    }));
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ids;
        None
    }
}

/// The active alarms of one listed asset's subtree, once they are known.
#[component]
fn SubtreeBadges(counts: Option<SubtreeCounts>, id: i64) -> impl IntoView {
    move || {
        let found = counts?
            .read()
            .as_ref()
            .and_then(|answer| answer.as_ref().ok())
            .and_then(|all| all.iter().find(|(of, _)| *of == id).map(|(_, counts)| *counts));
        found.map(|counts| view! { <AlarmBadges counts/> })
    }
}

/// A level of the tree, each asset with the active alarms of its subtree (kept live).
#[component]
pub(super) fn AssetList(assets: Vec<AssetSummary>) -> AnyView {
    let counts = subtree_counts(assets.iter().map(|a| a.id).collect());
    let badges = move |id: i64| view! { <SubtreeBadges counts id/> };
    view! {
        <ul class="asset-list">
            {assets.into_iter().map(|asset| view! {
                <li>
                    <a href=format!("/assets/{}", asset.id)>{asset.name}</a>
                    " "{badges(asset.id)}
                    {asset.template.map(|t| view! { <span class="muted">" · "{t}</span> })}
                    {(asset.child_count > 0).then(|| view! { <span class="muted">" · "{asset.child_count}" below"</span> })}
                </li>
            }).collect_view()}
        </ul>
    }
    // Erased: nested in the asset page's view, the full type is too deep for the compiler's layout queries.
    .into_any()
}

#[component]
pub fn AssetsPage() -> impl IntoView {
    let top = Resource::new(|| (), |_| asset_children(None));
    view! {
        <Page title="Asset explorer">
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match top.await {
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                        Ok(assets) if assets.is_empty() => view! {
                            <EmptyState>
                                "No assets yet. Your plant will appear here as a tree of sites, lines and equipment "
                                "built from templates; engineers create them through the API, and "
                                <code>"gantry serve --demo"</code>" seeds a demonstration plant."
                            </EmptyState>
                        }.into_any(),
                        Ok(assets) => view! { <AssetTree roots=assets/> }.into_any(),
                    }
                })}
            </Suspense>
            <p><a href="/templates">"Templates"</a></p>
            <NewAssetForm parent=None/>
        </Page>
    }
}

/// The explorer's tree: the top level rendered with the page, each branch loaded when first expanded (so 100k
/// assets cost what is open). Keyboard as in WAI-ARIA's tree pattern: ↑/↓ move, → expands or enters, ← collapses
/// or goes to the parent, Home/End, Enter opens the asset.
#[component]
fn AssetTree(roots: Vec<AssetSummary>) -> impl IntoView {
    let counts = subtree_counts(roots.iter().map(|a| a.id).collect());
    view! {
        <ul role="tree" id="asset-tree" class="tree" aria-label="Assets" on:keydown=tree_keys>
            {roots.into_iter().enumerate().map(|(i, asset)| view! { <TreeNode asset level=1 focusable=i == 0 counts/> }).collect_view()}
        </ul>
    }
}

#[component]
fn TreeNode(asset: AssetSummary, level: u32, focusable: bool, counts: Option<SubtreeCounts>) -> AnyView {
    let id = asset.id;
    let has_children = asset.child_count > 0;
    let expanded = RwSignal::new(false);
    let children = RwSignal::new(None::<Result<Vec<AssetSummary>, AppError>>);
    let toggle = move || {
        expanded.update(|open| *open = !*open);
        if expanded.get_untracked() && children.get_untracked().is_none() {
            leptos::task::spawn_local(async move { children.set(Some(asset_children(Some(id)).await)) });
        }
    };
    let badges = view! { <SubtreeBadges counts id/> };
    view! {
        <li role="treeitem" attr:aria-level=level data-id=id tabindex=if focusable { "0" } else { "-1" }
            aria-expanded=move || has_children.then(|| expanded.get().to_string())>
            <span class="node">
                {if has_children {
                    view! {
                        <button type="button" class="toggle" tabindex="-1" aria-hidden="true" on:click=move |_| toggle()>
                            {move || if expanded.get() { "▾" } else { "▸" }}
                        </button>
                    }.into_any()
                } else {
                    view! { <span class="toggle" aria-hidden="true"></span> }.into_any()
                }}
                <a href=format!("/assets/{id}") tabindex="-1">{asset.name}</a>
                {asset.template.map(|t| view! { <span class="muted">" · "{t}</span> })}
                " "{badges}
            </span>
            {move || expanded.get().then(|| view! {
                <ul role="group">
                    {move || match children.get() {
                        None => view! { <li class="muted">"Loading…"</li> }.into_any(),
                        Some(Err(err)) => view! { <li class="error">{err.message}</li> }.into_any(),
                        Some(Ok(below)) => below
                            .into_iter()
                            .map(|asset| view! { <TreeNode asset level=level + 1 focusable=false counts=None/> })
                            .collect_view()
                            .into_any(),
                    }}
                </ul>
            })}
        </li>
    }
    .into_any()
}

/// Keyboard navigation of [`AssetTree`] (browser only).
fn tree_keys(event: leptos::ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    tree_keyboard::handle(event);
    #[cfg(not(feature = "hydrate"))]
    let _ = event;
}

#[cfg(feature = "hydrate")]
mod tree_keyboard {
    use wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement, KeyboardEvent};

    /// The tree items now shown (collapsed branches are not in the page), in document order.
    fn items(tree: &Element) -> Vec<HtmlElement> {
        let Ok(list) = tree.query_selector_all("[role=treeitem]") else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.item(i)?.dyn_into::<HtmlElement>().ok())
            .collect()
    }

    fn focus(from: &HtmlElement, to: &HtmlElement) {
        from.set_tab_index(-1);
        to.set_tab_index(0);
        let _ = to.focus();
    }

    fn click(item: &HtmlElement, selector: &str) {
        if let Some(target) = item
            .query_selector(selector)
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        {
            target.click();
        }
    }

    pub fn handle(event: KeyboardEvent) {
        let (Some(tree), Some(item)) = (
            event.current_target().and_then(|t| t.dyn_into::<Element>().ok()),
            event.target().and_then(|t| t.dyn_into::<HtmlElement>().ok()),
        ) else {
            return;
        };
        if item.get_attribute("role").as_deref() != Some("treeitem") {
            return;
        }
        let items = items(&tree);
        let Some(at) = items.iter().position(|i| *i == item) else {
            return;
        };
        let expanded = item.get_attribute("aria-expanded");
        match event.key().as_str() {
            "ArrowDown" => items.get(at + 1).into_iter().for_each(|next| focus(&item, next)),
            "ArrowUp" => items
                .get(at.wrapping_sub(1))
                .into_iter()
                .for_each(|prev| focus(&item, prev)),
            "Home" => items.first().into_iter().for_each(|first| focus(&item, first)),
            "End" => items.last().into_iter().for_each(|last| focus(&item, last)),
            "ArrowRight" => match expanded.as_deref() {
                Some("false") => click(&item, ":scope > .node > .toggle"),
                Some("true") => items.get(at + 1).into_iter().for_each(|child| focus(&item, child)),
                _ => return,
            },
            "ArrowLeft" => match expanded.as_deref() {
                Some("true") => click(&item, ":scope > .node > .toggle"),
                _ => {
                    let parent = item
                        .parent_element()
                        .and_then(|group| group.closest("[role=treeitem]").ok().flatten())
                        .and_then(|e| e.dyn_into::<HtmlElement>().ok());
                    match parent {
                        Some(parent) => focus(&item, &parent),
                        None => return,
                    }
                }
            },
            "Enter" => click(&item, ":scope > .node > a"),
            _ => return,
        }
        event.prevent_default();
    }
}

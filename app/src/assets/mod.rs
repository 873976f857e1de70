//! The plant model in the UI: the asset explorer (the caller's tree, one level at a time) and the asset page
//! (breadcrumbs, template, attributes with units and limits, children); and the server functions behind them.

mod types;

pub use types::*;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::auth::CsrfClient;
use crate::error::AppError;
use crate::shell::{EmptyState, Page};

/// The children of `parent`, or the top of the caller's tree.
#[server(prefix = "/_fn", endpoint = "assets/children", client = CsrfClient)]
pub async fn asset_children(parent: Option<i64>) -> Result<Vec<AssetSummary>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.children(&actor, parent).await
}

#[server(prefix = "/_fn", endpoint = "assets/get", client = CsrfClient)]
pub async fn asset_detail(id: i64) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.asset(&actor, id).await
}

#[component]
fn AssetList(assets: Vec<AssetSummary>) -> impl IntoView {
    view! {
        <ul class="asset-list">
            {assets.into_iter().map(|asset| view! {
                <li>
                    <a href=format!("/assets/{}", asset.id)>{asset.name}</a>
                    {asset.template.map(|t| view! { <span class="muted">" · "{t}</span> })}
                    {(asset.child_count > 0).then(|| view! { <span class="muted">" · "{asset.child_count}" below"</span> })}
                </li>
            }).collect_view()}
        </ul>
    }
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
                        Ok(assets) => view! { <AssetList assets/> }.into_any(),
                    }
                })}
            </Suspense>
        </Page>
    }
}

fn limit(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[component]
pub fn AssetPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let asset = Resource::new(id, |id| async move {
        match id {
            Some(id) => asset_detail(id).await,
            None => Err(AppError::not_found("there is no such asset")),
        }
    });
    let children = Resource::new(id, |id| async move {
        match id {
            Some(id) => asset_children(Some(id)).await,
            None => Ok(Vec::new()),
        }
    });
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let asset = match asset.await {
                    Ok(asset) => asset,
                    Err(err) => return view! {
                        <Page title="Asset"><p class="error" role="alert">{err.message}</p></Page>
                    }.into_any(),
                };
                let children = children.await.unwrap_or_default();
                let title = asset.summary.name.clone();
                view! {
                    <nav aria-label="Breadcrumbs" class="breadcrumbs">
                        <a href="/assets">"Assets"</a>
                        {asset.ancestors.into_iter().map(|a| view! {
                            " / " <a href=format!("/assets/{}", a.id)>{a.name}</a>
                        }).collect_view()}
                        " / " <span aria-current="page">{title.clone()}</span>
                    </nav>
                    <section class="page" aria-labelledby="page-title">
                        <h1 id="page-title">{title}</h1>
                        <dl class="status">
                            <dt>"Path"</dt><dd>{asset.summary.path}</dd>
                            <dt>"Template"</dt><dd>{asset.summary.template.unwrap_or_else(|| "none (free-form)".into())}</dd>
                        </dl>
                        {(!asset.description.is_empty()).then(|| view! { <p>{asset.description}</p> })}
                        <h2>"Attributes"</h2>
                        {if asset.attributes.is_empty() {
                            view! { <p class="empty">"This asset has no attributes."</p> }.into_any()
                        } else {
                            view! {
                                <table id="attributes">
                                    <thead><tr>
                                        <th>"Name"</th><th>"Unit"</th><th>"LoLo"</th><th>"Lo"</th><th>"Hi"</th>
                                        <th>"HiHi"</th><th>"Kind"</th><th>"From template"</th>
                                    </tr></thead>
                                    <tbody>
                                        {asset.attributes.into_iter().map(|a| view! {
                                            <tr>
                                                <td>{a.attribute.name}</td>
                                                <td>{a.attribute.unit.unwrap_or_default()}</td>
                                                <td>{limit(a.attribute.limits.lolo)}</td>
                                                <td>{limit(a.attribute.limits.lo)}</td>
                                                <td>{limit(a.attribute.limits.hi)}</td>
                                                <td>{limit(a.attribute.limits.hihi)}</td>
                                                <td>{if a.attribute.is_series { "time series" } else { "static" }}</td>
                                                <td>{a.defined_in}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        {(!children.is_empty()).then(|| view! {
                            <h2>"Below this asset"</h2>
                            <AssetList assets=children/>
                        })}
                    </section>
                }.into_any()
            })}
        </Suspense>
    }
}

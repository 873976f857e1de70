//! The plant model in the UI: the asset explorer (the caller's tree, one level at a time) and the asset page
//! (breadcrumbs, template, attributes with units and limits, children); and the server functions behind them.

mod types;

pub use types::*;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::auth::CsrfClient;
use crate::error::AppError;
use crate::shell::{failure, percent_encode, EmptyState, FormError, Page};

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

#[server(prefix = "/_fn", endpoint = "assets/templates", client = CsrfClient)]
pub async fn list_templates() -> Result<Vec<TemplateView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.templates(&actor).await
}

/// Creates a template with at most one attribute, as the form on the templates page sends it.
#[server(prefix = "/_fn", endpoint = "assets/create_template", client = CsrfClient)]
pub async fn create_template(
    name: String,
    base: String,
    attribute: String,
    value_type: String,
    unit: String,
    lo: String,
    hi: String,
) -> Result<TemplateView, AppError> {
    let actor = crate::services::current_actor()?;
    let number = |field: &str, text: &str| -> Result<Option<f64>, AppError> {
        match text.trim() {
            "" => Ok(None),
            value => value
                .parse()
                .map(Some)
                .map_err(|_| AppError::bad_request(format!("{field} must be a number"))),
        }
    };
    let value_type = match value_type.as_str() {
        "integer" => ValueType::Integer,
        "boolean" => ValueType::Boolean,
        "string" => ValueType::String,
        _ => ValueType::Float,
    };
    let attributes = match attribute.trim() {
        "" => Vec::new(),
        name => vec![AttributeTemplate {
            name: name.to_string(),
            value_type,
            unit: Some(unit.trim().to_string()).filter(|u| !u.is_empty()),
            description: String::new(),
            limits: Limits {
                lo: number("Lo", &lo)?,
                hi: number("Hi", &hi)?,
                ..Limits::default()
            },
            display_min: None,
            display_max: None,
            is_series: true,
            retention_tier: None,
            alarms: Vec::new(),
        }],
    };
    let spec = TemplateSpec {
        name: name.trim().to_string(),
        base: Some(base.trim().to_string()).filter(|b| !b.is_empty()),
        description: String::new(),
        naming_pattern: None,
        categories: Vec::new(),
        attributes,
    };
    crate::services::services()?.model.create_template(&actor, spec).await
}

/// Creates an asset under `parent_id` (empty: at the top) from `template` (empty: free-form).
#[server(prefix = "/_fn", endpoint = "assets/create", client = CsrfClient)]
pub async fn create_asset(parent_id: String, name: String, template: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    let parent_id = match parent_id.trim() {
        "" => None,
        id => Some(
            id.parse()
                .map_err(|_| AppError::bad_request("the parent is not an asset id"))?,
        ),
    };
    let asset = NewAsset {
        parent_id,
        name: name.trim().to_string(),
        template: Some(template.trim().to_string()).filter(|t| !t.is_empty()),
        description: String::new(),
        labels: Vec::new(),
    };
    crate::services::services()?.model.create_asset(&actor, asset).await
}

#[server(prefix = "/_fn", endpoint = "assets/move", client = CsrfClient)]
pub async fn move_asset(id: i64, parent_path: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .model
        .move_asset(&actor, id, &parent_path)
        .await
}

#[server(prefix = "/_fn", endpoint = "assets/rename", client = CsrfClient)]
pub async fn rename_asset(id: i64, name: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.rename_asset(&actor, id, name).await
}

#[server(prefix = "/_fn", endpoint = "assets/delete", client = CsrfClient)]
pub async fn delete_asset(id: i64) -> Result<usize, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.delete_asset(&actor, id).await
}

/// Renames the asset; on success reloads it (its path and breadcrumbs change).
#[component]
fn RenameForm(id: i64, name: String) -> impl IntoView {
    let action = ServerAction::<RenameAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(asset)) = action.value().get() {
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&format!("/assets/{}", asset.summary.id));
            #[cfg(not(feature = "hydrate"))]
            let _ = asset;
        }
    });
    view! {
        <ActionForm action attr:class="form inline-form" attr:id="rename-asset">
            <input type="hidden" name="id" value=id/>
            <label>"New name" <input name="name" required value=name/></label>
            <button type="submit" class="button">"Rename"</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// Deletes the asset and its subtree after the browser's confirmation; then opens the parent (or the explorer).
#[component]
fn DeleteAsset(id: i64, below: i64, parent: Option<i64>) -> impl IntoView {
    let action = ServerAction::<DeleteAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            let target = parent.map_or("/assets".to_string(), |p| format!("/assets/{p}"));
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&target);
            #[cfg(not(feature = "hydrate"))]
            let _ = target;
        }
    });
    let question = if below > 0 {
        format!(
            "Delete this asset and everything below it ({below} directly below)? Their readings become unreachable."
        )
    } else {
        "Delete this asset? Its readings become unreachable.".to_string()
    };
    view! {
        <button class="button danger" id="delete-asset" on:click=move |_| {
            #[cfg(feature = "hydrate")]
            let confirmed = window().confirm_with_message(&question).unwrap_or(false);
            #[cfg(not(feature = "hydrate"))]
            let confirmed = { let _ = &question; false };
            if confirmed {
                action.dispatch(DeleteAsset { id });
            }
        }>"Delete asset"</button>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// Adds an asset under `parent` (or at the top); on success opens it.
#[component]
fn NewAssetForm(parent: Option<i64>) -> impl IntoView {
    let create = ServerAction::<CreateAsset>::new();
    let templates = Resource::new(|| (), |_| list_templates());
    Effect::new(move |_| {
        if let Some(Ok(asset)) = create.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/assets/{}", asset.summary.id), Default::default());
        }
    });
    view! {
        <ActionForm action=create attr:class="form inline-form" attr:id="new-asset">
            <input type="hidden" name="parent_id" value=parent.map(|p| p.to_string()).unwrap_or_default()/>
            <label>"Name" <input name="name" required/></label>
            <label>
                "Template"
                <select name="template">
                    <option value="">"none (free-form)"</option>
                    <Suspense>
                        {move || Suspend::new(async move {
                            templates.await.unwrap_or_default().into_iter().map(|t| view! {
                                <option value=t.spec.name.clone()>{t.spec.name.clone()}</option>
                            }).collect_view()
                        })}
                    </Suspense>
                </select>
            </label>
            <button type="submit" class="button">{if parent.is_some() { "Add below" } else { "Add at the top" }}</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(create.value().get()))/>
    }
}

#[component]
pub fn TemplatesPage() -> impl IntoView {
    let create = ServerAction::<CreateTemplate>::new();
    let templates = Resource::new(move || create.version().get(), |_| list_templates());
    view! {
        <Page title="Templates">
            <ActionForm action=create attr:class="form inline-form" attr:id="new-template">
                <label>"Name" <input name="name" required/></label>
                <label>"Base template" <input name="base" placeholder="none"/></label>
                <label>"Attribute" <input name="attribute"/></label>
                <label>
                    "Type"
                    <select name="value_type">
                        <option value="float">"float"</option>
                        <option value="integer">"integer"</option>
                        <option value="boolean">"boolean"</option>
                        <option value="string">"string"</option>
                    </select>
                </label>
                <label>"Unit" <input name="unit"/></label>
                <label>"Lo" <input name="lo" inputmode="decimal"/></label>
                <label>"Hi" <input name="hi" inputmode="decimal"/></label>
                <button type="submit" class="button">"Create template"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure(create.value().get()))/>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let templates = templates.await.unwrap_or_default();
                    if templates.is_empty() {
                        return view! { <EmptyState>"No templates yet. A template gives every asset built from it the same attributes, units and limits."</EmptyState> }.into_any();
                    }
                    view! {
                        <table id="templates">
                            <thead><tr><th>"Template"</th><th>"Based on"</th><th>"Attributes (inherited in italics)"</th><th>"Assets"</th></tr></thead>
                            <tbody>
                                {templates.into_iter().map(|t| view! {
                                    <tr>
                                        <td>{t.spec.name}</td>
                                        <td>{t.spec.base.unwrap_or_default()}</td>
                                        <td>
                                            {t.effective_attributes.into_iter().map(|a| {
                                                let label = format!("{} {}", a.attribute.name, a.attribute.unit.unwrap_or_default());
                                                if a.inherited {
                                                    view! { <em class="attr">{label}</em> }.into_any()
                                                } else {
                                                    view! { <span class="attr">{label}</span> }.into_any()
                                                }
                                            }).collect_view()}
                                        </td>
                                        <td>{t.asset_count}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </Page>
    }
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
            <p><a href="/templates">"Templates"</a></p>
            <NewAssetForm parent=None/>
        </Page>
    }
}

/// Moves the asset under another one, named by path; the page follows it.
#[component]
fn MoveForm(id: i64) -> impl IntoView {
    let action = ServerAction::<MoveAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(asset)) = action.value().get() {
            // A full load, so the breadcrumbs and the tree show the new place.
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&format!("/assets/{}", asset.summary.id));
            #[cfg(not(feature = "hydrate"))]
            let _ = asset;
        }
    });
    view! {
        <ActionForm action attr:class="form inline-form" attr:id="move-asset">
            <input type="hidden" name="id" value=id/>
            <label>"New parent (path, or / for the top)" <input name="parent_path" required/></label>
            <button type="submit" class="button">"Move"</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
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
                let export_path = asset.summary.path.clone();
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
                        <crate::devices::AssetDevices asset_id=asset.summary.id/>
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
                        <h2>"Add an asset below"</h2>
                        <NewAssetForm parent=Some(asset.summary.id)/>
                        <h2>"Move"</h2>
                        <MoveForm id=asset.summary.id/>
                        <h2>"Rename or delete"</h2>
                        <RenameForm id=asset.summary.id name=asset.summary.name.clone()/>
                        <DeleteAsset id=asset.summary.id below=asset.summary.child_count parent=asset.summary.parent_id/>
                        <p>
                            <a href=format!("/api/v1/model/export?subtree={}", percent_encode(&export_path)) download="model.yaml">
                                "Export this subtree as a model file"
                            </a>
                        </p>
                    </section>
                }.into_any()
            })}
        </Suspense>
    }
}

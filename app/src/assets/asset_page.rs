//! One asset's page: breadcrumbs, template, attributes with units, limits and current values, its trend, its
//! children, and the forms that add, move, rename or delete.

use super::explorer::AssetList;
use super::*;
use crate::alarms::{count_alarms, live_version, AlarmBadges};
use crate::charts::{trend_href, ChartRange, RangePreset, SeriesRef, TrendChart};
use crate::error::AppError;
use crate::shell::{failure, percent_encode, FormError, Page};
use crate::timeseries::read_latest_values;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// Renames the asset; on success reloads it (its path and breadcrumbs change).
#[component]
fn RenameForm(id: i64, version: i64, name: String) -> impl IntoView {
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
            <input type="hidden" name="version" value=version/>
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
pub(super) fn NewAssetForm(parent: Option<i64>) -> impl IntoView {
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

/// Moves the asset under another one, named by path; the page follows it.
#[component]
fn MoveForm(id: i64, version: i64) -> impl IntoView {
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
            <input type="hidden" name="version" value=version/>
            <label>"New parent (path, or / for the top)" <input name="parent_path" required/></label>
            <button type="submit" class="button">"Move"</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// How often the asset page refreshes its current values.
const CURRENT_VALUES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// An attribute's latest reading, coloured by the band of its limits it is in, with its time as a tooltip.
#[component]
fn CurrentValue(
    latest: Resource<Result<Vec<crate::timeseries::LatestValue>, AppError>>,
    name: String,
    limits: Limits,
    unit: Option<String>,
) -> impl IntoView {
    view! {
        <Transition>
            {move || {
                let (name, limits, unit) = (name.clone(), limits.clone(), unit.clone());
                Suspend::new(async move {
                    let found = latest.await.ok().and_then(|values| values.into_iter().find(|v| v.attribute == name));
                    match found.and_then(|v| Some((v.value?, v.ts?))) {
                        Some((value, ts)) => {
                            let band = limits.band(value);
                            view! {
                                <span class=format!("value {band}") title=crate::time::shown(ts) data-band=band>
                                    {crate::alarms::value_with_unit(Some(value), unit.as_deref())}
                                </span>
                            }.into_any()
                        }
                        None => view! { <span class="muted">"no reading yet"</span> }.into_any(),
                    }
                })
            }}
        </Transition>
    }
}

/// What an asset page shows first: a trend of its time-series attributes over the last hour, live.
const ASSET_TREND_RANGE: ChartRange = ChartRange::Last(RangePreset::Hour);

/// The trend of an asset's time-series attributes, with a link to the same trend on the Trends page.
#[component]
fn AssetTrend(series: Vec<SeriesRef>) -> impl IntoView {
    let range = RwSignal::new(ASSET_TREND_RANGE);
    let href = {
        let series = series.clone();
        move || trend_href(&series, range.get())
    };
    view! {
        <h2>"Trend"</h2>
        <TrendChart series=Signal::stored(series) range=range on_range=move |r| range.set(r) reset_to=ASSET_TREND_RANGE/>
        <p><a href=href id="open-in-trends">"Open in Trends"</a>" (the address keeps the series and the range)"</p>
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
    let alarms = Resource::new(
        move || (id(), live_version()),
        |(id, _)| async move {
            match id {
                Some(id) => count_alarms(Some(id)).await,
                None => Ok(Default::default()),
            }
        },
    );
    // Current values: fetched with the page, then every few seconds and whenever an alarm changes.
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), CURRENT_VALUES_EVERY) {
            on_cleanup(move || handle.clear());
        }
    });
    let latest = Resource::new(
        move || (id(), tick.get(), live_version()),
        |(id, ..)| async move {
            match id {
                Some(id) => read_latest_values(id).await.map(|l| l.values),
                None => Ok(Vec::new()),
            }
        },
    );
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
                let trend_series: Vec<SeriesRef> = asset
                    .attributes
                    .iter()
                    .filter(|a| a.attribute.is_series)
                    .map(|a| SeriesRef::new(export_path.clone(), a.attribute.name.clone()))
                    .collect();
                view! {
                    <nav aria-label="Breadcrumbs" class="breadcrumbs">
                        <a href="/assets">"Assets"</a>
                        {asset.ancestors.into_iter().map(|a| view! {
                            " / " <a href=format!("/assets/{}", a.id)>{a.name}</a>
                        }).collect_view()}
                        " / " <span aria-current="page">{title.clone()}</span>
                    </nav>
                    <Title text=title.clone()/>
                    <section class="page" aria-labelledby="page-title">
                        <h1 id="page-title">{title}</h1>
                        <dl class="status">
                            <dt>"Path"</dt><dd>{asset.summary.path}</dd>
                            <dt>"Template"</dt><dd>{asset.summary.template.unwrap_or_else(|| "none (free-form)".into())}</dd>
                        </dl>
                        {(!asset.description.is_empty()).then(|| view! { <p>{asset.description}</p> })}
                        <p class="alarm-rollup" id="asset-alarms">
                            <a href=format!("/alarms?subtree={}", percent_encode(&export_path))>"Alarms in this subtree"</a>": "
                            <Transition>
                                {move || Suspend::new(async move {
                                    match alarms.await {
                                        Ok(counts) if counts.active() == 0 => view! { <span class="muted">"none active"</span> }.into_any(),
                                        Ok(counts) => view! { <AlarmBadges counts/> }.into_any(),
                                        Err(err) => view! { <span class="error">{err.message}</span> }.into_any(),
                                    }
                                })}
                            </Transition>
                        </p>
                        <crate::devices::AssetDevices asset_id=asset.summary.id/>
                        <h2>"Attributes"</h2>
                        {if asset.attributes.is_empty() {
                            view! { <p class="empty">"This asset has no attributes."</p> }.into_any()
                        } else {
                            view! {
                                <table id="attributes">
                                    <thead><tr>
                                        <th>"Name"</th><th>"Unit"</th><th>"LoLo"</th><th>"Lo"</th><th>"Hi"</th>
                                        <th>"HiHi"</th><th>"Current"</th><th>"Kind"</th><th>"From template"</th>
                                    </tr></thead>
                                    <tbody>
                                        {asset.attributes.into_iter().map(|a| view! {
                                            <tr data-attribute=a.attribute.name.clone()>
                                                <td>{a.attribute.name.clone()}</td>
                                                <td>{a.attribute.unit.clone().unwrap_or_default()}</td>
                                                <td>{limit(a.attribute.limits.lolo)}</td>
                                                <td>{limit(a.attribute.limits.lo)}</td>
                                                <td>{limit(a.attribute.limits.hi)}</td>
                                                <td>{limit(a.attribute.limits.hihi)}</td>
                                                <td class="current">
                                                    {a.attribute.is_series.then(|| {
                                                        let (name, limits, unit) = (a.attribute.name.clone(), a.attribute.limits.clone(), a.attribute.unit.clone());
                                                        view! { <CurrentValue latest name limits unit/> }
                                                    })}
                                                </td>
                                                <td>{if a.attribute.is_series { "time series" } else { "static" }}</td>
                                                <td>{a.defined_in}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        {(!trend_series.is_empty()).then(|| view! { <AssetTrend series=trend_series/> })}
                        {(!children.is_empty()).then(|| view! {
                            <h2>"Below this asset"</h2>
                            <AssetList assets=children/>
                        })}
                        <h2>"Add an asset below"</h2>
                        <NewAssetForm parent=Some(asset.summary.id)/>
                        <h2>"Move"</h2>
                        <MoveForm id=asset.summary.id version=asset.version/>
                        <h2>"Rename or delete"</h2>
                        <RenameForm id=asset.summary.id version=asset.version name=asset.summary.name.clone()/>
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

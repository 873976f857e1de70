//! Dashboards: a grid of panels (a trend, one current value, the active alarms of a subtree, a table of latest
//! values), personal or shared, arranged in an edit mode. The types (also the model file's `dashboards`), their
//! checks, the server functions and the two pages (`/dashboards`, `/dashboards/:id`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::{ChartRange, RangePreset, SeriesRef, TrendChart, MAX_TREND_SERIES};
use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{
    described_by, failure, failure_at, failure_besides, invalid, EmptyState, FieldError, FormError, Page,
};

/// Columns of the grid; panels are placed in whole columns and rows.
pub const GRID_COLUMNS: u8 = 12;
pub const MAX_ROWS: u8 = 40;
pub const MAX_PANEL_HEIGHT: u8 = 8;
pub const MAX_PANELS: usize = 40;
/// At most this many series in a table panel (and in one request for latest values).
pub const MAX_VALUE_SERIES: usize = 50;

/// What a panel shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum PanelContent {
    /// A trend chart; `range` is a preset key (`1h` … `1y`), 24 h when absent.
    Trend {
        series: Vec<SeriesRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<String>,
    },
    /// One attribute's latest value with its unit, coloured by its limit band.
    Value { series: SeriesRef },
    /// The active alarms of a subtree (an asset path).
    Alarms { subtree: String },
    /// The latest values of several attributes.
    Table { series: Vec<SeriesRef> },
}

/// What a panel shows in place of an asset path outside the viewer's grants.
pub const HIDDEN_PATH: &str = "(outside your grants)";

impl PanelContent {
    /// The paths of the assets the panel shows (a subtree's root for an alarm list).
    pub fn asset_paths(&self) -> Vec<&str> {
        match self {
            PanelContent::Trend { series, .. } | PanelContent::Table { series } => {
                series.iter().map(|s| s.asset.as_str()).collect()
            }
            PanelContent::Value { series } => vec![series.asset.as_str()],
            PanelContent::Alarms { subtree } => vec![subtree.as_str()],
        }
    }

    /// The asset paths the panel names, to check or hide each.
    pub fn asset_paths_mut(&mut self) -> Vec<&mut String> {
        match self {
            PanelContent::Trend { series, .. } | PanelContent::Table { series } => {
                series.iter_mut().map(|s| &mut s.asset).collect()
            }
            PanelContent::Value { series } => vec![&mut series.asset],
            PanelContent::Alarms { subtree } => vec![subtree],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PanelContent::Trend { .. } => "trend",
            PanelContent::Value { .. } => "value",
            PanelContent::Alarms { .. } => "alarms",
            PanelContent::Table { .. } => "table",
        }
    }
}

/// A panel and its place: column `x` (0-based) and row `y`, `w` columns wide and `h` rows high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Panel {
    pub title: String,
    pub x: u8,
    pub y: u8,
    pub w: u8,
    pub h: u8,
    pub content: PanelContent,
}

impl Panel {
    /// Its size, place and what it names; `which` names it in the messages. Errors about the title and about what
    /// it shows name the field (`title`, `content`).
    pub fn validate(&self, which: &str) -> Result<(), AppError> {
        // Its place across fields (inside the grid's edge) is a rule no schema states: 422; the rest 400.
        let bad = |message: String| Err(AppError::bad_request(message));
        let content = |message: String| Err(AppError::bad_request(message).for_field("content"));
        let beyond_edge = |message: String| Err(AppError::new(crate::error::ErrorKind::Unprocessable, message));
        if self.title.chars().count() > 100 {
            return Err(
                AppError::bad_request(format!("{which}: a title is at most 100 characters")).for_field("title"),
            );
        }
        if self.w == 0 || self.w > GRID_COLUMNS || self.h == 0 || self.h > MAX_PANEL_HEIGHT {
            return bad(format!(
                "{which}: 1 to {GRID_COLUMNS} columns wide and 1 to {MAX_PANEL_HEIGHT} rows high"
            ));
        }
        if self.x.saturating_add(self.w) > GRID_COLUMNS {
            return beyond_edge(format!("{which}: it must fit in the grid's {GRID_COLUMNS} columns"));
        }
        if self.y.saturating_add(self.h) > MAX_ROWS {
            return beyond_edge(format!(
                "{which}: 1 to {MAX_PANEL_HEIGHT} rows high, within the first {MAX_ROWS} rows"
            ));
        }
        match &self.content {
            PanelContent::Trend { series, range } => {
                if series.is_empty() || series.len() > MAX_TREND_SERIES {
                    return content(format!("{which}: a trend shows 1 to {MAX_TREND_SERIES} series"));
                }
                if let Some(range) = range {
                    if RangePreset::from_key(range).is_none() {
                        return bad(format!(
                            "{which}: the range is one of 1h, 8h, 24h, 7d, 30d, 1y, not {range:?}"
                        ));
                    }
                }
            }
            PanelContent::Table { series } if series.is_empty() || series.len() > MAX_VALUE_SERIES => {
                return content(format!("{which}: a table shows 1 to {MAX_VALUE_SERIES} series"));
            }
            PanelContent::Alarms { subtree } if !subtree.starts_with('/') => {
                return content(format!(
                    "{which}: the subtree is an asset path such as /Site A, not {subtree:?}"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A dashboard as it is saved, and as the model file carries the shared ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DashboardSpec {
    pub name: String,
    /// Shared with everyone who may view (engineers and admins edit it); otherwise only its owner sees it.
    #[serde(default)]
    pub shared: bool,
    #[serde(default)]
    pub panels: Vec<Panel>,
}

impl DashboardSpec {
    /// Names, sizes, places inside the grid and what each panel names.
    pub fn validate(&self) -> Result<(), AppError> {
        let bad = |message: String| Err(AppError::bad_request(message));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name != self.name {
            return bad("a dashboard's name is 1 to 100 characters, without leading or trailing spaces".into());
        }
        if self.panels.len() > MAX_PANELS {
            return bad(format!("at most {MAX_PANELS} panels on a dashboard"));
        }
        for (i, panel) in self.panels.iter().enumerate() {
            panel.validate(&format!("panel {} ({:?})", i + 1, panel.title))?;
        }
        Ok(())
    }

    /// The first free row below every panel (where a new panel goes).
    pub fn next_row(&self) -> u8 {
        self.panels.iter().map(|p| p.y + p.h).max().unwrap_or(0)
    }
}

/// A dashboard as a caller sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DashboardView {
    pub id: i64,
    pub owner: String,
    /// Whether the caller may change it.
    pub can_edit: bool,
    pub updated_at: i64,
    /// Bumped by every change; a write that names it is refused (409) if another came first.
    pub version: i64,
    #[serde(flatten)]
    pub spec: DashboardSpec,
}

/// The latest reading of one series, for value and table panels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesValue {
    pub series: SeriesRef,
    pub unit: Option<String>,
    pub ts: Option<i64>,
    pub value: Option<f64>,
    /// The limit band the value is in (`normal`, `hi`, `hihi`, `lo`, `lolo`).
    pub band: String,
    /// Why there is no value (the asset is gone or outside one's grants).
    pub error: Option<String>,
}

#[server(prefix = "/_fn", endpoint = "dashboards/list", client = CsrfClient)]
pub async fn list_dashboards() -> Result<Vec<DashboardView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.charts.dashboards(&actor).await
}

#[server(prefix = "/_fn", endpoint = "dashboards/get", client = CsrfClient)]
pub async fn read_dashboard(id: i64) -> Result<DashboardView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.charts.dashboard(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "dashboards/create", client = CsrfClient)]
pub async fn create_dashboard(name: String, shared: Option<String>) -> Result<DashboardView, AppError> {
    let actor = crate::services::current_actor()?;
    let spec = DashboardSpec {
        name: name.trim().to_string(),
        shared: shared.is_some(),
        panels: Vec::new(),
    };
    crate::services::services()?.charts.create_dashboard(&actor, spec).await
}

#[server(prefix = "/_fn", endpoint = "dashboards/save", client = CsrfClient)]
pub async fn save_dashboard(id: i64, version: i64, spec: DashboardSpec) -> Result<DashboardView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .charts
        .update_dashboard(&actor, id, spec, Some(version))
        .await
}

#[server(prefix = "/_fn", endpoint = "dashboards/delete", client = CsrfClient)]
pub async fn delete_dashboard(id: i64) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.charts.delete_dashboard(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "charts/values", client = CsrfClient)]
pub async fn read_series_values(series: Vec<SeriesRef>) -> Result<Vec<SeriesValue>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.charts.values(&actor, &series).await
}

/// `/dashboards`: the caller's and the shared dashboards, and a form for a new one.
#[component]
pub fn DashboardsPage() -> impl IntoView {
    let dashboards = Resource::new(|| (), |_| list_dashboards());
    let create = ServerAction::<CreateDashboard>::new();
    Effect::new(move |_| {
        if let Some(Ok(created)) = create.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/dashboards/{}", created.id), Default::default());
        }
    });
    view! {
        <Page title="Dashboards">
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match dashboards.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState>"No dashboards yet. A dashboard is a grid of trends, current values, alarm lists and value tables; make one below."</EmptyState>
                        }.into_any(),
                        Ok(list) => view! {
                            <table id="dashboards">
                                <thead><tr><th>"Name"</th><th>"Owner"</th><th>"Shared"</th><th>"Panels"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|d| view! {
                                        <tr>
                                            <td><a href=format!("/dashboards/{}", d.id)>{d.spec.name}</a></td>
                                            <td>{d.owner}</td>
                                            <td>{if d.spec.shared { "shared" } else { "personal" }}</td>
                                            <td>{d.spec.panels.len()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
            <h2>"New dashboard"</h2>
            <ActionForm action=create attr:class="form inline-form" attr:id="new-dashboard">
                <label>"Name " <input name="name" required/></label>
                <label><input type="checkbox" name="shared" value="on"/>" Shared with everyone (engineers)"</label>
                <button type="submit" class="button">"Create"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure(create.value().get()))/>
        </Page>
    }
    .into_any()
}

/// `/dashboards/:id`: the grid; Edit turns on the controls that add, move, resize and remove panels.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let dashboard = Resource::new(id, read_dashboard);
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Ok(view) => view! { <DashboardBoard dashboard=view/> }.into_any(),
                    Err(err) => view! {
                        <Page title="Dashboard"><p class="error" role="alert">{err.message}</p></Page>
                    }.into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn DashboardBoard(dashboard: DashboardView) -> impl IntoView {
    let id = dashboard.id;
    let spec = RwSignal::new(dashboard.spec.clone());
    let saved = RwSignal::new(dashboard.spec.clone());
    let editing = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // The version the editor's changes are based on; a save against a newer one is refused and says so.
    let version = RwSignal::new(dashboard.version);
    let save = Action::new(move |spec: &DashboardSpec| save_dashboard(id, version.get_untracked(), spec.clone()));
    Effect::new(move |_| match save.value().get() {
        Some(Ok(view)) => {
            version.set(view.version);
            saved.set(view.spec.clone());
            spec.set(view.spec);
            editing.set(false);
            error.set(None);
        }
        Some(Err(err)) => error.set(Some(err.message)),
        None => {}
    });
    let delete = ServerAction::<DeleteDashboard>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate("/dashboards", Default::default());
        }
    });
    let title = dashboard.spec.name.clone();
    let owner = format!(
        "{} · {}",
        if dashboard.spec.shared { "Shared" } else { "Personal" },
        dashboard.owner
    );
    view! {
        <Title text=title.clone()/>
        <section class="page" aria-labelledby="page-title">
            <h1 id="page-title">{title}</h1>
            <div class="toolbar">
                <span class="muted">{owner}</span>
                {dashboard.can_edit.then(|| view! {
                    <button type="button" class="button" id="edit-dashboard" class:hidden=move || editing.get()
                        on:click=move |_| editing.set(true)>"Edit"</button>
                    <button type="button" class="button" id="save-dashboard" class:hidden=move || !editing.get()
                        on:click=move |_| { save.dispatch(spec.get_untracked()); }>"Save"</button>
                    <button type="button" class="button secondary" class:hidden=move || !editing.get()
                        on:click=move |_| { spec.set(saved.get_untracked()); editing.set(false); }>"Cancel"</button>
                    <button type="button" class="button danger" class:hidden=move || !editing.get()
                        on:click=move |_| {
                            #[cfg(feature = "hydrate")]
                            let confirmed = window().confirm_with_message("Delete this dashboard?").unwrap_or(false);
                            #[cfg(not(feature = "hydrate"))]
                            let confirmed = false;
                            if confirmed {
                                delete.dispatch(DeleteDashboard { id });
                            }
                        }>"Delete dashboard"</button>
                })}
            </div>
            {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
            <FormError error=Signal::derive(move || failure(delete.value().get()))/>
            {move || editing.get().then(|| view! { <AddPanelForm spec/> })}
            <div class="dashboard-grid" id="dashboard-grid">
                {move || {
                    let panels = spec.get().panels;
                    if panels.is_empty() {
                        return view! { <EmptyState>"No panels yet: Edit, then add a trend, a value, an alarm list or a table."</EmptyState> }.into_any();
                    }
                    panels
                        .into_iter()
                        .enumerate()
                        .map(|(index, panel)| view! { <PanelView index panel spec editing/> })
                        .collect_view()
                        .into_any()
                }}
            </div>
        </section>
    }
    .into_any()
}

/// The grid classes that place a panel (the CSP allows no inline styles; style/main.css has one rule per value).
fn placement(panel: &Panel) -> String {
    format!(
        "panel panel-kind-{} col-{} span-{} row-{} rows-{}",
        panel.content.kind(),
        panel.x + 1,
        panel.w,
        panel.y + 1,
        panel.h
    )
}

#[component]
fn PanelView(index: usize, panel: Panel, spec: RwSignal<DashboardSpec>, editing: RwSignal<bool>) -> impl IntoView {
    let class = placement(&panel);
    let change = move |f: fn(&mut Panel)| {
        spec.update(|spec| {
            if let Some(panel) = spec.panels.get_mut(index) {
                f(panel);
            }
        })
    };
    let body = match panel.content.clone() {
        PanelContent::Trend { series, range } => {
            let initial = range
                .as_deref()
                .and_then(RangePreset::from_key)
                .map(ChartRange::Last)
                .unwrap_or_default();
            let range = RwSignal::new(initial);
            view! { <TrendChart series=Signal::stored(series) range=range on_range=move |r| range.set(r) reset_to=initial/> }
                .into_any()
        }
        PanelContent::Value { series } => view! { <ValuesView series=vec![series] single=true/> }.into_any(),
        PanelContent::Table { series } => view! { <ValuesView series single=false/> }.into_any(),
        PanelContent::Alarms { subtree } => view! { <SubtreeAlarms subtree/> }.into_any(),
    };
    view! {
        <section class=class data-panel=index aria-label=panel.title.clone()>
            <h2 class="panel-title">{panel.title.clone()}</h2>
            {move || editing.get().then(|| view! {
                <div class="panel-controls">
                    <button type="button" class="chip" aria-label="Move left" on:click=move |_| change(|p| p.x = p.x.saturating_sub(1))>"←"</button>
                    <button type="button" class="chip" aria-label="Move right" on:click=move |_| change(|p| if p.x + p.w < GRID_COLUMNS { p.x += 1 })>"→"</button>
                    <button type="button" class="chip" aria-label="Move up" on:click=move |_| change(|p| p.y = p.y.saturating_sub(1))>"↑"</button>
                    <button type="button" class="chip" aria-label="Move down" on:click=move |_| change(|p| if p.y + p.h < MAX_ROWS { p.y += 1 })>"↓"</button>
                    <button type="button" class="chip" aria-label="Narrower" on:click=move |_| change(|p| if p.w > 1 { p.w -= 1 })>"−W"</button>
                    <button type="button" class="chip" aria-label="Wider" on:click=move |_| change(|p| if p.x + p.w < GRID_COLUMNS { p.w += 1 })>"+W"</button>
                    <button type="button" class="chip" aria-label="Shorter" on:click=move |_| change(|p| if p.h > 1 { p.h -= 1 })>"−H"</button>
                    <button type="button" class="chip" aria-label="Taller" on:click=move |_| change(|p| if p.h < MAX_PANEL_HEIGHT { p.h += 1 })>"+H"</button>
                    <button type="button" class="chip" aria-label="Remove panel"
                        on:click=move |_| spec.update(|s| { if index < s.panels.len() { s.panels.remove(index); } })>"Remove"</button>
                </div>
            })}
            {body}
        </section>
    }
    .into_any()
}

/// How often value and table panels refresh.
const VALUES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[component]
fn ValuesView(series: Vec<SeriesRef>, single: bool) -> impl IntoView {
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), VALUES_EVERY) {
            on_cleanup(move || handle.clear());
        }
    });
    let values = Resource::new(move || tick.get(), move |_| read_series_values(series.clone()));
    let number = |value: &SeriesValue| match (value.value, &value.error) {
        (_, Some(error)) => error.clone(),
        (Some(v), None) => format!("{v:.2} {}", value.unit.clone().unwrap_or_default()),
        (None, None) => "no reading yet".into(),
    };
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let values = match values.await {
                    Ok(values) => values,
                    Err(err) => return view! { <p class="error">{err.message}</p> }.into_any(),
                };
                if single {
                    values.into_iter().map(|v| view! {
                        <p class=format!("panel-value value {}", v.band) title=v.series.to_string()>{number(&v)}</p>
                    }).collect_view().into_any()
                } else {
                    view! {
                        <table class="panel-table">
                            <tbody>
                                {values.into_iter().map(|v| view! {
                                    <tr>
                                        <td>{v.series.to_string()}</td>
                                        <td class=format!("value {}", v.band)>{number(&v)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn SubtreeAlarms(subtree: String) -> impl IntoView {
    let link = format!("/alarms?subtree={}", crate::shell::percent_encode(&subtree));
    let alarms = Resource::new(crate::alarms::live_version, move |_| {
        crate::alarms::list_alarms("active".into(), String::new(), subtree.clone(), None, None)
    });
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match alarms.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No active alarms."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="panel-alarms">
                            {list.into_iter().take(8).map(|a| view! {
                                <li>
                                    <span class=format!("sev {}", a.severity.as_str())>{a.severity.as_str()}</span>
                                    " "<a href=format!("/alarms/{}", a.id)>{a.message}</a>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(err) => view! { <p class="error">{err.message}</p> }.into_any(),
                }
            })}
        </Transition>
        <a href=link>"All alarms here"</a>
    }
    .into_any()
}

/// Adds a panel below the others; series are written one per line as `asset path|attribute`.
#[component]
fn AddPanelForm(spec: RwSignal<DashboardSpec>) -> impl IntoView {
    let kind = RwSignal::new("trend".to_string());
    let title = RwSignal::new(String::new());
    let what = RwSignal::new(String::new());
    // What the last try to add came to: an error names the input it is about (`title`, `content`) where it can.
    let outcome = RwSignal::new(None::<Result<(), AppError>>);
    let title_error = Signal::derive(move || failure_at(outcome.get(), "title"));
    let content_error = Signal::derive(move || failure_at(outcome.get(), "content"));
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let lines: Vec<String> = what
            .get_untracked()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let series: Result<Vec<SeriesRef>, String> = lines.iter().map(|l| SeriesRef::parse(l)).collect();
        let wrong = |message: String| outcome.set(Some(Err(AppError::bad_request(message).for_field("content"))));
        let content = match (kind.get_untracked().as_str(), series) {
            ("alarms", _) => Ok(PanelContent::Alarms {
                subtree: lines.first().cloned().unwrap_or_default(),
            }),
            (_, Err(message)) => Err(message),
            (_, Ok(series)) if series.is_empty() => Err("name at least one series".to_string()),
            ("value", Ok(mut series)) => Ok(PanelContent::Value {
                series: series.remove(0),
            }),
            ("table", Ok(series)) => Ok(PanelContent::Table { series }),
            (_, Ok(series)) => Ok(PanelContent::Trend { series, range: None }),
        };
        let content = match content {
            Ok(content) => content,
            Err(message) => return wrong(message),
        };
        let (w, h) = match content {
            PanelContent::Trend { .. } => (12, 4),
            PanelContent::Value { .. } => (3, 1),
            _ => (6, 2),
        };
        let mut next = spec.get_untracked();
        let panel = Panel {
            title: title.get_untracked().trim().to_string(),
            x: 0,
            y: next.next_row(),
            w,
            h,
            content,
        };
        next.panels.push(panel.clone());
        match panel.validate("the panel").and_then(|()| next.validate()) {
            Ok(()) => {
                spec.set(next);
                title.set(String::new());
                what.set(String::new());
                outcome.set(Some(Ok(())));
            }
            Err(err) => outcome.set(Some(Err(err))),
        }
    };
    view! {
        <form class="form" id="add-panel" on:submit=add>
            <label>
                "Panel "
                <select name="kind" on:change:target=move |ev| kind.set(ev.target().value())>
                    <option value="trend">"Trend"</option>
                    <option value="value">"Current value"</option>
                    <option value="table">"Table of latest values"</option>
                    <option value="alarms">"Active alarms of a subtree"</option>
                </select>
            </label>
            <label>"Title " <input name="title" bind:value=title
                aria-invalid=invalid(title_error) aria-describedby=described_by(title_error, "add-panel-title-error")/></label>
            <FieldError id="add-panel-title-error" error=title_error/>
            <label>
                "Series (one `asset path|attribute` per line), or the subtree's path"
                <textarea name="what" rows="3" bind:value=what
                    aria-invalid=invalid(content_error) aria-describedby=described_by(content_error, "add-panel-content-error")></textarea>
            </label>
            <FieldError id="add-panel-content-error" error=content_error/>
            <button type="submit" class="button">"Add panel"</button>
            <FormError error=Signal::derive(move || failure_besides(outcome.get(), &["title", "content"]))/>
        </form>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend_panel(x: u8, w: u8) -> Panel {
        Panel {
            title: "Pressure".into(),
            x,
            y: 0,
            w,
            h: 4,
            content: PanelContent::Trend {
                series: vec![SeriesRef::new("/Plant/Boiler 1", "pressure")],
                range: Some("8h".into()),
            },
        }
    }

    #[test]
    fn panels_must_fit_the_grid_and_name_what_they_show() {
        let mut spec = DashboardSpec {
            name: "Boilers".into(),
            shared: true,
            panels: vec![trend_panel(0, 12)],
        };
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.next_row(), 4);
        spec.panels.push(trend_panel(6, 7));
        assert!(spec
            .validate()
            .unwrap_err()
            .message
            .contains("fit in the grid's 12 columns"));
        spec.panels[1] = Panel {
            content: PanelContent::Alarms {
                subtree: "Plant".into(),
            },
            ..trend_panel(0, 6)
        };
        assert!(spec.validate().unwrap_err().message.contains("asset path"));
        spec.panels.pop();
        spec.name = " Boilers".into();
        assert!(spec.validate().is_err());
    }

    #[test]
    fn panels_read_and_write_their_kind_as_a_tag() {
        let json = leptos::serde_json::to_value(trend_panel(0, 12)).unwrap();
        assert_eq!(json["content"]["kind"], "trend");
        assert_eq!(json["content"]["series"][0]["asset"], "/Plant/Boiler 1");
        let back: Panel = leptos::serde_json::from_value(json).unwrap();
        assert_eq!(back, trend_panel(0, 12));
        assert_eq!(placement(&back), "panel panel-kind-trend col-1 span-12 row-1 rows-4");
    }
}

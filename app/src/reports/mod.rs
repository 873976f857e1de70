//! Reports: the shared types (`types.rs`), their server functions, the Reports page (the list, and a form that
//! defines a report: a table, a trend, the alarm summary) and a report's preview page (`/reports/:id`, with its
//! PDF, XLSX, CSV and picture downloads for the same range).

mod types;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

pub use types::*;

use crate::alarms::AlarmSummary;
use crate::charts::{ChartRange, SeriesRef, Trend, TrendChart};
use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{
    described_by, failure, failure_at, failure_besides, invalid, EmptyState, FieldError, FormError, Page,
};
use crate::time::shown;

#[server(prefix = "/_fn", endpoint = "reports/list", client = CsrfClient)]
pub async fn list_reports() -> Result<Vec<ReportView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.reports.reports(&actor).await
}

#[server(prefix = "/_fn", endpoint = "reports/create", client = CsrfClient)]
pub async fn create_report(spec: ReportSpec) -> Result<ReportView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.reports.create_report(&actor, spec).await
}

#[server(prefix = "/_fn", endpoint = "reports/delete", client = CsrfClient)]
pub async fn delete_report(id: i64) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.reports.delete_report(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "reports/render", client = CsrfClient)]
pub async fn render_report(id: i64) -> Result<RenderedReport, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .reports
        .render_report(&actor, id, None)
        .await
}

#[server(prefix = "/_fn", endpoint = "reports/run", client = CsrfClient)]
pub async fn start_report_run(id: i64, from: i64, to: i64) -> Result<ReportRun, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .reports
        .start_run(&actor, id, Some((from, to)))
        .await
}

#[server(prefix = "/_fn", endpoint = "reports/runs", client = CsrfClient)]
pub async fn list_report_runs(id: i64) -> Result<Vec<ReportRun>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.reports.runs(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "reports/cancel_run", client = CsrfClient)]
pub async fn cancel_report_run(id: i64, run: i64) -> Result<ReportRun, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.reports.cancel_run(&actor, id, run).await
}

/// How a report's range reads in a list.
fn range_text(range: &ReportRange) -> String {
    match range {
        ReportRange::Last { period } => match period {
            Period::Shift => "the last shift".into(),
            Period::Day => "the last day".into(),
            Period::Week => "the last week".into(),
            Period::Month => "the last month".into(),
        },
        ReportRange::Hours { hours } => format!("the last {hours} hours"),
        ReportRange::Absolute { .. } => "a fixed range".into(),
    }
}

/// The address of a report's download (`pdf`, `xlsx`, `csv`) for its own range as of the download.
fn download_href(id: i64, format: &str) -> String {
    format!("/api/v1/reports/{id}/report.{format}")
}

/// The same for the range a preview shows.
fn download_between(id: i64, format: &str, from: i64, to: i64) -> String {
    format!("{}?from={from}&to={to}", download_href(id, format))
}

/// `/reports`: every report, and a form that defines one.
#[component]
pub fn ReportsPage() -> impl IntoView {
    let create = ServerAction::<CreateReport>::new();
    let remove = ServerAction::<DeleteReport>::new();
    let reports = Resource::new(
        move || (create.version().get(), remove.version().get()),
        |_| list_reports(),
    );
    view! {
        <Page title="Reports">
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match reports.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState>"No reports yet. A report sums up part of the plant over the last shift, day, week or month: a table of averages, minima and maxima per asset, trends and the alarm summary, previewed here and downloaded as PDF, XLSX or CSV. Define one below."</EmptyState>
                        }.into_any(),
                        Ok(list) => view! {
                            <table id="reports">
                                <thead><tr><th>"Report"</th><th>"Scope"</th><th>"Covers"</th><th>"Time zone"</th><th>"Download"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|r| {
                                        let id = r.id;
                                        view! {
                                            <tr data-report=r.spec.name.clone()>
                                                <td><a href=format!("/reports/{id}")>{r.spec.name.clone()}</a></td>
                                                <td>{r.spec.scope.under.clone()}{r.spec.scope.template.clone().map(|t| format!(" ({t})"))}</td>
                                                <td>{range_text(&r.spec.range)}</td>
                                                <td>{r.spec.time_zone.clone()}</td>
                                                <td>
                                                    <a href=download_href(id, "pdf") download>"PDF"</a>" · "
                                                    <a href=download_href(id, "xlsx") download>"XLSX"</a>" · "
                                                    <a href=download_href(id, "csv") download>"CSV"</a>
                                                </td>
                                                <td>{r.can_edit.then(|| view! {
                                                    <button type="button" class="button danger" on:click=move |_| { remove.dispatch(DeleteReport { id }); }>"Delete"</button>
                                                })}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
            <FormError error=Signal::derive(move || crate::shell::failure(remove.value().get()))/>
            <h2>"New report"</h2>
            <NewReportForm create/>
        </Page>
    }
}

/// Defines a report of one table (attributes × aggregates per asset, per hour or day if asked) under a heading.
#[component]
fn NewReportForm(create: ServerAction<CreateReport>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let under = RwSignal::new(String::new());
    let template = RwSignal::new(String::new());
    let period = RwSignal::new("day".to_string());
    let zone = RwSignal::new(crate::time::browser_zone().unwrap_or_else(|| "UTC".into()));
    let attributes = RwSignal::new(String::new());
    let interval = RwSignal::new(String::new());
    let trend = RwSignal::new(String::new());
    let alarms = RwSignal::new(true);
    let schedule = RwSignal::new(String::new());
    let chosen: Vec<(Aggregate, RwSignal<bool>)> = [
        Aggregate::Average,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::First,
        Aggregate::Last,
        Aggregate::Sum,
        Aggregate::Count,
    ]
    .into_iter()
    .map(|a| {
        (
            a,
            RwSignal::new(matches!(a, Aggregate::Average | Aggregate::Min | Aggregate::Max)),
        )
    })
    .collect();
    // A check in the browser first, then the server's answer: either names the field it is about.
    let checked = RwSignal::new(None::<Result<(), AppError>>);
    let outcome = Signal::derive(move || match checked.get() {
        Some(Err(err)) => Some(Err(err)),
        _ => create.value().get().map(|result| result.map(|_| ())),
    });
    let error_of = move |field: &'static str| Signal::derive(move || failure_at(outcome.get(), field));
    let (name_error, scope_error, zone_error, sections_error, schedule_error) = (
        error_of("name"),
        error_of("scope"),
        error_of("time_zone"),
        error_of("sections"),
        error_of("schedule"),
    );
    let aggregates = chosen.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let period = match period.get_untracked().as_str() {
            "shift" => Period::Shift,
            "week" => Period::Week,
            "month" => Period::Month,
            _ => Period::Day,
        };
        let interval = match interval.get_untracked().as_str() {
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            _ => None,
        };
        let spec = ReportSpec {
            schedule: None,
            name: name.get_untracked().trim().to_string(),
            scope: ReportScope {
                under: under.get_untracked().trim().to_string(),
                template: Some(template.get_untracked().trim().to_string()).filter(|t| !t.is_empty()),
            },
            range: ReportRange::Last { period },
            time_zone: zone.get_untracked().trim().to_string(),
            sections: vec![
                ReportSection::Text {
                    heading: "{scope}, {from} to {to}".into(),
                    body: String::new(),
                },
                ReportSection::Table {
                    title: String::new(),
                    attributes: attributes
                        .get_untracked()
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect(),
                    aggregates: aggregates
                        .iter()
                        .filter(|(_, on)| on.get_untracked())
                        .map(|(a, _)| *a)
                        .collect(),
                    interval,
                },
            ],
        };
        let mut spec = spec;
        spec.schedule = Some(schedule.get_untracked().trim().to_string())
            .filter(|cron| !cron.is_empty())
            .map(|cron| ReportSchedule { cron });
        let series: Vec<SeriesRef> = trend
            .get_untracked()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                SeriesRef::parse(line).unwrap_or_else(|_| SeriesRef {
                    asset: line.to_string(),
                    attribute: String::new(),
                })
            })
            .collect();
        if !series.is_empty() {
            spec.sections.push(ReportSection::Trend {
                title: "Trend".into(),
                series,
            });
        }
        if alarms.get_untracked() {
            spec.sections.push(ReportSection::Alarms { title: "Alarms".into() });
        }
        match spec.validate() {
            Ok(()) => {
                checked.set(None);
                create.dispatch(CreateReport { spec });
            }
            Err(err) => checked.set(Some(Err(err))),
        }
    };
    view! {
        <form class="form" id="new-report" on:submit=submit>
            <label>"Name " <input name="name" bind:value=name required placeholder="Line 1 daily"
                aria-invalid=invalid(name_error) aria-describedby=described_by(name_error, "report-name-error")/></label>
            <FieldError id="report-name-error" error=name_error/>
            <label>"Assets under " <input name="under" bind:value=under required placeholder="/North Plant/Line 1"
                aria-invalid=invalid(scope_error) aria-describedby=described_by(scope_error, "report-scope-error")/></label>
            <FieldError id="report-scope-error" error=scope_error/>
            <label>"Only of template " <input name="template" bind:value=template placeholder="(any)"/></label>
            <label>
                "Covers "
                <select name="period" on:change:target=move |ev| period.set(ev.target().value())>
                    <option value="shift">"the last shift"</option>
                    <option value="day" selected>"the last day"</option>
                    <option value="week">"the last week"</option>
                    <option value="month">"the last month"</option>
                </select>
            </label>
            <label>"Time zone " <input name="time_zone" bind:value=zone
                aria-invalid=invalid(zone_error) aria-describedby=described_by(zone_error, "report-zone-error")/></label>
            <FieldError id="report-zone-error" error=zone_error/>
            <label>"Attributes (comma-separated) " <input name="attributes" bind:value=attributes placeholder="flow, pressure"
                aria-invalid=invalid(sections_error) aria-describedby=described_by(sections_error, "report-sections-error")/></label>
            <FieldError id="report-sections-error" error=sections_error/>
            <fieldset class="aggregates">
                <legend>"Aggregates"</legend>
                {chosen.into_iter().map(|(aggregate, on)| view! {
                    <label><input type="checkbox" name=aggregate.as_str() bind:checked=on/>" "{aggregate.as_str()}</label>
                }).collect_view()}
            </fieldset>
            <label>
                "Rows "
                <select name="interval" on:change:target=move |ev| interval.set(ev.target().value())>
                    <option value="" selected>"one per asset"</option>
                    <option value="hour">"per asset and hour"</option>
                    <option value="day">"per asset and day"</option>
                </select>
            </label>
            <label>"Trend of (one series per line: asset path|attribute) "
                <textarea name="trend" rows="3" bind:value=trend placeholder="/North Plant/Line 1/Pump 1|flow"
                    aria-invalid=invalid(sections_error) aria-describedby=described_by(sections_error, "report-sections-error")></textarea>
            </label>
            <label><input type="checkbox" name="alarms" bind:checked=alarms/>" The alarm summary (ISA-18.2)"</label>
            <label>"Schedule: cron, in the report's zone (optional) "
                <input name="schedule" bind:value=schedule placeholder="5 6 * * *"
                    aria-invalid=invalid(schedule_error) aria-describedby=described_by(schedule_error, "report-schedule-error")/>
            </label>
            <FieldError id="report-schedule-error" error=schedule_error/>
            <button type="submit" class="button">"Create report"</button>
            <FormError error=Signal::derive(move || failure_besides(outcome.get(), &["name", "scope", "time_zone", "sections", "schedule"]))/>
        </form>
    }
}

/// `/reports/:id`: the report worked out for its range, as the runner may see it, and its downloads.
#[component]
pub fn ReportPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let report = Resource::new(id, render_report);
    view! {
        <Transition fallback=|| view! { <p>"Working the report out…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(report) => view! { <ReportView report id=id()/> }.into_any(),
                    Err(err) => view! {
                        <Page title="Report"><p class="error" role="alert">{err.message}</p></Page>
                    }.into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn ReportView(report: RenderedReport, id: i64) -> impl IntoView {
    let (from, to) = (report.from, report.to);
    view! {
        <Title text=report.name.clone()/>
        <section class="page" aria-labelledby="page-title">
            <h1 id="page-title">{report.name.clone()}</h1>
            <p class="muted" id="report-range">
                {report.scope.clone()}" · "{shown(report.from)}" to "{shown(report.to)}" · "{report.time_zone.clone()}
            </p>
            <p class="toolbar">
                <a class="button" href=download_between(id, "pdf", from, to) download>"Download PDF"</a>
                <a class="button" href=download_between(id, "xlsx", from, to) download>"Download XLSX"</a>
                <a class="button" href=download_between(id, "csv", from, to) download>"Download CSV"</a>
            </p>
            <ReportRuns id from to/>
            {report.sections.into_iter().enumerate().map(|(index, section)| match section {
                RenderedSection::Trend { title, trend, hidden } => view! {
                    <TrendSection title trend hidden picture=format!(
                        "/api/v1/reports/{id}/trend.{{format}}?section={}&from={from}&to={to}", index + 1
                    )/>
                }.into_any(),
                RenderedSection::Alarms { title, summary } => view! {
                    <AlarmsSection title summary/>
                }.into_any(),
                RenderedSection::Text { heading, body } => view! {
                    <section class="report-text">
                        <h2>{heading}</h2>
                        {(!body.is_empty()).then(|| view! { <p>{body}</p> })}
                    </section>
                }.into_any(),
                RenderedSection::Table { title, columns, rows } => view! {
                    <section class="report-table">
                        {(!title.is_empty()).then(|| view! { <h2>{title}</h2> })}
                        {if rows.is_empty() {
                            view! { <EmptyState>"No asset in the scope (within your grants) has these attributes."</EmptyState> }.into_any()
                        } else {
                            view! {
                                <table class="report">
                                    <thead><tr>
                                        <th>"Asset"</th><th>"From"</th><th>"To"</th>
                                        {columns.iter().map(|c| view! {
                                            <th>{format!("{} {}", c.attribute, c.aggregate.as_str())}{c.unit.clone().map(|u| format!(" ({u})"))}</th>
                                        }).collect_view()}
                                    </tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|row| view! {
                                            <tr>
                                                <td>{row.asset}</td><td>{shown(row.from)}</td><td>{shown(row.to)}</td>
                                                {row.cells.into_iter().map(|cell| view! { <td class="number">{cell_text(cell)}</td> }).collect_view()}
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                }.into_any(),
            }).collect_view()}
        </section>
    }
}

/// A trend section: the live chart of its series over the report's range (zoomable, as on the Trends page), and
/// its picture as SVG and PNG.
#[component]
fn TrendSection(
    title: String,
    trend: Trend,
    hidden: u32,
    /// The picture's address, with `{format}` for `svg` or `png`.
    picture: String,
) -> impl IntoView {
    let series: Vec<SeriesRef> = trend
        .series
        .iter()
        .map(|s| SeriesRef::new(s.asset_path.clone(), s.attribute.clone()))
        .collect();
    let empty = series.is_empty();
    let reset_to = ChartRange::Between {
        from: trend.from,
        to: trend.to,
    };
    let range = RwSignal::new(reset_to);
    view! {
        <section class="report-trend">
            {(!title.is_empty()).then(|| view! { <h2>{title}</h2> })}
            {if empty {
                view! { <EmptyState>"None of this trend's series is within your grants."</EmptyState> }.into_any()
            } else {
                view! {
                    <TrendChart series=Signal::derive(move || series.clone()) range=range on_range=move |r| range.set(r) reset_to/>
                    <p class="toolbar">
                        <a class="button" href=picture.replace("{format}", "svg") download>"Picture (SVG)"</a>
                        <a class="button" href=picture.replace("{format}", "png") download>"Picture (PNG)"</a>
                    </p>
                }.into_any()
            }}
            {(hidden > 0).then(|| view! {
                <p class="muted">{format!("{hidden} series of this trend are outside your grants and not shown.")}</p>
            })}
        </section>
    }
}

/// The alarm summary: the figures, the most frequent alarms and the standing ones.
#[component]
fn AlarmsSection(title: String, summary: AlarmSummary) -> impl IntoView {
    let facts = summary.facts();
    view! {
        <section class="report-alarms">
            {(!title.is_empty()).then(|| view! { <h2>{title}</h2> })}
            <dl class="facts">
                {facts.into_iter().map(|(label, fact)| view! {
                    <dt>{label}</dt>
                    <dd id=(label == "Raised").then_some("alarms-raised")>{fact}</dd>
                }).collect_view()}
            </dl>
            <h3>"Most frequent"</h3>
            {if summary.most_frequent.is_empty() {
                view! { <p class="muted">"No alarm was raised in this range."</p> }.into_any()
            } else {
                view! {
                    <table class="report" id="most-frequent">
                        <thead><tr><th>"Asset"</th><th>"Attribute"</th><th>"Rule"</th><th>"Severity"</th><th>"Raised"</th></tr></thead>
                        <tbody>
                            {summary.most_frequent.into_iter().map(|f| view! {
                                <tr>
                                    <td>{f.asset_path}</td><td>{f.attribute}</td><td>{f.rule}</td>
                                    <td>{f.severity.as_str()}</td><td class="number">{f.count}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <h3>"Standing (active for more than 24 hours at the end of the range)"</h3>
            {if summary.standing.is_empty() {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! {
                    <table class="report" id="standing">
                        <thead><tr><th>"Asset"</th><th>"Attribute"</th><th>"Severity"</th><th>"Since"</th><th>"Message"</th></tr></thead>
                        <tbody>
                            {summary.standing.into_iter().map(|a| view! {
                                <tr>
                                    <td><a href=format!("/alarms/{}", a.id)>{a.asset_path}</a></td><td>{a.attribute}</td>
                                    <td>{a.severity.as_str()}</td><td>{shown(a.started_at)}</td><td>{a.message}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

/// A report's runs: "Run" queues one for the range shown (worked out in the background, by any instance), its
/// progress shows as it goes (cancellable), and its files are offered once it is done; below, the history,
/// scheduled runs included.
#[component]
fn ReportRuns(id: i64, from: i64, to: i64) -> impl IntoView {
    let start = ServerAction::<StartReportRun>::new();
    let cancel = ServerAction::<CancelReportRun>::new();
    let tick = RwSignal::new(0u64);
    let runs = Resource::new(
        move || (tick.get(), start.version().get(), cancel.version().get()),
        move |_| list_report_runs(id),
    );
    // While a run is under way, look again every second.
    let busy = move || {
        runs.get()
            .and_then(Result::ok)
            .is_some_and(|runs| runs.iter().any(|r| !r.status.is_final()))
    };
    Effect::new(move |_| {
        if busy() {
            if let Ok(handle) =
                set_interval_with_handle(move || tick.update(|t| *t += 1), std::time::Duration::from_secs(1))
            {
                on_cleanup(move || handle.clear());
            }
        }
    });
    let file = move |run: i64, format: &str| format!("/api/v1/reports/{id}/runs/{run}/report.{format}");
    view! {
        <section class="report-runs" aria-labelledby="runs-title">
            <h2 id="runs-title">"Runs"</h2>
            <p class="toolbar">
                <button class="button" id="run-report" on:click=move |_| { start.dispatch(StartReportRun { id, from, to }); }>
                    "Run in the background"
                </button>
            </p>
            <FormError error=Signal::derive(move || failure(start.value().get()))/>
            <FormError error=Signal::derive(move || failure(cancel.value().get()))/>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(runs) if runs.is_empty() => view! {
                            <p class="muted">"No runs yet. A run works the report out in the background and keeps its PDF, XLSX and CSV; a schedule makes runs by itself."</p>
                        }.into_any(),
                        Ok(runs) => view! {
                            <table class="report" id="runs">
                                <thead><tr><th>"Asked"</th><th>"By"</th><th>"Range"</th><th>"Status"</th><th>"Files"</th></tr></thead>
                                <tbody>
                                    {runs.into_iter().map(|run| {
                                        let run_id = run.id;
                                        let by = match run.scheduled_for {
                                            Some(_) => format!("schedule (as {})", run.requester),
                                            None => run.requester.clone(),
                                        };
                                        let status = match run.status {
                                            RunStatus::Running => format!("running, {} %", run.progress),
                                            RunStatus::Failed => format!("failed: {}", run.message.clone().unwrap_or_default()),
                                            other => other.as_str().to_string(),
                                        };
                                        view! {
                                            <tr data-run=run_id data-status=run.status.as_str()>
                                                <td>{shown(run.created_at)}</td>
                                                <td>{by}</td>
                                                <td>{shown(run.from)}" – "{shown(run.to)}</td>
                                                <td>
                                                    {status}
                                                    {(run.status == RunStatus::Running).then(|| view! {
                                                        " "<progress max="100" value=run.progress aria-label="Progress"></progress>
                                                    })}
                                                    {(!run.status.is_final()).then(|| view! {
                                                        " "<button class="button danger" on:click=move |_| { cancel.dispatch(CancelReportRun { id, run: run_id }); }>"Cancel"</button>
                                                    })}
                                                </td>
                                                <td>
                                                    {run.formats.iter().map(|format| view! {
                                                        <a href=file(run_id, format) download>{format.to_uppercase()}</a>" "
                                                    }).collect_view()}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

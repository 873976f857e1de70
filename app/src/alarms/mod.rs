//! Alarms in the UI: the alarm list (filters, sorting, acknowledging one or many, the ISA-18.2 load figure), an
//! alarm's page (the readings around it, comments, shelving), the live feed (bell, toasts) and the server
//! functions behind them; and the shared types of the REST API.

mod live;
mod types;

pub use live::{live_version, provide_live_alarms, AlarmBadges, AlarmBell, AlarmToasts};
pub use types::*;

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::charts::{trend_href, ChartRange, SeriesRef};
use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{failure, EmptyState, FormError, Page};
use crate::timeseries::SeriesData;

/// Occurrences by the list page's filters, newest first: `state` (open, active, unacknowledged, shelved, all), one
/// `severity`, a `subtree` (path or id), for the history the last `hours`, and at most `limit` (default 500).
#[server(prefix = "/_fn", endpoint = "alarms/list", client = CsrfClient)]
pub async fn list_alarms(
    state: String,
    severity: String,
    subtree: String,
    hours: Option<u32>,
    limit: Option<u32>,
) -> Result<Vec<AlarmView>, AppError> {
    let actor = crate::services::current_actor()?;
    let filter = AlarmFilter {
        state: Some(state),
        severity: Some(severity),
        subtree: Some(subtree),
        from: hours.map(|h| now_ms() - i64::from(h) * 3_600_000),
        to: None,
        limit: Some(limit.unwrap_or(500)),
    };
    crate::services::services()?.alarms.list(&actor, filter).await
}

/// Active alarms by severity in a subtree (or everywhere the caller may look).
#[server(prefix = "/_fn", endpoint = "alarms/counts", client = CsrfClient)]
pub async fn count_alarms(asset: Option<i64>) -> Result<AlarmCounts, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.alarms.counts(&actor, asset).await
}

/// The counts of each asset's subtree, for a level of the explorer.
#[server(prefix = "/_fn", endpoint = "alarms/counts_of", client = CsrfClient)]
pub async fn count_alarms_of(assets: Vec<i64>) -> Result<Vec<(i64, AlarmCounts)>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.alarms.counts_of(&actor, &assets).await
}

/// Alarms raised per 10 minutes over the last 24 hours, in a subtree or everywhere the caller may look.
#[server(prefix = "/_fn", endpoint = "alarms/load", client = CsrfClient)]
pub async fn measure_alarm_load(subtree: String) -> Result<AlarmLoad, AppError> {
    const PERIODS: usize = 24 * 6;
    let actor = crate::services::current_actor()?;
    let services = crate::services::services()?;
    let now = now_ms();
    let filter = AlarmFilter {
        state: Some("all".into()),
        subtree: Some(subtree),
        from: Some(now - PERIODS as i64 * AlarmLoad::PERIOD_MS),
        limit: Some(MAX_LIST),
        ..AlarmFilter::default()
    };
    let alarms = services.alarms.list(&actor, filter).await?;
    let capped = alarms.len() == MAX_LIST as usize;
    Ok(AlarmLoad::count(
        now,
        PERIODS,
        alarms.iter().map(|a| a.started_at),
        capped,
    ))
}

#[server(prefix = "/_fn", endpoint = "alarms/acknowledge", client = CsrfClient)]
pub async fn acknowledge_alarms(ids: Vec<i64>, comment: String) -> Result<usize, AppError> {
    let actor = crate::services::current_actor()?;
    let comment = Some(comment).filter(|c| !c.trim().is_empty());
    let acknowledged = crate::services::services()?
        .alarms
        .acknowledge(&actor, AckRequest { ids, comment })
        .await?;
    Ok(acknowledged.len())
}

/// An alarm with its comments, and the readings of its attribute from shortly before it started until shortly
/// after it ended (or now).
#[server(prefix = "/_fn", endpoint = "alarms/get", client = CsrfClient)]
pub async fn load_alarm_page(id: i64) -> Result<(AlarmDetail, Option<SeriesData>), AppError> {
    const AROUND_MS: i64 = 10 * 60 * 1000;
    let actor = crate::services::current_actor()?;
    let services = crate::services::services()?;
    let detail = services.alarms.get(&actor, id).await?;
    let alarm = &detail.alarm;
    let now = now_ms();
    let from = alarm.started_at - AROUND_MS;
    let to = alarm.ended_at.map_or(now, |end| end + AROUND_MS).min(now) + 1;
    // A no-data alarm's attribute may have no readings at all; the page still shows the alarm.
    let query = crate::timeseries::DataQuery {
        from: Some(from.to_string()),
        to: Some(to.max(from + 1).to_string()),
        points: Some(120),
    };
    let readings = services
        .timeseries
        .data(&actor, alarm.asset_id, &alarm.attribute, &query)
        .await
        .ok();
    Ok((detail, readings))
}

#[server(prefix = "/_fn", endpoint = "alarms/shelve", client = CsrfClient)]
pub async fn shelve_alarm(id: i64, minutes: u32, reason: String) -> Result<AlarmView, AppError> {
    let actor = crate::services::current_actor()?;
    let reason = Some(reason).filter(|r| !r.trim().is_empty());
    crate::services::services()?
        .alarms
        .shelve(&actor, id, ShelveRequest { minutes, reason })
        .await
}

#[server(prefix = "/_fn", endpoint = "alarms/comment", client = CsrfClient)]
pub async fn comment_alarm(id: i64, text: String) -> Result<AlarmComment, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .alarms
        .comment(&actor, id, NewComment { text })
        .await
}

#[cfg(feature = "ssr")]
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `9.5 bar`, or a dash when there is no value.
pub fn value_with_unit(value: Option<f64>, unit: Option<&str>) -> String {
    match (value, unit) {
        (Some(value), Some(unit)) if !unit.is_empty() => format!("{value} {unit}"),
        (Some(value), _) => value.to_string(),
        (None, _) => "—".into(),
    }
}

/// What a row says about suppression, after the state.
fn suppression(alarm: &AlarmView) -> Option<String> {
    if alarm.out_of_service {
        Some("out of service".into())
    } else {
        alarm
            .shelved_until
            .map(|until| format!("shelved until {}", crate::time::shown_time(until)))
    }
}

/// How the list is ordered: most severe first (then newest), or by time.
fn sort_alarms(alarms: &mut [AlarmView], sort: &str) {
    match sort {
        "oldest" => alarms.sort_by_key(|a| (a.started_at, a.id)),
        "newest" => alarms.sort_by_key(|a| std::cmp::Reverse((a.started_at, a.id))),
        _ => alarms.sort_by_key(|a| std::cmp::Reverse((a.severity, a.active, !a.acknowledged, a.started_at, a.id))),
    }
}

#[component]
pub fn AlarmsPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &str| query.read().get(name).unwrap_or_default();
    let ack = ServerAction::<AcknowledgeAlarms>::new();
    let alarms = Resource::new(
        move || {
            (
                param("state"),
                param("severity"),
                param("subtree"),
                param("hours"),
                live_version(),
                ack.version().get(),
            )
        },
        |(state, severity, subtree, hours, _, _)| list_alarms(state, severity, subtree, hours.parse().ok(), None),
    );
    let load = Resource::new(
        move || (param("subtree"), live_version()),
        |(subtree, _)| measure_alarm_load(subtree),
    );
    let selected = RwSignal::new(Vec::<i64>::new());
    Effect::new(move |_| {
        if let Some(Ok(_)) = ack.value().get() {
            selected.set(Vec::new());
        }
    });
    let option = move |name: &'static str, value: &'static str, label: &'static str| {
        view! { <option value=value selected=move || param(name) == value>{label}</option> }
    };
    view! {
        <Page title="Alarms">
            <form method="get" action="/alarms" class="form inline-form" id="alarm-filters">
                <label>
                    "State"
                    <select name="state">
                        {option("state", "", "Open (active or unacknowledged)")}
                        {option("state", "active", "Active")}
                        {option("state", "unacknowledged", "Unacknowledged")}
                        {option("state", "shelved", "Shelved or out of service")}
                        {option("state", "all", "History (all occurrences)")}
                    </select>
                </label>
                <label>
                    "Severity"
                    <select name="severity">
                        {option("severity", "", "Any")}
                        {option("severity", "critical", "Critical")}
                        {option("severity", "high", "High")}
                        {option("severity", "medium", "Medium")}
                        {option("severity", "low", "Low")}
                    </select>
                </label>
                <label>"Subtree (path)" <input name="subtree" placeholder="/Site A" value=move || param("subtree")/></label>
                <label>"Started in the last (hours)" <input name="hours" inputmode="numeric" size="4" value=move || param("hours")/></label>
                <label>
                    "Sort"
                    <select name="sort">
                        {option("sort", "", "Severity")}
                        {option("sort", "newest", "Newest first")}
                        {option("sort", "oldest", "Oldest first")}
                    </select>
                </label>
                <button type="submit" class="button">"Show"</button>
            </form>
            <FormError error=Signal::derive(move || failure(ack.value().get()))/>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let mut alarms = match alarms.await {
                        Ok(alarms) => alarms,
                        Err(err) => return view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    };
                    if alarms.is_empty() {
                        return view! { <EmptyState>"No alarms match. New ones appear here as they are raised by the alarm rules of the templates (Templates page) and of assets."</EmptyState> }.into_any();
                    }
                    sort_alarms(&mut alarms, &param("sort"));
                    let unacknowledged: Vec<i64> = alarms.iter().filter(|a| !a.acknowledged).map(|a| a.id).collect();
                    view! {
                        <div class="toolbar">
                            <button type="button" class="button" id="ack-selected"
                                disabled=move || selected.read().is_empty()
                                on:click=move |_| { ack.dispatch(AcknowledgeAlarms { ids: selected.get_untracked(), comment: String::new() }); }>
                                "Acknowledge selected"
                            </button>
                            {(!unacknowledged.is_empty()).then(|| {
                                let count = unacknowledged.len();
                                view! {
                                    <button type="button" class="button" id="ack-all"
                                        on:click=move |_| { ack.dispatch(AcknowledgeAlarms { ids: unacknowledged.clone(), comment: String::new() }); }>
                                        {format!("Acknowledge all {count} shown")}
                                    </button>
                                }
                            })}
                        </div>
                        <AlarmTable alarms ack selected/>
                    }.into_any()
                })}
            </Transition>
            <h2>"Alarm load, last 24 hours"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match load.await {
                        Ok(load) => view! { <LoadFigure load/> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </Page>
    }
}

#[component]
fn AlarmTable(
    alarms: Vec<AlarmView>,
    ack: ServerAction<AcknowledgeAlarms>,
    selected: RwSignal<Vec<i64>>,
) -> impl IntoView {
    view! {
        <table id="alarms">
            <thead><tr>
                <th><span class="visually-hidden">"Select"</span></th><th>"Severity"</th><th>"State"</th>
                <th>"Asset"</th><th>"Message"</th><th>"Started"</th><th>"Value"</th><th>"Ended"</th><th></th>
            </tr></thead>
            <tbody>
                {alarms.into_iter().map(|alarm| {
                    let id = alarm.id;
                    let severity = alarm.severity.as_str();
                    let unit = alarm.unit.clone();
                    let note = suppression(&alarm);
                    view! {
                        <tr class=format!("alarm {severity}") data-alarm=id>
                            <td>
                                <input type="checkbox" aria-label=format!("Select alarm {id}")
                                    prop:checked=move || selected.read().contains(&id)
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        selected.update(|s| { s.retain(|&x| x != id); if on { s.push(id); } });
                                    }/>
                            </td>
                            <td><span class=format!("sev {severity}")>{severity}</span></td>
                            <td class="state">{alarm.state.label()}{note.map(|n| view! { <br/><span class="muted">{n}</span> })}</td>
                            <td><a href=format!("/assets/{}", alarm.asset_id)>{alarm.asset_path}</a><br/><span class="muted">{alarm.attribute}</span></td>
                            <td>{alarm.message}</td>
                            <td>{crate::time::shown(alarm.started_at)}</td>
                            <td>{value_with_unit(alarm.start_value, unit.as_deref())}</td>
                            <td>{crate::time::shown_or(alarm.ended_at, "")}</td>
                            <td class="actions">
                                {(!alarm.acknowledged).then(|| view! {
                                    <button type="button" class="button ack"
                                        on:click=move |_| { ack.dispatch(AcknowledgeAlarms { ids: vec![id], comment: String::new() }); }>
                                        "Acknowledge"
                                    </button>
                                })}
                                <a href=format!("/alarms/{id}")>"Details"</a>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Alarms per 10 minutes as bars, against ISA-18.2's manageable rate and flood threshold.
#[component]
pub fn LoadFigure(load: AlarmLoad) -> impl IntoView {
    const BAR: usize = 4;
    const HEIGHT: f64 = 80.0;
    let scale = f64::from(load.peak().max(AlarmLoad::FLOOD + 2));
    let y = move |n: u32| HEIGHT - f64::from(n) / scale * HEIGHT;
    let width = load.per_period.len() * BAR;
    let busiest = load
        .per_period
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, *i))
        .filter(|(_, n)| **n > 0)
        .map(|(i, _)| crate::time::shown_time(load.start + i as i64 * load.period_ms));
    let summary = format!(
        "{} alarm{}; {:.2} per 10 minutes on average; peak {}{}; {} periods over {} (the most an operator can \
         manage), {} floods (over {}).",
        load.total(),
        if load.total() == 1 { "" } else { "s" },
        load.average(),
        load.peak(),
        busiest.map(|at| format!(" (from {at})")).unwrap_or_default(),
        load.periods_over(AlarmLoad::MANAGEABLE),
        AlarmLoad::MANAGEABLE,
        load.periods_over(AlarmLoad::FLOOD),
        AlarmLoad::FLOOD,
    );
    view! {
        <figure class="load" id="alarm-load">
            <svg viewBox=format!("0 0 {width} {HEIGHT}") width=width height=HEIGHT role="img" aria-label=summary.clone()>
                {load.per_period.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| {
                    let class = if n > AlarmLoad::FLOOD { "flood" } else if n > AlarmLoad::MANAGEABLE { "over" } else { "ok" };
                    view! { <rect class=class x=i * BAR y=y(n) width=BAR - 1 height=HEIGHT - y(n)><title>{format!("{}: {n}", crate::time::shown_time(load.start + i as i64 * load.period_ms))}</title></rect> }
                }).collect_view()}
                <line class="limit" x1="0" x2=width y1=y(AlarmLoad::MANAGEABLE) y2=y(AlarmLoad::MANAGEABLE)/>
                <line class="limit flood" x1="0" x2=width y1=y(AlarmLoad::FLOOD) y2=y(AlarmLoad::FLOOD)/>
            </svg>
            <figcaption>
                {summary}
                {load.capped.then_some(" Counted from the newest 5,000 alarms only: the real load is higher.")}
                " ISA-18.2 counts alarms per operator; this counts every alarm you may see."
            </figcaption>
        </figure>
    }
}

#[component]
pub fn AlarmPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let ack = ServerAction::<AcknowledgeAlarms>::new();
    let shelve = ServerAction::<ShelveAlarm>::new();
    let comment = ServerAction::<CommentAlarm>::new();
    let page = Resource::new(
        move || {
            (
                id(),
                live_version(),
                ack.version().get(),
                shelve.version().get(),
                comment.version().get(),
            )
        },
        |(id, ..)| async move {
            match id {
                Some(id) => load_alarm_page(id).await,
                None => Err(AppError::not_found("there is no such alarm")),
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let (detail, readings) = match page.await {
                    Ok(page) => page,
                    Err(err) => return view! { <Page title="Alarm"><p class="error" role="alert">{err.message}</p></Page> }.into_any(),
                };
                let alarm = detail.alarm;
                let id = alarm.id;
                let unit = alarm.unit.clone();
                let note = suppression(&alarm);
                view! {
                    <Page title="Alarm">
                        <p class="lead"><span class=format!("sev {}", alarm.severity.as_str())>{alarm.severity.as_str()}</span>" "{alarm.message.clone()}</p>
                        <dl class="status" id="alarm-detail">
                            <dt>"State"</dt><dd class="state">{alarm.state.label()}{note.map(|n| format!(" ({n})"))}</dd>
                            <dt>"Asset"</dt><dd><a href=format!("/assets/{}", alarm.asset_id)>{alarm.asset_path.clone()}</a></dd>
                            <dt>"Attribute"</dt><dd>{alarm.attribute.clone()}</dd>
                            <dt>"Rule"</dt><dd>{alarm.rule.clone()}</dd>
                            <dt>"Started"</dt><dd>{crate::time::shown(alarm.started_at)}" at "{value_with_unit(alarm.start_value, unit.as_deref())}</dd>
                            <dt>"Ended"</dt><dd>{match alarm.ended_at {
                                Some(end) => format!("{} at {}", crate::time::shown_time(end), value_with_unit(alarm.end_value, unit.as_deref())),
                                None => "still active".into(),
                            }}</dd>
                            <dt>"Acknowledged"</dt><dd>{match (alarm.acknowledged_at, alarm.acknowledged_by.clone()) {
                                (Some(at), Some(by)) => format!("{} by {by}", crate::time::shown_time(at)),
                                _ => "not yet".into(),
                            }}</dd>
                        </dl>
                        {(!alarm.acknowledged).then(|| view! {
                            <button type="button" class="button" id="ack-alarm"
                                on:click=move |_| { ack.dispatch(AcknowledgeAlarms { ids: vec![id], comment: String::new() }); }>
                                "Acknowledge"
                            </button>
                        })}
                        <FormError error=Signal::derive(move || failure(ack.value().get()))/>
                        <h2>"Readings around the alarm"</h2>
                        {readings.as_ref().map(|r| {
                            // The window the server read (the same in the browser: it comes with the page's data).
                            let series = [SeriesRef::new(alarm.asset_path.clone(), alarm.attribute.clone())];
                            let range = ChartRange::Between { from: r.from, to: r.to };
                            view! { <p><a href=trend_href(&series, range) id="alarm-trend">"Open the trend"</a></p> }
                        })}
                        <Readings readings unit/>
                        <h2>"Comments"</h2>
                        {if detail.comments.is_empty() {
                            view! { <p class="muted">"No comments yet."</p> }.into_any()
                        } else {
                            view! {
                                <ul class="comments" id="alarm-comments">
                                    {detail.comments.into_iter().map(|c| view! {
                                        <li><strong>{c.author}</strong>" · "<span class="muted">{crate::time::shown(c.at)}</span><br/>{c.text}</li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        }}
                        <ActionForm action=comment attr:class="form inline-form" attr:id="comment-alarm">
                            <input type="hidden" name="id" value=id/>
                            <label>"Comment" <input name="text" required size="40"/></label>
                            <button type="submit" class="button">"Add comment"</button>
                        </ActionForm>
                        <FormError error=Signal::derive(move || failure(comment.value().get()))/>
                        <h2>"Shelve"</h2>
                        <p class="muted">"A shelved alarm stays in the list but sends no notifications until the time is up. 0 minutes unshelves it."</p>
                        <ActionForm action=shelve attr:class="form inline-form" attr:id="shelve-alarm">
                            <input type="hidden" name="id" value=id/>
                            <label>"Minutes" <input name="minutes" inputmode="numeric" value="60" size="6" required/></label>
                            <label>"Reason" <input name="reason" size="30"/></label>
                            <button type="submit" class="button">"Shelve"</button>
                        </ActionForm>
                        <FormError error=Signal::derive(move || failure(shelve.value().get()))/>
                        <p><a href="/alarms">"All alarms"</a></p>
                    </Page>
                }.into_any()
            })}
        </Transition>
    }
}

/// The attribute's readings as a table (the trend chart replaces it once charts exist).
#[component]
fn Readings(readings: Option<SeriesData>, unit: Option<String>) -> impl IntoView {
    let Some(readings) = readings.filter(|r| !r.points.is_empty() || !r.buckets.is_empty()) else {
        return view! { <p class="muted">"No readings in this period."</p> }.into_any();
    };
    let rows: Vec<(i64, String)> = if readings.buckets.is_empty() {
        readings
            .points
            .iter()
            .map(|p| (p.ts, value_with_unit(Some(p.value), unit.as_deref())))
            .collect()
    } else {
        readings
            .buckets
            .iter()
            .map(|b| {
                let text = format!(
                    "{} (min {}, max {})",
                    value_with_unit(Some((b.avg() * 1000.0).round() / 1000.0), unit.as_deref()),
                    b.min,
                    b.max
                );
                (b.start, text)
            })
            .collect()
    };
    view! {
        <table id="alarm-readings">
            <thead><tr><th>"Time"</th><th>{if readings.buckets.is_empty() { "Value" } else { "Average of the bucket" }}</th></tr></thead>
            <tbody>
                {rows.into_iter().map(|(ts, text)| view! { <tr><td>{crate::time::shown(ts)}</td><td>{text}</td></tr> }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

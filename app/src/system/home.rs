//! The landing page, a plant overview: the active alarms (by severity, and the newest), the alarm load of the last
//! 24 hours against ISA-18.2's rates, the devices online and offline, the shared dashboards, and the status of this
//! instance. Each card links where its subject lives; the alarm cards follow the live alarm feed.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{format_uptime, get_system_status, SystemStatus};
use crate::alarms::{count_alarms, list_alarms, live_version, measure_alarm_load, AlarmBadges, LoadFigure};
use crate::charts::list_dashboards;
use crate::devices::list_devices;

/// How many of the newest open alarms the overview lists.
const NEWEST_ALARMS: u32 = 5;

#[component]
pub fn HomePage() -> impl IntoView {
    // Bumping `refresh` re-runs the resource: the status is fetched again without reloading the page.
    let refresh = RwSignal::new(0u32);
    let status = Resource::new(move || refresh.get(), |_| get_system_status());
    let counts = Resource::new(live_version, |_| count_alarms(None));
    let newest = Resource::new(live_version, |_| {
        list_alarms("open".into(), String::new(), String::new(), None, Some(NEWEST_ALARMS))
    });
    let load = Resource::new(live_version, |_| measure_alarm_load(String::new()));
    let devices = Resource::new(|| (), |_| list_devices());
    let dashboards = Resource::new(|| (), |_| list_dashboards());

    view! {
        <Title text="Plant overview"/>
        <section class="page" aria-labelledby="home-title">
            <h1 id="home-title">"Plant overview"</h1>
            <p class="lead">
                "What needs attention across the plant you may see: open alarms, devices that stopped reporting, "
                "and the dashboards your team shares."
            </p>
            <div class="cards">
                <section class="card" aria-labelledby="status-title">
                    <h2 id="status-title">"This instance"</h2>
                    <Suspense fallback=|| view! { <p>"Checking status…"</p> }>
                        {move || Suspend::new(async move {
                            match status.await {
                                Ok(status) => view! { <StatusTable status/> }.into_any(),
                                Err(err) => view! {
                                    <p class="error" role="alert">{err.message}</p>
                                }.into_any(),
                            }
                        })}
                    </Suspense>
                    <button
                        type="button"
                        class="button"
                        id="refresh-status"
                        on:click=move |_| refresh.update(|n| *n += 1)
                    >
                        "Refresh status"
                    </button>
                </section>
                <section class="card" aria-labelledby="alarms-summary-title" id="overview-alarms">
                    <h2 id="alarms-summary-title"><a href="/alarms">"Active alarms"</a></h2>
                    <Transition fallback=|| view! { <p>"Counting…"</p> }>
                        {move || Suspend::new(async move {
                            match counts.await {
                                Ok(counts) if counts.active() == 0 => view! {
                                    <p class="empty">"No active alarms. Alarm rules live on the templates."</p>
                                }.into_any(),
                                Ok(counts) => view! {
                                    <p class="counts">
                                        <AlarmBadges counts/>
                                        " " {counts.active()} " active, " {counts.unacknowledged} " unacknowledged"
                                    </p>
                                }.into_any(),
                                Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                            }
                        })}
                    </Transition>
                    <Transition>
                        {move || Suspend::new(async move {
                            let alarms = newest.await.unwrap_or_default();
                            (!alarms.is_empty()).then(|| view! {
                                <ul class="plain newest-alarms">
                                    {alarms.into_iter().map(|alarm| view! {
                                        <li>
                                            <span class=format!("sev {}", alarm.severity.as_str())>{alarm.severity.as_str()}</span>
                                            " " <a href=format!("/alarms/{}", alarm.id)>{alarm.message}</a>
                                            <br/><span class="muted">{alarm.asset_path}" · "{crate::time::shown(alarm.started_at)}</span>
                                        </li>
                                    }).collect_view()}
                                </ul>
                            })
                        })}
                    </Transition>
                </section>
                <section class="card" aria-labelledby="load-summary-title" id="overview-load">
                    <h2 id="load-summary-title"><a href="/alarms?state=all">"Alarm load, last 24 hours"</a></h2>
                    <Transition fallback=|| view! { <p>"Counting…"</p> }>
                        {move || Suspend::new(async move {
                            match load.await {
                                Ok(load) => view! { <LoadFigure load/> }.into_any(),
                                Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                            }
                        })}
                    </Transition>
                </section>
                <section class="card" aria-labelledby="devices-summary-title" id="overview-devices">
                    <h2 id="devices-summary-title"><a href="/devices">"Devices"</a></h2>
                    <Suspense fallback=|| view! { <p>"Counting…"</p> }>
                        {move || Suspend::new(async move {
                            match devices.await {
                                Ok(devices) if devices.is_empty() => view! {
                                    <p class="empty">"No devices yet. Add one on the Devices page to start sending readings."</p>
                                }.into_any(),
                                Ok(devices) => {
                                    let online = devices.iter().filter(|d| d.online).count();
                                    let never = devices.iter().filter(|d| d.last_seen_at.is_none()).count();
                                    let offline = devices.len() - online - never;
                                    view! {
                                        <p class="device-counts">
                                            {online} " online, " {offline} " offline, " {never} " never seen"
                                        </p>
                                    }.into_any()
                                }
                                Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                            }
                        })}
                    </Suspense>
                </section>
                <section class="card" aria-labelledby="dashboards-summary-title" id="overview-dashboards">
                    <h2 id="dashboards-summary-title"><a href="/dashboards">"Shared dashboards"</a></h2>
                    <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                        {move || Suspend::new(async move {
                            let shared: Vec<_> = dashboards
                                .await
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|d| d.spec.shared)
                                .collect();
                            if shared.is_empty() {
                                return view! {
                                    <p class="empty">"No shared dashboards yet. Engineers share theirs from the Dashboards page."</p>
                                }.into_any();
                            }
                            view! {
                                <ul class="plain">
                                    {shared.into_iter().map(|d| view! {
                                        <li><a href=format!("/dashboards/{}", d.id)>{d.spec.name}</a></li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        })}
                    </Suspense>
                </section>
            </div>
        </section>
    }
}

#[component]
fn StatusTable(status: SystemStatus) -> impl IntoView {
    let metadata = format!(
        "{} ({})",
        status.metadata_backend,
        if status.metadata_reachable {
            "reachable"
        } else {
            "unreachable"
        }
    );
    view! {
        <dl class="status" data-checked-at=status.checked_at_ms>
            <dt>"Version"</dt>
            <dd>{status.version}</dd>
            <dt>"Role"</dt>
            <dd>{status.role}</dd>
            <dt>"Metadata store"</dt>
            <dd>{metadata}</dd>
            <dt>"Up for"</dt>
            <dd id="uptime">{format_uptime(status.uptime_secs)}</dd>
        </dl>
    }
}

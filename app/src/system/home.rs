//! The landing page: what Gantry holds, and the status of this instance.

use leptos::prelude::*;

use super::{format_uptime, get_system_status, SystemStatus};

#[component]
pub fn HomePage() -> impl IntoView {
    // Bumping `refresh` re-runs the resource: the status is fetched again without reloading the page.
    let refresh = RwSignal::new(0u32);
    let status = Resource::new(move || refresh.get(), |_| get_system_status());

    view! {
        <section class="page" aria-labelledby="home-title">
            <h1 id="home-title">"Plant overview"</h1>
            <p class="lead">
                "Gantry models your plant as a tree of assets, collects readings from your devices, raises alarms "
                "and draws trends. This page will summarise active alarms and key values across your plant."
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
                <section class="card" aria-labelledby="alarms-summary-title">
                    <h2 id="alarms-summary-title">"Active alarms"</h2>
                    <p class="empty">
                        "Counts of active alarms by severity will appear here once alarm rules are defined on your "
                        "templates."
                    </p>
                </section>
                <section class="card" aria-labelledby="devices-summary-title">
                    <h2 id="devices-summary-title">"Devices"</h2>
                    <p class="empty">
                        "Devices that send readings over HTTP, InfluxDB line protocol or MQTT will be listed here "
                        "with their last-seen time."
                    </p>
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

//! The live alarm feed in the browser: one `EventSource` on `/api/v1/alarms/events` per page load, a version
//! signal that every alarm view reads (so a new event refetches what shows alarms), the bell in the header and a
//! toast for each new critical alarm.

use std::time::Duration;

use leptos::prelude::*;

use super::{count_alarms, AlarmCounts, AlarmEvent, AlarmEventKind, Severity};

/// The feed's state, provided as context by [`provide_live_alarms`].
#[derive(Clone, Copy)]
pub struct LiveAlarms {
    /// Bumped on every event (and after a reconnection): resources that read it refetch.
    pub version: RwSignal<u64>,
    toasts: RwSignal<Vec<Toast>>,
    connected: StoredValue<bool>,
}

#[derive(Debug, Clone, PartialEq)]
struct Toast {
    /// The notification's id.
    id: String,
    alarm_id: i64,
    text: String,
}

/// How long a toast stays unless dismissed.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const TOAST_FOR: Duration = Duration::from_secs(20);

impl LiveAlarms {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn receive(self, event: AlarmEvent) {
        self.version.update(|v| *v += 1);
        let alarm = &event.alarm;
        let suppressed = alarm.out_of_service || alarm.shelved_until.is_some_and(|until| until > event.at);
        if event.kind != AlarmEventKind::Raised || alarm.severity != Severity::Critical || suppressed {
            return;
        }
        let toast = Toast {
            id: event.id.clone(),
            alarm_id: alarm.id,
            text: format!("Critical: {}", alarm.message),
        };
        self.toasts.update(|toasts| {
            toasts.push(toast);
            // A flood must not bury the page: the newest few are enough, the alarm list has the rest.
            if toasts.len() > 4 {
                toasts.remove(0);
            }
        });
        let id = event.id;
        set_timeout(move || self.dismiss(&id), TOAST_FOR);
    }

    /// Opens the feed, once per page load; only for a signed-in caller (else the server would answer 401).
    fn connect(self) {
        if self.connected.get_value() {
            return;
        }
        self.connected.set_value(true);
        #[cfg(feature = "hydrate")]
        browser::connect(self);
    }

    fn dismiss(self, id: &str) {
        self.toasts.update(|toasts| toasts.retain(|t| t.id != id));
    }
}

/// Provides [`LiveAlarms`] to the whole app; [`AlarmBell`] opens the feed once it knows the caller is signed in.
pub fn provide_live_alarms() {
    provide_context(LiveAlarms {
        version: RwSignal::new(0),
        toasts: RwSignal::new(Vec::new()),
        connected: StoredValue::new(false),
    });
}

/// The feed's version, read reactively (0 where there is no feed, as on the server).
pub fn live_version() -> u64 {
    use_context::<LiveAlarms>().map(|live| live.version.get()).unwrap_or(0)
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::Cell;
    use std::rc::Rc;

    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{Event, EventSource, MessageEvent};

    use leptos::prelude::Update;

    use super::LiveAlarms;
    use crate::alarms::AlarmEvent;

    pub fn connect(live: LiveAlarms) {
        // Signed out, the server answers 401 and the browser gives up on the feed for this page.
        let Ok(source) = EventSource::new("/api/v1/alarms/events") else {
            return;
        };
        let on_alarm = Closure::<dyn Fn(MessageEvent)>::new(move |message: MessageEvent| {
            let Some(data) = message.data().as_string() else {
                return;
            };
            match serde_json::from_str::<AlarmEvent>(&data) {
                Ok(event) => live.receive(event),
                Err(err) => leptos::logging::warn!("an alarm event could not be read: {err}"),
            }
        });
        // The server dropped events for this browser: what is shown may be stale.
        let on_lagged = Closure::<dyn Fn(MessageEvent)>::new(move |_| live.version.update(|v| *v += 1));
        // The browser reconnects by itself after a network error or a restart; events in between were missed.
        let opened = Rc::new(Cell::new(false));
        let on_open = Closure::<dyn Fn(Event)>::new(move |_| {
            if opened.replace(true) {
                live.version.update(|v| *v += 1);
            }
        });
        let _ = source.add_event_listener_with_callback("alarm", on_alarm.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("lagged", on_lagged.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
        // The feed lives as long as the page.
        on_alarm.forget();
        on_lagged.forget();
        on_open.forget();
        std::mem::forget(source);
    }
}

/// Active alarms by severity, as small coloured counts (nothing when there are none).
#[component]
pub fn AlarmBadges(counts: AlarmCounts) -> impl IntoView {
    Severity::ALL
        .into_iter()
        .filter(|&severity| counts.of(severity) > 0)
        .map(|severity| {
            let n = counts.of(severity);
            let label = format!(
                "{n} active {} alarm{}",
                severity.as_str(),
                if n == 1 { "" } else { "s" }
            );
            view! { <span class=format!("sev {}", severity.as_str()) title=label.clone() aria-label=label>{n}</span> }
        })
        .collect_view()
}

/// The bell in the header: active alarms the caller may see, marked while any await acknowledgement.
#[component]
pub fn AlarmBell() -> impl IntoView {
    let counts = Resource::new(live_version, |_| count_alarms(None));
    // Effects run only in the browser, once hydrated: counts there mean the caller is signed in.
    Effect::new(move |_| {
        if let (Some(Ok(_)), Some(live)) = (counts.get(), use_context::<LiveAlarms>()) {
            live.connect();
        }
    });
    view! {
        <Transition>
            {move || Suspend::new(async move {
                counts.await.ok().map(|counts| {
                    let waiting = counts.unacknowledged;
                    let ringing = waiting > 0;
                    let label = format!("{} active alarms, {waiting} unacknowledged", counts.active());
                    view! {
                        <a href="/alarms" id="alarm-bell" class="bell" class:ringing=ringing title=label.clone() aria-label=label>
                            <crate::icons::BellIcon/>
                            <span class="count">{counts.active()}</span>
                        </a>
                    }
                })
            })}
        </Transition>
    }
}

/// New critical alarms, in a corner of every page.
#[component]
pub fn AlarmToasts() -> impl IntoView {
    let Some(live) = use_context::<LiveAlarms>() else {
        return ().into_any();
    };
    view! {
        <div class="toasts" role="status" aria-live="assertive">
            <For each=move || live.toasts.get() key=|toast| toast.id.clone() let:toast>
                {
                    let id = toast.id.clone();
                    view! {
                        <div class="toast critical">
                            <a href=format!("/alarms/{}", toast.alarm_id)>{toast.text}</a>
                            <button type="button" class="link-button" aria-label="Dismiss" on:click=move |_| live.dismiss(&id)>"×"</button>
                        </div>
                    }
                }
            </For>
        </div>
    }
    .into_any()
}

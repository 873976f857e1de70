//! Trend charts in the UI: [`TrendChart`] (range picker, zoom by dragging, pan, reset, hover readout, live
//! readings), the Trends page whose address holds the whole trend, and the `read_trend` server function.
//!
//! Before hydration the chart is an `<img>` of the server's SVG (the same drawing, `draw.rs`), so the page paints
//! a chart without waiting for the bundle; once the browser has the data it draws on the `<canvas>` and hides the
//! picture.

pub mod dashboards;
pub mod draw;
pub mod types;

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

pub use dashboards::{
    list_dashboards, DashboardPage, DashboardSpec, DashboardView, DashboardsPage, Panel, PanelContent, SeriesValue,
    GRID_COLUMNS, HIDDEN_PATH, MAX_PANELS, MAX_PANEL_HEIGHT, MAX_ROWS, MAX_VALUE_SERIES,
};
pub use draw::{draw_trend, DrawOptions, Layout};
pub use types::*;

use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{EmptyState, Page};

/// A trend's series at the resolution its width calls for, with alarm markers.
#[server(prefix = "/_fn", endpoint = "charts/trend", client = CsrfClient)]
pub async fn read_trend(query: TrendQuery) -> Result<Trend, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.charts.trend(&actor, &query).await
}

/// The width the server's first-paint picture is drawn at (the browser scales it to the frame).
const FIRST_PAINT_WIDTH: u32 = 900;
/// The chart's height in pixels; `.trend-frame` in style/main.css has the same (the page's CSP allows no inline
/// styles).
const CHART_HEIGHT: u32 = 320;
/// A drag shorter than this is a click, not a zoom.
const MIN_DRAG_PX: f64 = 5.0;

/// Milliseconds since 1970, from the browser's clock or the server's.
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// A trend chart of `series` over `range`; every change of range the user makes goes to `on_range` (the Trends
/// page puts it in the address, an asset page keeps it).
#[component]
pub fn TrendChart(
    #[prop(into)] series: Signal<Vec<SeriesRef>>,
    #[prop(into)] range: Signal<ChartRange>,
    #[prop(into)] on_range: Callback<ChartRange>,
    /// Where Reset goes.
    #[prop(optional)]
    reset_to: ChartRange,
) -> impl IntoView {
    let height = CHART_HEIGHT;
    let trend = RwSignal::new(None::<Trend>);
    let error = RwSignal::new(None::<String>);
    let drawn = RwSignal::new(false);
    // A drag in progress (start and current x, CSS pixels), and the hovered x.
    let drag = RwSignal::new(None::<(f64, f64)>);
    let cursor = RwSignal::new(None::<f64>);
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let frame = NodeRef::<leptos::html::Div>::new();
    let selection = NodeRef::<leptos::html::Div>::new();
    let cursor_line = NodeRef::<leptos::html::Div>::new();

    #[cfg(feature = "hydrate")]
    browser::run(browser::Chart {
        series,
        range,
        trend,
        error,
        drawn,
        canvas,
        frame,
        drag,
        cursor,
        selection,
        cursor_line,
        // Bumped to refetch (the live feed lost readings).
        refetch: RwSignal::new(0u64),
    });

    let first_paint = move || {
        let mut pairs: Vec<(&str, String)> = series.read().iter().map(|s| ("s", s.to_string())).collect();
        pairs.extend(range.get().query_pairs());
        pairs.push(("width", FIRST_PAINT_WIDTH.to_string()));
        pairs.push(("height", height.to_string()));
        format!("/api/v1/charts/trend.svg?{}", query_string(&pairs))
    };
    let layout = move || {
        let width = canvas.get_untracked().map(|c| c.width()).unwrap_or(FIRST_PAINT_WIDTH);
        trend.with_untracked(|t| t.as_ref().map(|t| Layout::of(t, width, height)))
    };
    let on_mousedown = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        if layout().is_some_and(|l| l.in_plot(x, y)) {
            ev.prevent_default();
            drag.set(Some((x, x)));
        }
    };
    let on_mousemove = move |ev: leptos::ev::MouseEvent| {
        let x = f64::from(ev.offset_x());
        if drag.get_untracked().is_some() {
            drag.update(|d| {
                if let Some((_, current)) = d {
                    *current = x;
                }
            });
        } else {
            cursor.set(layout().filter(|l| l.in_plot(x, f64::from(ev.offset_y()))).map(|_| x));
        }
    };
    let on_mouseup = move |_| {
        if let (Some((start, end)), Some(layout)) = (drag.get_untracked(), layout()) {
            if (end - start).abs() >= MIN_DRAG_PX {
                on_range.run(ChartRange::between(layout.ts_of(start), layout.ts_of(end)));
            }
        }
        drag.set(None);
    };
    let on_mouseleave = move |_| {
        drag.set(None);
        cursor.set(None);
    };
    let readout = move || {
        let x = cursor.get()?;
        let layout = layout()?;
        let ts = layout.ts_of(x);
        trend.with(|trend| {
            let trend = trend.as_ref()?;
            let values = draw::values_at(trend, ts);
            let parts: Vec<String> = trend
                .series
                .iter()
                .zip(values)
                .map(|(series, value)| {
                    let value = value.map_or("–".to_string(), |v| format!("{v:.3}"));
                    format!(
                        "{}: {value} {}",
                        series.label(),
                        series.unit.clone().unwrap_or_default()
                    )
                })
                .collect();
            Some(format!(
                "{} · {}",
                crate::time::instant_text(ts, crate::time::shown_offsets(ts, ts).at(ts)),
                parts.join(" · ")
            ))
        })
    };
    let custom_from = RwSignal::new(String::new());
    let custom_to = RwSignal::new(String::new());
    let apply_custom = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match (
            crate::time::parse_shown_local(&custom_from.get_untracked()),
            crate::time::parse_shown_local(&custom_to.get_untracked()),
        ) {
            (Some(from), Some(to)) if from < to => on_range.run(ChartRange::between(from, to)),
            _ => error.set(Some("Pick a start and an end, the start first.".into())),
        }
    };
    let status = move || {
        let live = if range.get().is_live() { "Live · " } else { "" };
        let resolution = trend
            .with(|t| t.as_ref().map(Trend::resolution_text))
            .unwrap_or_default();
        format!("{live}{resolution}")
    };

    view! {
        <div class="trend">
            <div class="trend-toolbar" role="toolbar" aria-label="Time range">
                {RangePreset::ALL
                    .into_iter()
                    .map(|preset| {
                        view! {
                            <button type="button" class="chip" data-range=preset.key()
                                aria-pressed=move || (range.get() == ChartRange::Last(preset)).to_string()
                                on:click=move |_| on_range.run(ChartRange::Last(preset))>
                                {preset.key()}
                            </button>
                        }
                    })
                    .collect_view()}
                <button type="button" class="chip" title="Earlier" aria-label="Earlier" data-pan="back"
                    on:click=move |_| on_range.run(range.get_untracked().panned(now_ms(), -0.5))>"◀"</button>
                <button type="button" class="chip" title="Later" aria-label="Later" data-pan="forward"
                    on:click=move |_| on_range.run(range.get_untracked().panned(now_ms(), 0.5))>"▶"</button>
                <button type="button" class="chip" data-reset="" on:click=move |_| on_range.run(reset_to)>"Reset"</button>
                <form class="trend-custom" on:submit=apply_custom>
                    <label>"From " <input type="datetime-local" bind:value=custom_from/></label>
                    <label>" to " <input type="datetime-local" bind:value=custom_to/></label>
                    <button type="submit" class="chip">"Show"</button>
                </form>
                <span class="trend-status">{status}</span>
            </div>
            <div class="trend-frame" node_ref=frame>
                <img class="trend-first-paint" class:hidden=move || drawn.get() src=first_paint alt="Trend chart"
                    width=FIRST_PAINT_WIDTH height=height/>
                <canvas node_ref=canvas class="trend-canvas" class:hidden=move || !drawn.get()
                    width=FIRST_PAINT_WIDTH height=height
                    on:mousedown=on_mousedown on:mousemove=on_mousemove on:mouseup=on_mouseup
                    on:mouseleave=on_mouseleave></canvas>
                <div class="trend-selection" node_ref=selection class:hidden=move || drag.get().is_none()></div>
                <div class="trend-cursor" node_ref=cursor_line class:hidden=move || cursor.get().is_none()></div>
            </div>
            <p class="trend-readout" aria-live="off">{move || readout().unwrap_or_else(|| "\u{a0}".into())}</p>
            {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </div>
    }
    .into_any()
}

/// The Trends page: an ad-hoc trend whose series and range live in the address (`?s=path|attribute&range=24h`),
/// so it can be bookmarked and shared.
#[component]
pub fn TrendsPage() -> impl IntoView {
    let query = use_query_map();
    let series = Signal::derive(move || {
        query
            .read()
            .get_all("s")
            .unwrap_or_default()
            .iter()
            .filter_map(|s| SeriesRef::parse(s).ok())
            .collect::<Vec<_>>()
    });
    let range = Signal::derive(move || {
        let query = query.read();
        ChartRange::from_query(query.get_str("range"), query.get_str("from"), query.get_str("to"))
    });
    let go = move |series: Vec<SeriesRef>, range: ChartRange| {
        use_navigate()(&trend_href(&series, range), Default::default());
    };
    let on_range = Callback::new(move |new_range| go(series.get_untracked(), new_range));
    let new_path = RwSignal::new(String::new());
    let new_attribute = RwSignal::new(String::new());
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (path, attribute) = (new_path.get_untracked(), new_attribute.get_untracked());
        if path.trim().is_empty() || attribute.trim().is_empty() {
            return;
        }
        let mut list = series.get_untracked();
        list.push(SeriesRef::new(path.trim(), attribute.trim()));
        new_attribute.set(String::new());
        go(list, range.get_untracked());
    };
    view! {
        <Page title="Trends">
            <form class="form inline-form" id="trend-add" on:submit=add>
                <label>"Asset path " <input name="asset" placeholder="/Site A/Pump 1" bind:value=new_path/></label>
                <label>"Attribute " <input name="attribute" placeholder="flow" bind:value=new_attribute/></label>
                <button type="submit" class="button">"Add to trend"</button>
            </form>
            <ul class="chips" aria-label="Series">
                {move || {
                    series
                        .get()
                        .into_iter()
                        .enumerate()
                        .map(|(index, s)| {
                            let label = s.to_string();
                            view! {
                                <li class="chip">
                                    {label.clone()}
                                    " "
                                    <button type="button" class="link" aria-label=format!("Remove {label}")
                                        on:click=move |_| {
                                            let mut list = series.get_untracked();
                                            list.remove(index);
                                            go(list, range.get_untracked());
                                        }>"×"</button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            {move || if series.read().is_empty() {
                view! {
                    <EmptyState>"Add attributes of any assets to build a trend: its address keeps the series and the range, so it can be bookmarked and shared. Asset pages link here with their series."</EmptyState>
                }.into_any()
            } else {
                view! { <TrendChart series=series range=range on_range=on_range/> }.into_any()
            }}
        </Page>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
mod browser {
    //! What only a browser does: fetch the trend for the canvas' width, draw it, and follow live readings.

    use leptos::prelude::*;
    use plotters::prelude::IntoDrawingArea;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    use super::{draw, now_ms, read_trend, ChartRange, SeriesRef, Trend, TrendQuery};
    use crate::charts::types::{query_string, MAX_CHART_WIDTH, MIN_CHART_WIDTH};
    use crate::timeseries::Point;

    #[derive(Clone, Copy)]
    pub struct Chart {
        pub series: Signal<Vec<SeriesRef>>,
        pub range: Signal<ChartRange>,
        pub trend: RwSignal<Option<Trend>>,
        pub error: RwSignal<Option<String>>,
        pub drawn: RwSignal<bool>,
        pub canvas: NodeRef<leptos::html::Canvas>,
        pub frame: NodeRef<leptos::html::Div>,
        pub drag: RwSignal<Option<(f64, f64)>>,
        pub cursor: RwSignal<Option<f64>>,
        pub selection: NodeRef<leptos::html::Div>,
        pub cursor_line: NodeRef<leptos::html::Div>,
        pub refetch: RwSignal<u64>,
    }

    pub fn run(chart: Chart) {
        let generation = StoredValue::new(0u64);
        // Fetch: whenever the series, the range or a refetch request changes.
        Effect::new(move |_| {
            let series = chart.series.get();
            let range = chart.range.get();
            chart.refetch.track();
            let (Some(canvas), Some(frame)) = (chart.canvas.get(), chart.frame.get()) else {
                return;
            };
            if series.is_empty() {
                return;
            }
            // The frame, not the canvas: the canvas is hidden (no width) until it is first drawn.
            let width = (frame.client_width().max(0) as u32).clamp(MIN_CHART_WIDTH, MAX_CHART_WIDTH);
            if canvas.width() != width {
                canvas.set_width(width);
            }
            let (from, to) = range.resolve(now_ms());
            let query = TrendQuery {
                series,
                from,
                to,
                width,
            };
            generation.update_value(|g| *g += 1);
            let mine = generation.get_value();
            leptos::task::spawn_local(async move {
                let answer = read_trend(query).await;
                if generation.get_value() != mine {
                    return; // a newer request is under way
                }
                match answer {
                    Ok(trend) => {
                        chart.error.set(None);
                        chart.trend.set(Some(trend));
                    }
                    Err(err) => chart.error.set(Some(err.message)),
                }
            });
        });
        // Draw: whenever the data changes (a fetch or a live reading).
        Effect::new(move |_| {
            let Some(canvas) = chart.canvas.get() else {
                return;
            };
            chart.trend.with(|trend| {
                let Some(trend) = trend else {
                    return;
                };
                let Some(backend) = plotters_canvas::CanvasBackend::with_canvas_object(canvas.clone()) else {
                    return;
                };
                let options = draw::DrawOptions {
                    offsets: crate::time::shown_offsets(trend.from, trend.to),
                };
                match draw::draw_trend(&backend.into_drawing_area(), trend, &options) {
                    Ok(()) => {
                        let points: usize = trend
                            .series
                            .iter()
                            .map(|s| s.data.points.len() + s.data.buckets.len())
                            .sum();
                        let _ = canvas.set_attribute("data-points", &points.to_string());
                        let _ = canvas.set_attribute("data-from", &trend.from.to_string());
                        let _ = canvas.set_attribute("data-to", &trend.to.to_string());
                        chart.drawn.set(true);
                    }
                    Err(message) => chart.error.set(Some(message)),
                }
            });
        });
        // The drag's rectangle and the hover line, placed through the CSSOM (the CSP forbids style attributes).
        Effect::new(move |_| {
            if let (Some(element), Some((start, end))) = (chart.selection.get(), chart.drag.get()) {
                let style = web_sys::HtmlElement::style(&element);
                let _ = style.set_property("left", &format!("{}px", start.min(end)));
                let _ = style.set_property("width", &format!("{}px", (start - end).abs()));
            }
        });
        Effect::new(move |_| {
            if let (Some(element), Some(x)) = (chart.cursor_line.get(), chart.cursor.get()) {
                let _ = web_sys::HtmlElement::style(&element).set_property("left", &format!("{x}px"));
            }
        });
        // Follow live readings while the range ends now: append them and slide the window, no refetch.
        Effect::new(move |_| {
            let series = chart.series.get();
            let range = chart.range.get();
            if series.is_empty() || !range.is_live() {
                return;
            }
            let pairs: Vec<(&str, String)> = series.iter().map(|s| ("s", s.to_string())).collect();
            let Ok(source) = EventSource::new(&format!("/api/v1/charts/live?{}", query_string(&pairs))) else {
                return;
            };
            let on_readings = Closure::<dyn Fn(MessageEvent)>::new(move |message: MessageEvent| {
                let Some(data) = message.data().as_string() else {
                    return;
                };
                let Ok(readings) = serde_json::from_str::<Vec<(usize, i64, f64)>>(&data) else {
                    return;
                };
                chart.trend.update(|trend| {
                    let Some(trend) = trend else {
                        return;
                    };
                    let span = trend.to - trend.from;
                    let mut newest = now_ms();
                    for (index, ts, value) in readings {
                        if let Some(series) = trend.series.get_mut(index) {
                            series.append(Point { ts, value });
                            newest = newest.max(ts + 1);
                        }
                    }
                    trend.to = trend.to.max(newest);
                    trend.from = trend.to - span;
                });
            });
            let on_lagged = Closure::<dyn Fn(MessageEvent)>::new(move |_| chart.refetch.update(|n| *n += 1));
            let _ = source.add_event_listener_with_callback("readings", on_readings.as_ref().unchecked_ref());
            let _ = source.add_event_listener_with_callback("lagged", on_lagged.as_ref().unchecked_ref());
            let held = SendWrapper::new((source, on_readings, on_lagged));
            on_cleanup(move || held.0.close());
        });
    }
}

//! `/api/v1/charts`: a trend as JSON, as SVG or PNG (the same drawing as the browser's canvas), its live
//! readings as server-sent events, and the latest values of series; `/api/v1/dashboards`. Series are named
//! `s=asset path|attribute` (repeatable); the range is `range=1h|8h|24h|7d|30d|1y` or `from`/`to` (milliseconds or
//! RFC 3339); `width` is the chart's width in pixels.

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use app::{
    auth::Permission,
    charts::{ChartRange, DashboardSpec, DashboardView, DrawOptions, RangePreset, SeriesRef, TrendQuery},
    error::AppError,
    services::ChartsService,
    time::Offsets,
};
use axum::{
    extract::{RawQuery, State},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{delete, get, post, put},
    Json,
};
use futures::Stream;
use http::Method;
use tokio::sync::broadcast::error::RecvError;

use super::{render, Charts};
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, IfMatch, JsonBody};
use crate::auth::LiveCaller;
use crate::error::ApiError;
use crate::metadata::now_ms;
use crate::timeseries::service::parse_instant;

type ChartsState = Arc<Charts>;
type Result<T> = std::result::Result<T, ApiError>;

const DEFAULT_WIDTH: u32 = 900;
const DEFAULT_HEIGHT: u32 = 320;

pub fn endpoints() -> Vec<Endpoint<ChartsState>> {
    use Access::Requires;
    use Permission::View;
    vec![
        Endpoint::new(Method::GET, "/charts/trend", Requires(View), get(trend)).answers_json::<app::charts::Trend>(),
        Endpoint::new(Method::GET, "/charts/trend.svg", Requires(View), get(trend_svg))
            .answer(Answer::Media("image/svg+xml")),
        Endpoint::new(Method::GET, "/charts/trend.png", Requires(View), get(trend_png))
            .answer(Answer::Media("image/png")),
        Endpoint::new(Method::GET, "/charts/live", Requires(View), get(live))
            .answer(Answer::Media("text/event-stream")),
        Endpoint::new(Method::GET, "/charts/values", Requires(View), get(values))
            .answers_list::<app::charts::SeriesValue>("values"),
        // Anyone who may view keeps personal dashboards; the service lets only engineers share or change shared ones.
        Endpoint::new(Method::GET, "/dashboards", Requires(View), get(list_dashboards))
            .answers_list::<DashboardView>("dashboards"),
        Endpoint::new(Method::POST, "/dashboards", Requires(View), post(create_dashboard))
            .body::<DashboardSpec>()
            .answers_json::<DashboardView>(),
        Endpoint::new(Method::GET, "/dashboards/{id}", Requires(View), get(show_dashboard))
            .answers_json::<DashboardView>(),
        Endpoint::new(Method::PUT, "/dashboards/{id}", Requires(View), put(update_dashboard))
            .body::<DashboardSpec>()
            .answers_json::<DashboardView>(),
        Endpoint::new(
            Method::DELETE,
            "/dashboards/{id}",
            Requires(View),
            delete(delete_dashboard),
        )
        .answer(Answer::Nothing),
    ]
}

pub fn router(charts: ChartsState) -> axum::Router {
    crate::api::router_from(endpoints(), charts)
}

/// A chart's query string, read by hand because `s` repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartParams {
    pub series: Vec<SeriesRef>,
    pub from: i64,
    pub to: i64,
    pub width: u32,
    pub height: u32,
    /// The zone's offsets over the range, for the time labels (`tz=Europe/Berlin`, or a fixed `utc_offset`).
    pub offsets: Offsets,
}

impl ChartParams {
    pub fn parse(query: Option<&str>, now: i64) -> std::result::Result<Self, AppError> {
        let mut series = Vec::new();
        let mut single: HashMap<String, String> = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "s" => series.push(SeriesRef::parse(&value).map_err(AppError::bad_request)?),
                "range" | "from" | "to" | "width" | "height" | "utc_offset" | "tz" => {
                    single.insert(key.into_owned(), value.into_owned());
                }
                other => {
                    return Err(AppError::bad_request(format!(
                    "unknown parameter `{other}`; a chart takes s, range, from, to, width, height, tz and utc_offset"
                )))
                }
            }
        }
        let number = |name: &str, default: i64, bounds: std::ops::RangeInclusive<i64>| match single.get(name) {
            None => Ok(default),
            Some(text) => text.parse::<i64>().ok().filter(|n| bounds.contains(n)).ok_or_else(|| {
                AppError::bad_request(format!(
                    "`{name}` must be a whole number from {} to {}, not {text:?}",
                    bounds.start(),
                    bounds.end()
                ))
            }),
        };
        let width = number(
            "width",
            DEFAULT_WIDTH.into(),
            app::charts::MIN_CHART_WIDTH.into()..=app::charts::MAX_CHART_WIDTH.into(),
        )?;
        let height = number(
            "height",
            DEFAULT_HEIGHT.into(),
            render::MIN_HEIGHT.into()..=render::MAX_HEIGHT.into(),
        )?;
        let utc_offset_minutes = number("utc_offset", 0, -16 * 60..=16 * 60)?;
        let (from, to) = match (single.get("from"), single.get("to"), single.get("range")) {
            (_, _, Some(key)) => {
                let preset = RangePreset::from_key(key).ok_or_else(|| {
                    let keys: Vec<&str> = RangePreset::ALL.iter().map(|p| p.key()).collect();
                    AppError::bad_request(format!("`range` is one of {}, not {key:?}", keys.join(", ")))
                })?;
                ChartRange::Last(preset).resolve(now)
            }
            (Some(from), Some(to), None) => (parse_instant(from, "from")?, parse_instant(to, "to")?),
            (None, None, None) => ChartRange::default().resolve(now),
            _ => return Err(AppError::bad_request("give both `from` and `to`, or a `range`")),
        };
        Ok(ChartParams {
            series,
            from,
            to,
            width: width as u32,
            height: height as u32,
            offsets: match single.get("tz") {
                Some(name) => {
                    let zone = jiff::tz::TimeZone::get(name).map_err(|_| {
                        AppError::bad_request(format!("`tz` is an IANA time zone such as Europe/Berlin, not {name:?}"))
                    })?;
                    crate::reports::period::offsets(&zone, from, to)
                }
                None => Offsets::fixed(utc_offset_minutes as i32),
            },
        })
    }

    pub fn query(&self) -> TrendQuery {
        TrendQuery {
            series: self.series.clone(),
            from: self.from,
            to: self.to,
            width: self.width,
        }
    }

    pub fn draw_options(&self) -> DrawOptions {
        DrawOptions {
            offsets: self.offsets.clone(),
        }
    }
}

async fn trend(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<app::charts::Trend>> {
    let params = ChartParams::parse(query.as_deref(), now_ms())?;
    Ok(Json(charts.trend(&actor, &params.query()).await?))
}

async fn trend_svg(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = ChartParams::parse(query.as_deref(), now_ms())?;
    let trend = charts.trend(&actor, &params.query()).await?;
    let svg = render::svg(&trend, params.width, params.height, &params.draw_options())?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn trend_png(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let params = ChartParams::parse(query.as_deref(), now_ms())?;
    let trend = charts.trend(&actor, &params.query()).await?;
    let (width, height, options) = (params.width, params.height, params.draw_options());
    // Rasterising and compressing a large picture takes milliseconds of CPU: off the async workers.
    let png = tokio::task::spawn_blocking(move || render::png(&trend, width, height, &options))
        .await
        .map_err(|_| AppError::internal())??;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// `GET /charts/values?s=…`: the latest reading of each series, with its unit and limit band.
async fn values(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>> {
    let params = ChartParams::parse(query.as_deref(), now_ms())?;
    let values = charts.values(&actor, &params.series).await?;
    Ok(Json(serde_json::json!({ "values": values })))
}

async fn list_dashboards(State(charts): State<ChartsState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    let dashboards = ChartsService::dashboards(&*charts, &actor).await?;
    Ok(Json(serde_json::json!({ "dashboards": dashboards })))
}

async fn create_dashboard(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    JsonBody(spec): JsonBody<DashboardSpec>,
) -> Result<(StatusCode, Json<DashboardView>)> {
    Ok((StatusCode::CREATED, Json(charts.create_dashboard(&actor, spec).await?)))
}

async fn show_dashboard(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<DashboardView>> {
    Ok(Json(charts.dashboard(&actor, id).await?))
}

async fn update_dashboard(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    IfMatch(expected): IfMatch,
    JsonBody(spec): JsonBody<DashboardSpec>,
) -> Result<Json<DashboardView>> {
    Ok(Json(charts.update_dashboard(&actor, id, spec, expected).await?))
}

async fn delete_dashboard(
    State(charts): State<ChartsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    charts.delete_dashboard(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Server-sent events: a `readings` event per durable batch that holds readings of the chart's series, with
/// `[series index, ms, value]` triples; `lagged` when some were dropped (the chart refetches).
async fn live(
    State(charts): State<ChartsState>,
    caller: LiveCaller,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let params = ChartParams::parse(query.as_deref(), now_ms())?;
    let ids = charts.live_series(&caller.actor, &params.series).await?;
    let (receiver, watch) = charts.live().subscribe(&ids);
    // The stream holds the chart's interest in its series until it ends.
    let feed = futures::stream::unfold((receiver, ids, watch), |(mut receiver, ids, watch)| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(batch) => {
                    let mine: Vec<(usize, i64, f64)> = batch
                        .0
                        .iter()
                        .filter_map(|(series, ts, value)| {
                            let index = ids.iter().position(|id| id == series)?;
                            Some((index, *ts, *value))
                        })
                        .collect();
                    if mine.is_empty() {
                        continue;
                    }
                    Event::default()
                        .event("readings")
                        .data(serde_json::to_string(&mine).unwrap_or_default())
                }
                Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (receiver, ids, watch)));
        }
    });
    Ok(Sse::new(caller.guard(feed)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_parameters_read_repeated_series_and_presets() {
        let params = ChartParams::parse(
            Some("s=%2FPlant%2FPump%201%7CFlow&s=/Plant/Tank|Level&range=1h&width=640"),
            10_000_000,
        )
        .unwrap();
        assert_eq!(params.series.len(), 2);
        assert_eq!(params.series[0], SeriesRef::new("/Plant/Pump 1", "Flow"));
        assert_eq!((params.from, params.to), (10_000_000 - 3_600_000, 10_000_000));
        assert_eq!((params.width, params.height), (640, DEFAULT_HEIGHT));
    }

    #[test]
    fn bad_chart_parameters_say_what_is_wrong() {
        let message = |q: &str| ChartParams::parse(Some(q), 0).unwrap_err().message;
        assert!(message("s=nobar").contains("asset path|attribute"));
        assert!(message("s=/a|b&width=5").contains("`width` must be a whole number from 100"));
        assert!(message("s=/a|b&range=2w").contains("`range` is one of 1h"));
        assert!(message("s=/a|b&from=5").contains("both `from` and `to`"));
        assert!(message("s=/a|b&colour=red").contains("unknown parameter `colour`"));
    }
}

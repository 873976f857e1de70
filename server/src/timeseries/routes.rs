//! The query API: `/api/v1/assets/{id}/attributes/{name}/data` (chosen resolution), `…/data.csv` (raw readings,
//! streamed) and `/api/v1/assets/{id}/latest`. Thin handlers over [`Timeseries`]; grants apply there.

use std::sync::Arc;

use app::auth::Permission;
use app::services::TimeseriesService;
use app::timeseries::DataQuery;
use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Json,
};
use http::Method;

use super::service::Timeseries;
use crate::api::{Access, Answer, Caller, Endpoint, IdNamePath, IdPath, QueryParams};
use crate::error::ApiError;

type TimeseriesState = Arc<Timeseries>;
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<TimeseriesState>> {
    use Access::Requires;
    use Permission::View;
    vec![
        Endpoint::new(
            Method::GET,
            "/assets/{id}/attributes/{name}/data",
            Requires(View),
            get(data),
        )
        .answers_json::<app::timeseries::SeriesData>(),
        Endpoint::new(
            Method::GET,
            "/assets/{id}/attributes/{name}/data.csv",
            Requires(View),
            get(data_csv),
        )
        .answer(Answer::Media("text/csv")),
        Endpoint::new(Method::GET, "/assets/{id}/latest", Requires(View), get(latest))
            .answers_json::<app::timeseries::LatestValues>(),
    ]
}

pub fn router(timeseries: TimeseriesState) -> axum::Router {
    crate::api::router_from(endpoints(), timeseries)
}

async fn data(
    State(timeseries): State<TimeseriesState>,
    Caller(actor): Caller,
    IdNamePath(id, name): IdNamePath,
    QueryParams(query): QueryParams<DataQuery>,
) -> Result<Json<app::timeseries::SeriesData>> {
    Ok(Json(timeseries.data(&actor, id, &name, &query).await?))
}

async fn latest(
    State(timeseries): State<TimeseriesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<app::timeseries::LatestValues>> {
    Ok(Json(timeseries.latest(&actor, id).await?))
}

/// Streams `timestamp,value` rows (RFC 3339 with milliseconds, UTC), a page of readings at a time.
async fn data_csv(
    State(timeseries): State<TimeseriesState>,
    Caller(actor): Caller,
    IdNamePath(id, name): IdNamePath,
    QueryParams(query): QueryParams<DataQuery>,
) -> Result<Response> {
    let export = timeseries.raw_export(&actor, id, &name, &query).await?;
    let header_row =
        futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"timestamp,value\n")) });
    let rows = futures::stream::unfold(export, |mut export| async move {
        match export.next_page().await {
            Ok(Some(page)) => {
                let mut text = String::with_capacity(page.len() * 40);
                for point in page {
                    text.push_str(&format_instant(point.ts));
                    text.push(',');
                    text.push_str(&point.value.to_string());
                    text.push('\n');
                }
                Some((Ok(bytes::Bytes::from(text)), export))
            }
            Ok(None) => None,
            Err(err) => {
                // The status line is gone by now; end the body early so the client sees a truncated download.
                tracing::error!(error = %err, "A CSV export failed part way.");
                Some((Err(std::io::Error::other("the export failed")), export))
            }
        }
    });
    let filename = format!("asset-{id}-{}.csv", sanitize_filename(&name));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(futures::StreamExt::chain(header_row, rows)),
    )
        .into_response())
}

fn format_instant(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn sanitize_filename(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_format_as_rfc_3339_utc_with_milliseconds() {
        assert_eq!(super::format_instant(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(super::sanitize_filename("Flow \"in\"/out"), "Flow__in__out");
    }
}

//! `/api/v1/reports`: definitions (list, make, read, change with `If-Match`, delete) and a report worked out for
//! its own range or `from`/`to` (milliseconds or RFC 3339), as JSON, CSV, XLSX or PDF, and a trend section's
//! picture as SVG or PNG.

use std::sync::Arc;

use app::auth::Permission;
use app::reports::{RenderedReport, RenderedSection, ReportRun, ReportSpec, ReportView};
use app::services::ReportsService;
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
    Json,
};
use http::Method;
use serde::Deserialize;

use super::service::{file_stem, TREND_HEIGHT, TREND_WIDTH};
use super::{csv, pdf, period, xlsx, Reports};
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, IfMatch, JsonBody, QueryParams};
use crate::error::ApiError;
use crate::timeseries::service::parse_instant;

type ReportsState = Arc<Reports>;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<ReportsState>> {
    use Access::Requires;
    use Permission::{EditModel, View};
    vec![
        Endpoint::new(Method::GET, "/reports", Requires(View), get(list)).answers_list::<ReportView>("reports"),
        Endpoint::new(Method::POST, "/reports", Requires(EditModel), post(create))
            .body::<ReportSpec>()
            .answers_json::<ReportView>(),
        Endpoint::new(Method::GET, "/reports/{id}", Requires(View), get(show)).answers_json::<ReportView>(),
        Endpoint::new(Method::PUT, "/reports/{id}", Requires(EditModel), put(update))
            .body::<ReportSpec>()
            .answers_json::<ReportView>(),
        Endpoint::new(Method::DELETE, "/reports/{id}", Requires(EditModel), delete(remove)).answer(Answer::Nothing),
        Endpoint::new(Method::GET, "/reports/{id}/rendered", Requires(View), get(rendered))
            .answers_json::<RenderedReport>(),
        Endpoint::new(Method::GET, "/reports/{id}/report.csv", Requires(View), get(report_csv))
            .answer(Answer::Media("text/csv")),
        Endpoint::new(
            Method::GET,
            "/reports/{id}/report.xlsx",
            Requires(View),
            get(report_xlsx),
        )
        .answer(Answer::Media(XLSX)),
        Endpoint::new(Method::GET, "/reports/{id}/report.pdf", Requires(View), get(report_pdf))
            .answer(Answer::Media("application/pdf")),
        Endpoint::new(Method::GET, "/reports/{id}/trend.svg", Requires(View), get(trend_svg))
            .answer(Answer::Media("image/svg+xml")),
        Endpoint::new(Method::GET, "/reports/{id}/trend.png", Requires(View), get(trend_png))
            .answer(Answer::Media("image/png")),
        Endpoint::new(Method::POST, "/reports/{id}/runs", Requires(View), post(start_run)).answers_json::<ReportRun>(),
        Endpoint::new(Method::GET, "/reports/{id}/runs", Requires(View), get(runs)).answers_list::<ReportRun>("runs"),
        Endpoint::new(Method::GET, "/reports/{id}/runs/{run}", Requires(View), get(run)).answers_json::<ReportRun>(),
        Endpoint::new(
            Method::DELETE,
            "/reports/{id}/runs/{run}",
            Requires(View),
            delete(cancel_run),
        )
        .answers_json::<ReportRun>(),
        Endpoint::new(
            Method::GET,
            "/reports/{id}/runs/{run}/report.pdf",
            Requires(View),
            get(run_pdf),
        )
        .answer(Answer::Media("application/pdf")),
        Endpoint::new(
            Method::GET,
            "/reports/{id}/runs/{run}/report.xlsx",
            Requires(View),
            get(run_xlsx),
        )
        .answer(Answer::Media(XLSX)),
        Endpoint::new(
            Method::GET,
            "/reports/{id}/runs/{run}/report.csv",
            Requires(View),
            get(run_csv),
        )
        .answer(Answer::Media("text/csv")),
        Endpoint::new(
            Method::GET,
            "/reports/{id}/runs/{run}/report.zip",
            Requires(View),
            get(run_zip),
        )
        .answer(Answer::Media("application/zip")),
    ]
}

pub fn router(reports: ReportsState) -> axum::Router {
    crate::api::router_from(endpoints(), reports)
}

async fn list(State(reports): State<ReportsState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(serde_json::json!({ "reports": reports.reports(&actor).await? })))
}

async fn create(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    JsonBody(spec): JsonBody<ReportSpec>,
) -> Result<(StatusCode, Json<ReportView>)> {
    Ok((StatusCode::CREATED, Json(reports.create_report(&actor, spec).await?)))
}

async fn show(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<ReportView>> {
    Ok(Json(reports.report(&actor, id).await?))
}

async fn update(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    IfMatch(expected): IfMatch,
    JsonBody(spec): JsonBody<ReportSpec>,
) -> Result<Json<ReportView>> {
    Ok(Json(reports.update_report(&actor, id, spec, expected).await?))
}

async fn remove(State(reports): State<ReportsState>, Caller(actor): Caller, IdPath(id): IdPath) -> Result<StatusCode> {
    reports.delete_report(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `from` and `to` of a run, both or neither.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRange {
    from: Option<String>,
    to: Option<String>,
}

impl RunRange {
    fn parse(&self) -> std::result::Result<Option<(i64, i64)>, app::error::AppError> {
        match (&self.from, &self.to) {
            (None, None) => Ok(None),
            (Some(from), Some(to)) => Ok(Some((parse_instant(from, "from")?, parse_instant(to, "to")?))),
            _ => Err(app::error::AppError::bad_request(
                "give both `from` and `to`, or neither",
            )),
        }
    }
}

/// A trend section's picture: `section` is its position in the report (1 for the first section); without it,
/// the first trend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PictureParams {
    from: Option<String>,
    to: Option<String>,
    section: Option<usize>,
}

async fn rendered(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(range): QueryParams<RunRange>,
) -> Result<Json<RenderedReport>> {
    Ok(Json(reports.render_report(&actor, id, range.parse()?).await?))
}

/// A file name for a report: its name with anything but letters, digits and `-` as `_`.
fn file_name(report: &RenderedReport, extension: &str) -> String {
    format!("{}.{extension}", file_stem(&report.name))
}

/// A download: its media type and file name.
fn attachment(media: &str, file: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, media.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body,
    )
        .into_response()
}

/// The report for the asked range, written by `write` as a download of `media`.
async fn written(
    reports: &Reports,
    actor: &app::auth::Actor,
    id: i64,
    range: RunRange,
    (extension, media): (&str, &str),
    write: impl FnOnce(&RenderedReport, &jiff::tz::TimeZone) -> anyhow::Result<Vec<u8>>,
) -> Result<Response> {
    let report = reports.render_report(actor, id, range.parse()?).await?;
    let zone = period::zone(&report.time_zone)?;
    let body = write(&report, &zone).map_err(ApiError::Internal)?;
    Ok(attachment(media, file_name(&report, extension), body))
}

async fn report_csv(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(range): QueryParams<RunRange>,
) -> Result<Response> {
    written(
        &reports,
        &actor,
        id,
        range,
        ("csv", "text/csv; charset=utf-8"),
        |report, zone| {
            let mut body = Vec::new();
            csv::write(report, zone, &mut body)?;
            Ok(body)
        },
    )
    .await
}

async fn report_xlsx(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(range): QueryParams<RunRange>,
) -> Result<Response> {
    written(&reports, &actor, id, range, ("xlsx", XLSX), |report, zone| {
        Ok(xlsx::write(report, zone)?)
    })
    .await
}

async fn report_pdf(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(range): QueryParams<RunRange>,
) -> Result<Response> {
    written(
        &reports,
        &actor,
        id,
        range,
        ("pdf", "application/pdf"),
        |report, zone| Ok(pdf::write(report, zone)?),
    )
    .await
}

/// The report and the trend that `params` picks from it.
async fn picked_trend(
    reports: &Reports,
    actor: &app::auth::Actor,
    id: i64,
    params: PictureParams,
) -> Result<(RenderedReport, app::charts::Trend)> {
    let range = RunRange {
        from: params.from,
        to: params.to,
    };
    let mut report = reports.render_report(actor, id, range.parse()?).await?;
    let picked = match params.section {
        Some(n) => n.checked_sub(1).filter(|i| *i < report.sections.len()),
        None => report
            .sections
            .iter()
            .position(|s| matches!(s, RenderedSection::Trend { .. })),
    };
    let Some(index) = picked else {
        return Err(app::error::AppError::not_found(format!(
            "the report has no {}",
            params
                .section
                .map_or("trend section".to_string(), |n| format!("section {n}"))
        ))
        .into());
    };
    match report.sections.swap_remove(index) {
        RenderedSection::Trend { trend, .. } => Ok((report, trend)),
        _ => Err(app::error::AppError::bad_request(format!("section {} is not a trend", index + 1)).into()),
    }
}

fn picture_name(report: &RenderedReport, extension: &str) -> String {
    file_name(report, extension).replacen(&format!(".{extension}"), &format!("-trend.{extension}"), 1)
}

async fn trend_svg(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(params): QueryParams<PictureParams>,
) -> Result<Response> {
    let (report, trend) = picked_trend(&reports, &actor, id, params).await?;
    let options = picture_options(&report, &trend)?;
    let svg = crate::charts::render::svg(&trend, TREND_WIDTH, TREND_HEIGHT, &options)?;
    Ok(attachment(
        "image/svg+xml",
        picture_name(&report, "svg"),
        svg.into_bytes(),
    ))
}

async fn trend_png(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(params): QueryParams<PictureParams>,
) -> Result<Response> {
    let (report, trend) = picked_trend(&reports, &actor, id, params).await?;
    let options = picture_options(&report, &trend)?;
    let png = crate::charts::render::png(&trend, TREND_WIDTH, TREND_HEIGHT, &options)?;
    Ok(attachment("image/png", picture_name(&report, "png"), png))
}

fn picture_options(report: &RenderedReport, trend: &app::charts::Trend) -> Result<app::charts::DrawOptions> {
    let zone = period::zone(&report.time_zone)?;
    Ok(app::charts::DrawOptions {
        offsets: period::offsets(&zone, trend.from, trend.to),
    })
}

/// `/reports/{id}/runs/{run}`: a report's id and one of its runs' ids.
struct RunPath {
    id: i64,
    run: i64,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RunPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<(i64, i64)>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path((id, run))| RunPath { id, run })
            .map_err(|rejection| app::error::AppError::bad_request(rejection.body_text()).into())
    }
}

async fn start_run(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(range): QueryParams<RunRange>,
) -> Result<(StatusCode, Json<ReportRun>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(reports.start_run(&actor, id, range.parse()?).await?),
    ))
}

async fn runs(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(serde_json::json!({ "runs": reports.runs(&actor, id).await? })))
}

async fn run(State(reports): State<ReportsState>, Caller(actor): Caller, path: RunPath) -> Result<Json<ReportRun>> {
    Ok(Json(reports.run(&actor, path.id, path.run).await?))
}

async fn cancel_run(
    State(reports): State<ReportsState>,
    Caller(actor): Caller,
    path: RunPath,
) -> Result<Json<ReportRun>> {
    Ok(Json(reports.cancel_run(&actor, path.id, path.run).await?))
}

/// A finished run's file, streamed from the files folder.
async fn run_file(
    reports: &Reports,
    actor: &app::auth::Actor,
    path: RunPath,
    format: &str,
    media: &str,
) -> Result<Response> {
    let (file, name) = reports.run_file(actor, path.id, path.run, format).await?;
    let opened = tokio::fs::File::open(&file).await.map_err(|err| {
        tracing::warn!(file = %file.display(), error = %err, "A report run's file is missing.");
        ApiError::from(app::error::AppError::not_found(
            "the run's file is gone (files are kept for `reports.keep_days`); run the report again",
        ))
    })?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    Ok((
        [
            (header::CONTENT_TYPE, media.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

async fn run_pdf(State(reports): State<ReportsState>, Caller(actor): Caller, path: RunPath) -> Result<Response> {
    run_file(&reports, &actor, path, "pdf", "application/pdf").await
}

async fn run_xlsx(State(reports): State<ReportsState>, Caller(actor): Caller, path: RunPath) -> Result<Response> {
    run_file(&reports, &actor, path, "xlsx", XLSX).await
}

async fn run_csv(State(reports): State<ReportsState>, Caller(actor): Caller, path: RunPath) -> Result<Response> {
    run_file(&reports, &actor, path, "csv", "text/csv; charset=utf-8").await
}

async fn run_zip(State(reports): State<ReportsState>, Caller(actor): Caller, path: RunPath) -> Result<Response> {
    run_file(&reports, &actor, path, "zip", "application/zip").await
}

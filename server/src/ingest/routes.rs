//! The ingest endpoints, outside the people-facing layers (no session, CSRF or user identity: devices present
//! their own tokens): `POST /api/v1/ingest` (JSON), `POST /api/v2/write` and `POST /write` (InfluxDB line
//! protocol, so Telegraf, Node-RED and the InfluxDB client libraries post unchanged).

use std::{collections::HashMap, io::Read, sync::Arc};

use app::error::{AppError, ErrorKind};
use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use base64::Engine;

use super::{
    parse::{self, Precision},
    pipeline::{Item, Pipeline},
};
use crate::{config::IngestConfig, error::app_error_response};

#[derive(Clone)]
struct IngestState {
    pipeline: Arc<Pipeline>,
    limits: IngestConfig,
}

pub fn router(pipeline: Arc<Pipeline>, limits: IngestConfig) -> Router {
    Router::new()
        .route("/api/v1/ingest", post(ingest_json))
        .route("/api/v2/write", post(write_v2))
        .route("/write", post(write_v1))
        .with_state(IngestState { pipeline, limits })
}

fn too_large(what: &str, limit: usize) -> AppError {
    AppError::new(
        ErrorKind::PayloadTooLarge,
        format!("the {what} is larger than the limit of {limit} bytes"),
    )
}

/// Reads the body within the size limit, gunzipping it (within its own limit) when it says it is gzip.
async fn read_body(headers: &HeaderMap, body: Body, limits: &IngestConfig) -> Result<Bytes, AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large("body", limits.max_body_bytes));
    }
    let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| too_large("body", limits.max_body_bytes))?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(bytes);
    }
    // A small gzip body may inflate enormously (a "gzip bomb"): stop one byte past the limit.
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(limits.max_decompressed_bytes as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| AppError::bad_request(format!("the gzip body could not be decompressed: {e}")))?;
    if inflated.len() > limits.max_decompressed_bytes {
        return Err(too_large("decompressed body", limits.max_decompressed_bytes));
    }
    Ok(Bytes::from(inflated))
}

/// The token from `Authorization: Bearer|Token …`, Basic auth's password, or InfluxDB 1's `p` parameter.
fn token(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<String, AppError> {
    let missing = || {
        AppError::new(
            ErrorKind::Unauthorized,
            "send the device token as `Authorization: Bearer TOKEN`",
        )
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| missing())?;
        let (scheme, rest) = value.split_once(' ').ok_or_else(missing)?;
        return match scheme.to_ascii_lowercase().as_str() {
            "bearer" | "token" => Ok(rest.trim().to_string()),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .map_err(|_| missing())?;
                let text = String::from_utf8(decoded).map_err(|_| missing())?;
                let (_, password) = text.split_once(':').ok_or_else(missing)?;
                Ok(password.to_string())
            }
            _ => Err(missing()),
        };
    }
    query.get("p").cloned().ok_or_else(missing)
}

async fn run(
    state: &IngestState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Body,
    source: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<Vec<Item>, AppError>,
) -> Result<usize, AppError> {
    let secret = token(headers, query)?;
    // The token is checked before the body is parsed, so strangers cannot make Gantry parse large bodies.
    let grant = state.pipeline.devices().authenticate(&secret).await?;
    let bytes = read_body(headers, body, &state.limits).await?;
    let items = parse(&bytes)?;
    state.pipeline.ingest(&grant, source, items).await?.into_result()
}

async fn ingest_json(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    match run(&state, &headers, &query, body, "http_json", parse::json).await {
        Ok(accepted) => (StatusCode::OK, Json(serde_json::json!({ "accepted": accepted }))).into_response(),
        Err(err) => app_error_response(err),
    }
}

fn line_protocol(bytes: &[u8], precision: Precision) -> Result<Vec<Item>, AppError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AppError::bad_request("line protocol must be UTF-8"))?;
    parse::line_protocol(text, precision)
}

async fn write_lines(state: IngestState, headers: HeaderMap, query: HashMap<String, String>, body: Body) -> Response {
    let precision = match Precision::parse(query.get("precision").map(String::as_str)) {
        Ok(p) => p,
        Err(err) => return app_error_response(err),
    };
    match run(&state, &headers, &query, body, "line_protocol", |b| {
        line_protocol(b, precision)
    })
    .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => app_error_response(err),
    }
}

async fn write_v2(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    write_lines(state, headers, query, body).await
}

async fn write_v1(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    write_lines(state, headers, query, body).await
}

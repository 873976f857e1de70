//! The server side of the one error type: [`ApiError`] wraps an [`AppError`] a client may see, or an internal
//! cause that only the log sees. The table from [`ErrorKind`] to HTTP status is [`status_of`], and nowhere else.

use app::error::{AppError, ErrorKind};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// The HTTP status of an error kind (the table is `ErrorKind::http_status`, shared with server functions).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// What a handler or service returns on failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An error the client may see as it is.
    #[error(transparent)]
    App(#[from] AppError),
    /// A fault inside Gantry: logged with its cause chain, answered with an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // An exhausted pool is load, not a fault: tell the client to come back.
            sqlx::Error::PoolTimedOut => ApiError::App(AppError::unavailable(
                "The metadata database is busy; retry shortly.",
                2,
            )),
            other => ApiError::Internal(anyhow::Error::new(other).context("metadata database query failed")),
        }
    }
}

impl From<ApiError> for AppError {
    fn from(err: ApiError) -> Self {
        err.into_app_error()
    }
}

impl ApiError {
    /// The client-facing form of this error; internal causes are logged here, once.
    pub fn into_app_error(self) -> AppError {
        match self {
            ApiError::App(err) => err,
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "A request failed with an internal error.");
                AppError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        app_error_response(self.into_app_error())
    }
}

/// Renders the brief's error body, `{ "error": { "code", "message", "details" } }`, with `Retry-After` when set.
pub fn app_error_response(err: AppError) -> Response {
    let status = status_of(err.code);
    let mut body = json!({ "code": err.code.code(), "message": err.message });
    if let Some(details) = err.details {
        body["details"] = details;
    }
    let mut response = (status, Json(json!({ "error": body }))).into_response();
    if let Some(seconds) = err.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn client_errors_keep_their_message_and_details() {
        let err =
            AppError::bad_request("value must be a finite number").with_details(json!({ "field": "temperature" }));
        let response = ApiError::from(err).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "value must be a finite number");
        assert_eq!(body["error"]["details"]["field"], "temperature");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let response = ApiError::from(anyhow::anyhow!("password=hunter2 in a connection string")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await.to_string();
        assert!(!body.contains("hunter2"), "{body}");
        assert!(body.contains("\"internal\""), "{body}");
    }

    #[tokio::test]
    async fn unavailable_carries_retry_after() {
        let response = ApiError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}

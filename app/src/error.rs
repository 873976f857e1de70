//! The one error type shared by REST handlers, server functions and the UI.
//!
//! Each [`ErrorKind`] maps to exactly one HTTP status (the table lives in `server::error`); the wire format is the
//! brief's `{ "error": { "code", "message", "details" } }`. Internal causes never travel in an [`AppError`]: the
//! server logs them and sends an opaque message.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ErrorKind {
    /// The request is malformed (unparseable body, bad parameter, NaN).
    BadRequest,
    /// No valid credentials were presented.
    Unauthorized,
    /// Credentials are valid but the action is not allowed (including CSRF refusals).
    Forbidden,
    /// The object does not exist, or is outside the caller's grant.
    NotFound,
    /// The request conflicts with the current state (a duplicate name, say).
    Conflict,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// The request is well-formed but its content is refused (a timestamp too far in the future, say).
    Unprocessable,
    /// The caller sends too much; retry later.
    TooManyRequests,
    /// Gantry cannot serve this right now (overload, shutdown, a dependency down); retry later.
    Unavailable,
    /// A fault inside Gantry; the details are in the server log, never in the response.
    Internal,
}

impl ErrorKind {
    /// The one table from error kind to HTTP status (REST and server functions alike).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unprocessable => 422,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// The stable code clients see in `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error a client may see: a kind, a human-readable message and optional structured details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AppError {
    pub code: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub details: Option<leptos::serde_json::Value>,
    /// Seconds a client should wait before retrying (sent as `Retry-After` with 429 and 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(ignore))]
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn new(code: ErrorKind, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    pub fn with_details(mut self, details: leptos::serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Names the input the error is about (`details.field`), so a form can show the message beside it.
    pub fn for_field(self, field: &str) -> Self {
        self.with_details(leptos::serde_json::json!({ "field": field }))
    }

    /// The input the error is about, if it names one.
    pub fn field(&self) -> Option<&str> {
        self.details.as_ref()?.get("field")?.as_str()
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A write that named the version it read, refused because another write came first.
    pub fn stale(what: &str, current_version: i64) -> Self {
        AppError::new(
            ErrorKind::Conflict,
            format!(
                "the {what} was changed by someone else since you read it (it is now at version \
                 {current_version}); reload it and make your change again"
            ),
        )
        .with_details(leptos::serde_json::json!({ "current_version": current_version }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(ErrorKind::Unavailable, message).with_retry_after(retry_after_secs)
    }

    /// The opaque error for faults inside Gantry; the cause goes to the log, not to the client.
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "Gantry hit an internal error; the details are in the server log.",
        )
    }
}

/// Server functions fail with the same kinds as the REST API, so the UI can show the same messages.
impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message)
            | ServerFnErrorErr::MissingArg(message)
            | ServerFnErrorErr::Deserialization(message) => AppError::bad_request(message),
            ServerFnErrorErr::Request(message) | ServerFnErrorErr::Response(message) => {
                AppError::unavailable(format!("Could not reach the Gantry server: {message}"), 5)
            }
            _ => AppError::internal(),
        }
    }

    /// On the server, answering a server function with this error also sets the HTTP status of its kind.
    fn ser(&self) -> leptos::server_fn::Bytes {
        #[cfg(feature = "ssr")]
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = http::StatusCode::from_u16(self.code.http_status()) {
                response.set_status(status);
            }
        }
        <JsonEncoding as leptos::server_fn::Encodes<Self>>::encode(self)
            .unwrap_or_else(|_| leptos::server_fn::Bytes::from_static(br#"{"code":"internal","message":"error"}"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serde_names() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::PayloadTooLarge,
            ErrorKind::Unprocessable,
            ErrorKind::TooManyRequests,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            let json = leptos::serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.code(), "serde name and code() disagree for {kind:?}");
        }
    }

    #[test]
    fn server_fn_argument_errors_are_bad_requests() {
        let err = AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field".into()));
        assert_eq!(err.code, ErrorKind::BadRequest);
        assert_eq!(err.message, "missing field");
        let err = AppError::from_server_fn_error(ServerFnErrorErr::ServerError("boom".into()));
        assert_eq!(err.code, ErrorKind::Internal);
        assert!(!err.message.contains("boom"), "internal causes must not leak");
    }
}

//! What keeps one request, or a flood of them, from holding the server: a cap on requests served at once (more
//! get 503 with `Retry-After` at once, never a queue), a deadline until each response starts (a slow query or a
//! slow client holds nothing for ever), and a panic in a handler answered as a 500 for that request alone,
//! counted in `gantry_http_panics_total`.

use std::{sync::Arc, time::Duration};

use app::error::AppError;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use tokio::sync::Semaphore;

use crate::error::app_error_response;

/// The limits of [`limit_requests`].
#[derive(Clone)]
pub struct RequestLimits {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
}

impl RequestLimits {
    pub fn new(max_concurrent: usize, timeout: Duration) -> Self {
        RequestLimits {
            in_flight: Arc::new(Semaphore::new(max_concurrent)),
            timeout,
        }
    }
}

/// Middleware: refuses a request beyond the concurrency cap, and abandons one whose response has not started by
/// the deadline. A response body that streams (SSE, CSV exports) is not held to the deadline.
pub async fn limit_requests(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("gantry_http_requests_shed_total").increment(1);
        return app_error_response(AppError::unavailable(
            "Gantry is serving as many requests as it can; retry shortly.",
            1,
        ));
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("gantry_http_requests_timed_out_total").increment(1);
            tracing::warn!(
                timeout_secs = limits.timeout.as_secs(),
                "A request was abandoned at its deadline."
            );
            app_error_response(AppError::unavailable(
                format!(
                    "The request took longer than {} s and was abandoned; narrow it or retry.",
                    limits.timeout.as_secs()
                ),
                1,
            ))
        }
    }
}

/// The answer to a request whose handler panicked: an opaque 500, the panic logged and counted.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    metrics::counter!("gantry_http_panics_total").increment(1);
    tracing::error!(
        panic = message,
        "A request handler panicked; the request was answered 500."
    );
    app_error_response(AppError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, routing::get, Router};
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_for_its_request_only() {
        let app = Router::new()
            .route("/boom", get(|| async { panic!("a bug in a handler") as &str }))
            .route("/fine", get(|| async { "fine" }))
            .layer(CatchPanicLayer::custom(panic_response));
        let request = |path: &str| Request::builder().uri(path).body(Body::empty()).unwrap();
        let boom = app.clone().oneshot(request("/boom")).await.unwrap();
        assert_eq!(boom.status(), 500);
        let body = axum::body::to_bytes(boom.into_body(), 10_000).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("a bug"), "the panic's text leaked: {body}");
        let fine = app.oneshot(request("/fine")).await.unwrap();
        assert_eq!(fine.status(), 200);
    }
}

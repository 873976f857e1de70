//! The two middlewares in front of every route: [`identify`] works out who is calling (session or API token) and
//! leaves an [`app::auth::Actor`] in the request for handlers and server functions; [`csrf`] refuses
//! state-changing browser requests that did not come from Gantry's own pages.
//!
//! The CSRF rule: a POST/PUT/PATCH/DELETE without an `Authorization` header (so one a browser could send with
//! ambient cookies) must carry an `Origin` (or, lacking it, a `Referer`) equal to Gantry's origin *and* the
//! `X-Gantry-CSRF` header, which a cross-site form cannot set and a cross-site script cannot send without a CORS
//! preflight that Gantry never grants. SameSite cookies alone are not enough (Grafana CVE-2022-21703).

use std::sync::Arc;

use app::auth::CSRF_HEADER;
use app::error::AppError;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{header, HeaderMap, Method};

use super::service::Accounts;
use crate::error::app_error_response;

/// Headers every response carries. Pages set their own Content-Security-Policy (with the hydration script's
/// nonce); everything else gets one that allows nothing.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, http::HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, http::HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

pub async fn identify(State(accounts): State<Arc<Accounts>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match accounts.identify(&parts).await {
        Ok(Some(actor)) => {
            parts.extensions.insert(actor);
            // Live streams re-check the caller later (`LiveCaller`).
            parts.extensions.insert(accounts.clone());
        }
        Ok(None) => {}
        Err(err) => return app_error_response(err),
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The origin browsers must send; `None` means "the origin of the Host the request was sent to".
#[derive(Debug, Clone)]
pub struct CsrfPolicy {
    pub public_origin: Option<String>,
}

impl CsrfPolicy {
    pub fn from_public_url(public_url: Option<&str>) -> CsrfPolicy {
        CsrfPolicy {
            public_origin: public_url.map(origin_of),
        }
    }

    fn allows(&self, origin: &str, headers: &HeaderMap) -> bool {
        match &self.public_origin {
            Some(expected) => origin == expected,
            None => {
                let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                    return false;
                };
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
        }
    }
}

/// `https://example.com:8443/some/path?q` → `https://example.com:8443`.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase())
}

pub async fn csrf(State(policy): State<Arc<CsrfPolicy>>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = request.headers();
    if safe || headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null")
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .map(origin_of)
        });
    let refusal = match origin {
        None => Some("the request has no Origin or Referer header"),
        Some(origin) if !policy.allows(&origin, headers) => Some("the request comes from another site"),
        Some(_) if !headers.contains_key(CSRF_HEADER) => Some("the request lacks the X-Gantry-CSRF header"),
        Some(_) => None,
    };
    match refusal {
        None => next.run(request).await,
        Some(reason) => {
            tracing::info!(
                reason,
                "A state-changing request was refused as a possible cross-site request."
            );
            app_error_response(AppError::forbidden(format!(
                "cross-site request refused: {reason}; API clients authenticate with `Authorization: Bearer <token>`"
            )))
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_drop_path_and_case() {
        assert_eq!(
            origin_of("HTTPS://Gantry.Example.com:8443/a/b?c"),
            "https://gantry.example.com:8443"
        );
        assert_eq!(origin_of("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    }

    #[test]
    fn the_host_origin_is_allowed_without_a_public_url() {
        let policy = CsrfPolicy::from_public_url(None);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        assert!(policy.allows("http://127.0.0.1:3000", &headers));
        assert!(!policy.allows("http://evil.example", &headers));
        let policy = CsrfPolicy::from_public_url(Some("https://gantry.example.com/"));
        assert!(policy.allows("https://gantry.example.com", &headers));
        assert!(!policy.allows("http://127.0.0.1:3000", &headers));
    }
}

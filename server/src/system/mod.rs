//! The instance itself: liveness (`/healthz`), readiness (`/readyz`), metrics (`/metrics`), its lifecycle from
//! start to graceful stop, and the [`SystemService`] the UI's status card reads.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use app::{
    auth::{Actor, Permission},
    error::AppError,
    services::SystemService,
    system::SystemStatus,
};
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::{config::Role, metadata::MetadataStore};

/// Whether the instance should receive traffic; flips to "draining" when a shutdown begins.
pub struct Lifecycle {
    started: Instant,
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn new() -> Self {
        Lifecycle {
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// What the system routes need, and nothing more.
#[derive(Clone)]
pub struct SystemState {
    pub lifecycle: Arc<Lifecycle>,
    pub metadata: Arc<dyn MetadataStore>,
    pub timeseries: crate::timeseries::SharedStore,
    pub metrics: PrometheusHandle,
    pub role: Role,
    /// The background tasks: one that is down (restarting after a panic) makes the instance not ready.
    pub tasks: crate::tasks::Tasks,
    /// A full build of the search index under way (searches answer from the last one meanwhile).
    pub search: Arc<crate::search::BuildProgress>,
}

pub fn router(state: SystemState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Live: the process answers. Deliberately checks nothing else, so a slow database never gets it restarted.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: dependencies answer and no shutdown is under way.
async fn readyz(State(state): State<SystemState>) -> Response {
    if state.lifecycle.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        )
            .into_response();
    }
    // Anyone may ask (gateways do, unauthenticated): the cause goes to the log, the answer only says which part
    // is not ready.
    let metadata = state.metadata.ping().await.map_err(|err| {
        tracing::warn!(error = %err.into_app_error().message, "Readiness: the metadata database does not answer.");
    });
    let timeseries = state.timeseries.check().await.map_err(|err| {
        tracing::warn!(error = %err, "Readiness: the time-series store does not answer.");
    });
    let down = state.tasks.down();
    let tasks = if down.is_empty() { Ok(()) } else { Err(()) };
    let describe = |check: &Result<(), ()>| if check.is_ok() { "ok" } else { "unavailable" };
    // Degraded (TDengine on its secondary) is still ready: the instance serves. The switch itself was logged and
    // counted when it happened; a gateway's probes every few seconds must not repeat it.
    let timeseries_state = match (&timeseries, state.timeseries.degraded()) {
        (Ok(()), Some(_)) => "degraded",
        _ => describe(&timeseries),
    };
    // Still ready while the search index is built: searches answer from the last index until the build commits.
    let search = match state.search.building() {
        Some((done, total)) if total > 0 => format!("building {}%", done * 100 / total),
        Some(_) => "building".to_string(),
        None => "ok".to_string(),
    };
    let checks = json!({
        "metadata": describe(&metadata),
        "timeseries": timeseries_state,
        "background_tasks": describe(&tasks),
        "search": search,
    });
    if metadata.is_ok() && timeseries.is_ok() && tasks.is_ok() {
        Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "checks": checks })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<SystemState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The status card on the landing page.
pub struct SystemInfo {
    pub state: SystemState,
}

#[async_trait::async_trait]
impl SystemService for SystemInfo {
    async fn status(&self, actor: &Actor) -> Result<SystemStatus, AppError> {
        actor.require(Permission::View)?;
        let metadata_reachable = self.state.metadata.ping().await.is_ok();
        let checked_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Ok(SystemStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            role: self.state.role.as_str().to_string(),
            metadata_backend: self.state.metadata.backend().to_string(),
            metadata_reachable,
            uptime_secs: self.state.lifecycle.uptime_secs(),
            checked_at_ms,
        })
    }
}

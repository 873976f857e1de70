//! The plant model: templates (single inheritance, attribute templates overridden by name) and the asset tree,
//! with grants applied to every read and write and every change in the audit log.

mod demo;
mod edits;
mod file;
mod routes;
mod service;
mod store;

pub use file::SharedDashboards;
pub use routes::endpoints;
pub use service::{path_of, shown_path, Model};
pub use store::{AssetRow, ModelStore, TemplateRow};

use std::sync::Arc;

pub fn router(model: Arc<Model>) -> axum::Router {
    crate::api::router_from(endpoints(), model)
}

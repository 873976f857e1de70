//! Trend charts: a trend's series resolved from asset paths (grants apply) and read at the resolution the chart's
//! width calls for, with alarm occurrences as markers (`service`); the same picture rendered to SVG and PNG with
//! the bundled font (`render`); live readings fanned out to open charts (`live`); dashboards, their store and who may
//! change them (`dashboards`); and `/api/v1/charts` and `/api/v1/dashboards` (`routes`).

pub mod dashboards;
pub mod live;
pub mod render;
pub mod routes;
pub mod service;

pub use dashboards::{DashboardStore, Dashboards};
pub use live::LiveReadings;
pub use routes::{endpoints, router};
pub use service::Charts;

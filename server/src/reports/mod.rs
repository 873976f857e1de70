//! Reports: definitions stored in the metadata database (`store.rs`), the service that decides who sees and
//! changes them and works a report out for a time range (`service.rs`), the calendar arithmetic of its range
//! (`period.rs`), runs and their worker (`runs.rs`: claimed, scheduled, retried, their files kept), the CSV, XLSX and PDF writers (`csv.rs`, `xlsx.rs`, `pdf.rs`) and `/api/v1/reports` (`routes.rs`).

pub mod csv;
pub mod pdf;
pub mod period;
mod routes;
pub mod runs;
mod service;
mod store;
pub mod xlsx;

pub use routes::{endpoints, router};
pub use runs::RunFiles;
pub use service::{ReportSources, Reports};
pub use store::{ReportRow, ReportStore};

//! Reports: definitions stored in the metadata database (`store.rs`), the service that decides who sees and
//! changes them and works a report out for a time range (`service.rs`), the calendar arithmetic of its range
//! (`period.rs`), the CSV and XLSX writers (`csv.rs`, `xlsx.rs`) and `/api/v1/reports` (`routes.rs`).

pub mod csv;
pub mod period;
mod routes;
mod service;
mod store;
pub mod xlsx;

pub use routes::{endpoints, router};
pub use service::Reports;
pub use store::{ReportRow, ReportStore};

//! Search: a Tantivy index of assets, devices and templates per instance, kept current from the change feed, and
//! the query language of the search box (`query`), answered within the caller's grants.

pub mod index;
pub mod query;
mod routes;
mod service;
pub mod values;

pub use routes::{endpoints, router};
pub use service::{Search, SearchSources};

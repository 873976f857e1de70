//! Series registry and queries.

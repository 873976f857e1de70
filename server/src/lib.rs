//! The Gantry server: configuration, start-up, the HTTP routes of each area, and the storage backends behind
//! their traits. `main.rs` is only the command line; everything testable lives here.

pub mod alarms;
pub mod api;
pub mod assets;
pub mod auth;
pub mod changes;
pub mod charts;
pub mod cli;
pub mod config;
pub mod devices;
pub mod error;
pub mod fanout;
pub mod ingest;
pub mod leases;
pub mod locks;
pub mod metadata;
pub mod metrics;
pub mod openapi;
pub mod overload;
pub mod reports;
pub mod search;
pub mod startup;
pub mod system;
pub mod tasks;
pub mod telemetry;
pub mod timeseries;
pub mod ui;

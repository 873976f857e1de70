//! Gantry's shared crate: the domain types, UI components and server functions that the server renders and the
//! browser hydrates. No I/O lives here: server functions reach the backend through the service traits declared in
//! [`services`] (behind the `ssr` feature), which the `server` crate implements and provides as Leptos context.

pub mod client;
pub mod error;
pub mod icons;
pub mod services;
pub mod shell;
pub mod time;

pub mod alarms;
pub mod assets;
pub mod auth;
pub mod charts;
pub mod devices;
pub mod reports;
pub mod search;
pub mod system;
pub mod timeseries;

pub use shell::{shell, App};

//! Alarms: rules evaluated as readings arrive (in the ingest pipeline, before the acknowledgement), the ISA-18.2
//! lifecycle of each occurrence, subtree roll-ups, and notifications to browsers and webhooks.

mod engine;
mod forward;
mod handover;
mod notify;
pub mod ownership;
mod resolve;
mod routes;
pub mod rules;
mod service;
mod store;
mod timers;
mod webhook_store;

pub use engine::{alarm_view, format_value, AlarmEngine};
pub use forward::{AlarmWork, Forwarder};
pub use notify::{signature, Notifier, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
pub use routes::{endpoints, router};
pub use service::Alarms;
pub use store::{AlarmStore, ListFilter};

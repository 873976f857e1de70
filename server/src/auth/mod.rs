//! Accounts and access control: users with argon2id passwords, sessions (tower-sessions on SQLite, PostgreSQL or
//! Redis), API tokens, subtree grants, the audit log, login throttling, and the middlewares that identify callers
//! and refuse cross-site requests.

pub mod client;
mod guard;
pub mod live;
mod routes;
pub(crate) mod secrets;
mod service;
mod sessions;
mod store;
mod throttle;

pub use client::{client_address, TrustedProxies};
pub use guard::{csrf, identify, security_headers, CsrfPolicy};
pub use live::LiveCaller;
pub use routes::endpoints;
pub use secrets::prepare as prepare_password_hashing;
pub use service::{Accounts, AuditLog, Credential};
pub use sessions::{SessionBackend, COOKIE_NAME};
pub use store::AuthStore;

use std::sync::Arc;

pub fn router(accounts: Arc<Accounts>) -> axum::Router {
    crate::api::router_from(endpoints(), accounts)
}

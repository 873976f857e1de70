//! The instance itself: its status as the UI shows it, and the landing page that shows it.

mod home;

pub use home::HomePage;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What an operator wants to know about the running instance at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    pub version: String,
    /// `all`, `web` or `ingest`.
    pub role: String,
    /// `sqlite` or `postgres`.
    pub metadata_backend: String,
    pub metadata_reachable: bool,
    pub uptime_secs: u64,
    /// Milliseconds since the Unix epoch (UTC) when the status was taken.
    pub checked_at_ms: i64,
}

/// Reads the instance status through the [`crate::services::SystemService`].
#[server(prefix = "/_fn", endpoint = "system/status", client = crate::auth::CsrfClient)]
pub async fn get_system_status() -> Result<SystemStatus, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.system.status(&actor).await
}

/// `90061` → `1 d 1 h 1 min`: uptime the way people read it.
pub fn format_uptime(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, m) => format!("{d} d {h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::format_uptime;

    #[test]
    fn uptime_reads_naturally() {
        assert_eq!(format_uptime(42), "42 s");
        assert_eq!(format_uptime(125), "2 min");
        assert_eq!(format_uptime(3_600 + 120), "1 h 2 min");
        assert_eq!(format_uptime(90_061), "1 d 1 h 1 min");
    }
}

//! Login throttling: more than N failures a minute for one account from one client answers 429 with
//! `Retry-After`. Kept per instance, in memory; an attacker spread over several HA instances gets N per instance.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use app::error::{AppError, ErrorKind};

const WINDOW: Duration = Duration::from_secs(60);

pub struct LoginThrottle {
    max_failures: usize,
    failures: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(max_failures_per_minute: u32) -> Self {
        LoginThrottle {
            max_failures: max_failures_per_minute as usize,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str, client: &str) -> (String, String) {
        (username.to_lowercase(), client.to_string())
    }

    /// Refuses the attempt when the account+client pair used up its failures for the minute.
    pub fn check(&self, username: &str, client: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("throttle lock");
        // Forget pairs whose failures are all older than the window, so the map stays bounded by recent traffic.
        failures.retain(|_, times| {
            while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        match failures.get(&Self::key(username, client)) {
            Some(times) if times.len() >= self.max_failures => {
                let oldest = *times.front().expect("not empty");
                let wait = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                Err(AppError::new(
                    ErrorKind::TooManyRequests,
                    "too many failed sign-ins for this account; wait before trying again",
                )
                .with_retry_after(wait))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, client: &str) {
        self.failures
            .lock()
            .expect("throttle lock")
            .entry(Self::key(username, client))
            .or_default()
            .push_back(Instant::now());
    }

    pub fn record_success(&self, username: &str, client: &str) {
        self.failures
            .lock()
            .expect("throttle lock")
            .remove(&Self::key(username, client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused() {
        let throttle = LoginThrottle::new(10);
        for _ in 0..10 {
            throttle.check("Anna", "10.0.0.1").unwrap();
            throttle.record_failure("Anna", "10.0.0.1");
        }
        let err = throttle.check("anna", "10.0.0.1").unwrap_err();
        assert_eq!(err.code, ErrorKind::TooManyRequests);
        assert!(err.retry_after_secs.unwrap() >= 1);
        // Another client, or another account, is not affected.
        throttle.check("anna", "10.0.0.2").unwrap();
        throttle.check("bert", "10.0.0.1").unwrap();
        throttle.record_success("anna", "10.0.0.1");
        throttle.check("anna", "10.0.0.1").unwrap();
    }
}

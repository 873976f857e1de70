//! Login throttling: more than N attempts a minute for one account from one client, without a success, answers
//! 429 with `Retry-After`. An attempt is counted when it starts ([`LoginThrottle::begin`]), before the password is
//! hashed, so parallel guesses cannot all pass the check before any of them is counted; a success forgets the
//! pair's attempts. The map is capped at [`MAX_TRACKED`] pairs, so a flood of made-up names costs bounded memory.
//! Kept per instance, in memory; an attacker spread over several HA instances gets N per instance.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::locks::MutexExt;
use app::error::{AppError, ErrorKind};

const WINDOW: Duration = Duration::from_secs(60);
/// Account and client pairs remembered at once; beyond this the pair whose last attempt is oldest is forgotten.
pub const MAX_TRACKED: usize = 10_000;

type Key = (String, String);

pub struct LoginThrottle {
    max_attempts: usize,
    max_tracked: usize,
    attempts: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// One sign-in attempt, already counted against its account and client. Dropping it leaves it counted (a
/// failure); [`Attempt::succeeded`] forgets the pair's attempts.
#[must_use]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: Key,
}

impl Attempt<'_> {
    pub fn succeeded(self) {
        self.throttle.lock().remove(&self.key);
    }
}

impl LoginThrottle {
    pub fn new(max_attempts_per_minute: u32) -> Self {
        Self::with_capacity(max_attempts_per_minute, MAX_TRACKED)
    }

    fn with_capacity(max_attempts_per_minute: u32, max_tracked: usize) -> Self {
        LoginThrottle {
            max_attempts: (max_attempts_per_minute as usize).max(1),
            max_tracked: max_tracked.max(1),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// A panic elsewhere while the lock was held leaves the map usable: it holds only instants.
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.attempts.lock_unpoisoned()
    }

    /// Counts an attempt of `username` from `client`, or refuses it (429) when the pair used up its attempts for
    /// the minute. Check and count are one step under one lock.
    pub fn begin(&self, username: &str, client: &str) -> Result<Attempt<'_>, AppError> {
        let now = Instant::now();
        let key = (username.to_lowercase(), client.to_string());
        let expired = |times: &mut VecDeque<Instant>| {
            while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                times.pop_front();
            }
            times.is_empty()
        };
        let mut attempts = self.lock();
        if !attempts.contains_key(&key) && attempts.len() >= self.max_tracked {
            attempts.retain(|_, times| !expired(times));
            if attempts.len() >= self.max_tracked {
                let stalest = attempts
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| key.clone());
                if let Some(stalest) = stalest {
                    attempts.remove(&stalest);
                }
            }
        }
        let times = attempts.entry(key.clone()).or_default();
        expired(times);
        if times.len() >= self.max_attempts {
            let oldest = *times.front().expect("at least max_attempts instants");
            let wait = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
            return Err(AppError::new(
                ErrorKind::TooManyRequests,
                "too many failed sign-ins for this account; wait before trying again",
            )
            .with_retry_after(wait));
        }
        times.push_back(now);
        Ok(Attempt { throttle: self, key })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused() {
        let throttle = LoginThrottle::new(10);
        for _ in 0..10 {
            drop(throttle.begin("Anna", "10.0.0.1").unwrap());
        }
        let err = throttle.begin("anna", "10.0.0.1").err().unwrap();
        assert_eq!(err.code, ErrorKind::TooManyRequests);
        assert!(err.retry_after_secs.unwrap() >= 1);
        // Another client, or another account, is not affected; a success forgets the pair.
        throttle.begin("anna", "10.0.0.2").unwrap().succeeded();
        throttle.begin("bert", "10.0.0.1").unwrap().succeeded();
    }

    #[test]
    fn attempts_in_flight_count_before_they_finish() {
        let throttle = LoginThrottle::new(3);
        let running: Vec<_> = (0..3).map(|_| throttle.begin("anna", "10.0.0.1").unwrap()).collect();
        assert!(
            throttle.begin("anna", "10.0.0.1").is_err(),
            "a fourth parallel guess got through"
        );
        drop(running);
        assert!(throttle.begin("anna", "10.0.0.1").is_err());
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_the_freshest_pairs() {
        let throttle = LoginThrottle::with_capacity(2, 100);
        for i in 0..1_000 {
            drop(throttle.begin(&format!("user{i}"), "10.0.0.1").unwrap());
        }
        assert_eq!(throttle.tracked(), 100);
        drop(throttle.begin("anna", "10.0.0.9").unwrap());
        drop(throttle.begin("anna", "10.0.0.9").unwrap());
        assert!(
            throttle.begin("anna", "10.0.0.9").is_err(),
            "the newest pair was forgotten"
        );
        assert_eq!(throttle.tracked(), 100);
    }
}

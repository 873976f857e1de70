//! Login throttling: more than N attempts a minute for one account from one client, without a success, answers
//! 429 with `Retry-After`. An attempt is counted when it starts ([`LoginThrottle::begin`]), before the password is
//! hashed, so parallel guesses cannot all pass the check before any of them is counted; a success forgets the
//! pair's attempts. The attempts live in the metadata database (`login_attempts`, a minute's worth), so every
//! instance of a cluster counts the same ones, and memory does not grow with a flood of made-up names.

use std::sync::Arc;

use app::error::{AppError, ErrorKind};

use super::AuthStore;
use crate::metadata::now_ms;

const WINDOW_MS: i64 = 60_000;

pub struct LoginThrottle {
    store: Arc<dyn AuthStore>,
    max_attempts: i64,
}

/// One sign-in attempt, already counted against its account and client. Dropping it leaves it counted (a
/// failure); [`Attempt::succeeded`] forgets the pair's attempts.
#[must_use]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    client: String,
}

impl Attempt<'_> {
    pub async fn succeeded(self) {
        let forgotten = self
            .throttle
            .store
            .forget_login_attempts(&self.account, &self.client)
            .await;
        if let Err(error) = forgotten {
            // The attempts lapse within a minute anyway.
            tracing::warn!(error = %error.into_app_error(), "A successful sign-in's earlier attempts stay counted.");
        }
    }
}

impl LoginThrottle {
    pub fn new(store: Arc<dyn AuthStore>, max_attempts_per_minute: u32) -> Self {
        LoginThrottle {
            store,
            max_attempts: i64::from(max_attempts_per_minute.max(1)),
        }
    }

    /// Counts an attempt of `username` from `client`, or refuses it (429) when the pair used up its attempts for
    /// the minute (a refused attempt counts too: guessing on keeps the pair refused).
    pub async fn begin(&self, username: &str, client: &str) -> Result<Attempt<'_>, AppError> {
        let now = now_ms();
        let account = username.to_lowercase();
        let (count, first) = self
            .store
            .count_login_attempt(&account, client, now, now - WINDOW_MS)
            .await
            .map_err(|e| e.into_app_error())?;
        if count > self.max_attempts {
            let wait = ((first + WINDOW_MS - now) / 1000).max(1);
            return Err(AppError::new(
                ErrorKind::TooManyRequests,
                "too many failed sign-ins for this account; wait before trying again",
            )
            .with_retry_after(wait as u64));
        }
        Ok(Attempt {
            throttle: self,
            account,
            client: client.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;
    use crate::metadata::{MetadataStore, SqliteMetadata};

    async fn store() -> (Arc<SqliteMetadata>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteMetadata::open(None, dir.path(), &DatabaseConfig::default())
            .await
            .unwrap();
        db.migrate().await.unwrap();
        (Arc::new(db), dir)
    }

    #[tokio::test]
    async fn the_eleventh_attempt_in_a_minute_is_refused() {
        let (db, _dir) = store().await;
        let throttle = LoginThrottle::new(db, 10);
        for _ in 0..10 {
            drop(throttle.begin("Anna", "10.0.0.1").await.unwrap());
        }
        let err = throttle.begin("anna", "10.0.0.1").await.err().unwrap();
        assert_eq!(err.code, ErrorKind::TooManyRequests);
        assert!(err.retry_after_secs.unwrap() >= 1);
        // Another client, or another account, is not affected; a success forgets the pair.
        throttle.begin("anna", "10.0.0.2").await.unwrap().succeeded().await;
        throttle.begin("bert", "10.0.0.1").await.unwrap().succeeded().await;
        let attempt = throttle.begin("bert", "10.0.0.1").await.unwrap();
        drop(attempt);
    }

    #[tokio::test]
    async fn attempts_in_flight_count_before_they_finish() {
        let (db, _dir) = store().await;
        let throttle = LoginThrottle::new(db, 3);
        let mut running = Vec::new();
        for _ in 0..3 {
            running.push(throttle.begin("anna", "10.0.0.1").await.unwrap());
        }
        assert!(
            throttle.begin("anna", "10.0.0.1").await.is_err(),
            "a fourth parallel guess got through"
        );
        drop(running);
        assert!(throttle.begin("anna", "10.0.0.1").await.is_err());
    }

    #[tokio::test]
    async fn instances_on_one_database_share_the_count() {
        let (db, _dir) = store().await;
        let (a, b) = (LoginThrottle::new(db.clone(), 4), LoginThrottle::new(db, 4));
        for throttle in [&a, &b, &a, &b] {
            drop(throttle.begin("anna", "10.0.0.1").await.unwrap());
        }
        assert!(a.begin("anna", "10.0.0.1").await.is_err());
        assert!(b.begin("anna", "10.0.0.1").await.is_err());
    }
}

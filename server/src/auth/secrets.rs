//! Passwords (argon2id with OWASP's parameters, hashed off the async runtime, a bounded number at once) and API
//! token secrets (256 random bits, stored as SHA-256).

use std::{
    sync::{LazyLock, OnceLock},
    time::Duration,
};

use app::error::AppError;
use tokio::sync::Semaphore;

use argon2::{
    password_hash::{rand_core::OsRng, rand_core::RngCore, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB of memory, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Password hashing is the costliest work an anonymous caller can ask for (19 MiB and tens of milliseconds of a
/// core each). At most one hash per core runs at once, a few more wait their turn, and the rest are answered 503
/// with `Retry-After` at once: memory stays bounded and the blocking pool stays free for the stores.
struct HashingGate {
    admitted: Semaphore,
    running: Semaphore,
}

impl HashingGate {
    fn new(cores: usize, queue_per_core: usize) -> Self {
        HashingGate {
            admitted: Semaphore::new(cores * (1 + queue_per_core)),
            running: Semaphore::new(cores),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let _admitted = self.admitted.try_acquire().map_err(|_| {
            metrics::counter!("gantry_password_hashes_refused_total").increment(1);
            AppError::unavailable("Too many sign-ins are being checked at once; retry in a moment.", 1)
        })?;
        // The permit is awaited, not the hash: a waiting request holds no memory but its own.
        let running = tokio::time::timeout(Duration::from_secs(10), self.running.acquire())
            .await
            .map_err(|_| AppError::unavailable("Sign-ins are slow to check right now; retry in a moment.", 2))?
            .map_err(anyhow::Error::from)?;
        let result = tokio::task::spawn_blocking(work).await.map_err(anyhow::Error::from);
        drop(running);
        Ok(result?)
    }
}

static HASHING: LazyLock<HashingGate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    HashingGate::new(cores, 4)
});

/// Hashes a password into a PHC string (which records the parameters, so they can rise later).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    HASHING
        .run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|err| anyhow::anyhow!("hashing a password failed: {err}"))
        })
        .await?
        .map_err(ApiError::from)
}

/// Whether `password` matches `stored`. With no stored hash (an unknown user) it still does the full work
/// against a dummy hash, so that unknown users and wrong passwords take the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
    let matches = HASHING
        .run(move || {
            PasswordHash::new(&stored)
                .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
                .unwrap_or(false)
        })
        .await?;
    Ok(known && matches)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(random_hex(16).as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Computes the dummy hash now, so the first failed login for an unknown user is not faster than later ones.
pub fn prepare() {
    dummy_hash();
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    hex(&buffer)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// API tokens look like `gantry_` + 64 hex digits; the prefix helps secret scanners and people tell them apart.
pub const TOKEN_PREFIX: &str = "gantry_";

pub fn new_token_secret() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(32))
}

pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The part of a token that lists may show.
pub fn token_display_prefix(secret: &str) -> String {
    secret.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong horse battery".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_beyond_the_queue_are_refused_with_retry_after() {
        let gate = std::sync::Arc::new(HashingGate::new(1, 1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        // One hash runs (blocked until released), one waits its turn: the gate is full.
        let running = {
            let (gate, wait) = (gate.clone(), wait.clone());
            tokio::spawn(async move { gate.run(move || wait.lock().unwrap().recv().ok()).await })
        };
        let queued = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(|| Some(())).await })
        };
        while gate.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(|| ()).await.unwrap_err().into_app_error();
        assert_eq!(refused.code, app::error::ErrorKind::Unavailable);
        assert_eq!(refused.retry_after_secs, Some(1));
        release.send(()).unwrap();
        assert!(running.await.unwrap().is_ok());
        assert!(queued.await.unwrap().is_ok());
        assert!(gate.run(|| ()).await.is_ok(), "the gate reopens once hashes finish");
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token_secret();
        let b = new_token_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a[TOKEN_PREFIX.len()..]));
        assert_eq!(token_display_prefix(&a).len(), TOKEN_PREFIX.len() + 6);
    }
}

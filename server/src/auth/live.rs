//! Live streams (the alarm feed, a chart's live readings) outlive the request that opened them, so the identity
//! checked at connect time could go on receiving events after the user was disabled, lost grants, changed their
//! password, signed out or had the token revoked. A [`LiveCaller`] re-checks the credential the stream was opened
//! with every [`RECHECK`] and ends the stream when it no longer admits the same caller (same role, same grants);
//! the browser's `EventSource` reconnects and is identified afresh. Streams are also capped per user across every
//! instance ([`MAX_STREAMS_PER_USER`]), so one account cannot hold unbounded connections: each open stream holds a
//! lease (`stream:<user>:<id>`, see `crate::leases`) renewed with every re-check, and the cap counts them.

use crate::locks::MutexExt;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::{
    auth::Actor,
    error::{AppError, ErrorKind},
};
use axum::extract::FromRequestParts;
use futures::{Stream, StreamExt};
use http::request::Parts;

use super::{service::Credential, Accounts};
use crate::error::ApiError;
use crate::leases::LeaseStore;
use crate::metadata::now_ms;

/// How often an open stream's credential is checked again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Open live streams per user, on all instances together; more answer 429.
pub const MAX_STREAMS_PER_USER: usize = 16;
/// How long a stream's lease outlives its last renewal (an instance that dies frees its users' slots then).
const STREAM_LEASE_MS: i64 = 10_000;

/// Open streams per user: in this process, and through leases shared with the other instances when given them.
#[derive(Default)]
pub struct LiveStreams {
    open: Mutex<HashMap<i64, usize>>,
    shared: Option<(Arc<dyn LeaseStore>, String)>,
}

impl LiveStreams {
    /// Streams counted across instances through `leases`, held in `instance`'s name.
    pub fn shared(leases: Arc<dyn LeaseStore>, instance: String) -> LiveStreams {
        LiveStreams {
            open: Mutex::default(),
            shared: Some((leases, instance)),
        }
    }

    async fn admit(self: &Arc<Self>, user_id: i64) -> Result<StreamSlot, AppError> {
        let too_many = || {
            AppError::new(
                ErrorKind::TooManyRequests,
                format!("at most {MAX_STREAMS_PER_USER} live streams per user; close another page first"),
            )
            .with_retry_after(5)
        };
        let lease = match &self.shared {
            None => None,
            Some((leases, instance)) => {
                // Taken first, then counted: of streams racing on several instances, only those among the first
                // allowed see a count within the cap.
                let prefix = format!("stream:{user_id}:");
                let name = format!("{prefix}{}", super::secrets::random_hex(8));
                let now = now_ms();
                let to_app = |error: ApiError| error.into_app_error();
                leases
                    .acquire(&name, instance, now, now + STREAM_LEASE_MS)
                    .await
                    .map_err(to_app)?;
                let open = leases.held(&prefix, now).await.map_err(to_app)?.len();
                if open > MAX_STREAMS_PER_USER {
                    leases.release(&name, instance).await.map_err(to_app)?;
                    return Err(too_many());
                }
                Some(name)
            }
        };
        let mut open = self.open.lock_unpoisoned();
        let count = open.entry(user_id).or_default();
        if *count >= MAX_STREAMS_PER_USER {
            return Err(too_many());
        }
        *count += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            user_id,
            lease,
        })
    }
}

/// One open stream, counted until dropped.
struct StreamSlot {
    streams: Arc<LiveStreams>,
    user_id: i64,
    lease: Option<String>,
}

impl StreamSlot {
    /// Keeps the stream counted on every instance for another lease period.
    async fn renew(&self) {
        if let (Some((leases, instance)), Some(name)) = (&self.streams.shared, &self.lease) {
            let now = now_ms();
            if let Err(error) = leases.acquire(name, instance, now, now + STREAM_LEASE_MS).await {
                tracing::debug!(error = %error.into_app_error(), "A live stream's lease could not be renewed.");
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock_unpoisoned();
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
        if let (Some((leases, instance)), Some(name)) = (self.streams.shared.clone(), self.lease.take()) {
            // Dropped outside any runtime (at exit) the lease just ends on its own.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = leases.release(&name, &instance).await;
                });
            }
        }
    }
}

/// The caller of a live stream: who they are now, and what keeps checking that they still are.
pub struct LiveCaller {
    pub actor: Actor,
    watch: Watch,
}

struct Watch {
    accounts: Arc<Accounts>,
    credential: Credential,
    actor: Actor,
    slot: StreamSlot,
}

impl LiveCaller {
    /// `stream`, ended as soon as the credential no longer admits the same caller.
    pub fn guard<S: Stream + Send + 'static>(self, stream: S) -> impl Stream<Item = S::Item> + Send {
        let watch = self.watch;
        let revoked = async move {
            // The whole watch moves in, its stream slot with it: the slot counts until the stream ends.
            let watch = watch;
            loop {
                tokio::time::sleep(RECHECK).await;
                watch.slot.renew().await;
                match watch
                    .accounts
                    .recheck(&watch.credential, watch.actor.source.clone())
                    .await
                {
                    Ok(Some(now)) if now.role == watch.actor.role && now.scope == watch.actor.scope => {}
                    Ok(_) => break,
                    // A failing check (the database away) ends the stream too: the browser reconnects later.
                    Err(err) => {
                        tracing::debug!(error = %err.message, "A live stream's credential could not be checked.");
                        break;
                    }
                }
            }
        };
        stream.take_until(Box::pin(revoked))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LiveCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let unauthorized = || AppError::new(ErrorKind::Unauthorized, "please sign in or send an API token");
        let actor = parts.extensions.get::<Actor>().cloned().ok_or_else(unauthorized)?;
        let accounts = parts.extensions.get::<Arc<Accounts>>().cloned().ok_or_else(|| {
            tracing::error!("A live stream was opened without the identity layer.");
            AppError::internal()
        })?;
        let credential = accounts.credential(parts).await?.ok_or_else(unauthorized)?;
        let slot = accounts.live_streams().admit(actor.user_id).await?;
        Ok(LiveCaller {
            actor: actor.clone(),
            watch: Watch {
                accounts,
                credential,
                actor,
                slot,
            },
        })
    }
}

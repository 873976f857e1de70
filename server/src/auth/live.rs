//! Live streams (the alarm feed, a chart's live readings) outlive the request that opened them, so the identity
//! checked at connect time could go on receiving events after the user was disabled, lost grants, changed their
//! password, signed out or had the token revoked. A [`LiveCaller`] re-checks the credential the stream was opened
//! with every [`RECHECK`] and ends the stream when it no longer admits the same caller (same role, same grants);
//! the browser's `EventSource` reconnects and is identified afresh. Streams are also capped per user and
//! instance ([`MAX_STREAMS_PER_USER`]), so one account cannot hold unbounded connections.

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

/// How often an open stream's credential is checked again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Open live streams per user on one instance; more answer 429.
pub const MAX_STREAMS_PER_USER: usize = 16;

/// Open streams per user.
#[derive(Default)]
pub struct LiveStreams {
    open: Mutex<HashMap<i64, usize>>,
}

impl LiveStreams {
    fn admit(self: &Arc<Self>, user_id: i64) -> Result<StreamSlot, AppError> {
        let mut open = self.open.lock_unpoisoned();
        let count = open.entry(user_id).or_default();
        if *count >= MAX_STREAMS_PER_USER {
            return Err(AppError::new(
                ErrorKind::TooManyRequests,
                format!("at most {MAX_STREAMS_PER_USER} live streams per user; close another page first"),
            )
            .with_retry_after(5));
        }
        *count += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            user_id,
        })
    }
}

/// One open stream, counted until dropped.
struct StreamSlot {
    streams: Arc<LiveStreams>,
    user_id: i64,
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
    _slot: StreamSlot,
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
        let slot = accounts.live_streams().admit(actor.user_id)?;
        Ok(LiveCaller {
            actor: actor.clone(),
            watch: Watch {
                accounts,
                credential,
                actor,
                _slot: slot,
            },
        })
    }
}

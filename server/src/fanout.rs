//! Fan-out: events every instance's browsers must see, whichever instance they happened on (alarm events, live
//! chart readings). On one box a [`Topic`] is an in-process broadcast channel. With several instances
//! (`cluster.redis_url`) every event goes through Redis pub/sub, and each instance — the publishing one too —
//! hands what arrives to its own subscribers, which apply their caller's grants there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tower_sessions_redis_store::fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, EventInterface, PubsubInterface,
};

use crate::config::ClusterConfig;
use crate::tasks::Tasks;

/// Where one kind of event is published and subscribed to.
pub struct Topic<T> {
    local: broadcast::Sender<T>,
    redis: Option<RedisTopic>,
}

struct RedisTopic {
    publisher: Client,
    channel: String,
}

impl<T> Topic<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    /// A topic of this process only.
    pub fn local(capacity: usize) -> Topic<T> {
        Topic {
            local: broadcast::channel(capacity).0,
            redis: None,
        }
    }

    /// The topic `name`: through Redis when the configuration names one (its relay is a supervised task that
    /// runs until `shutdown`), else [`Topic::local`].
    pub async fn open(
        config: &ClusterConfig,
        name: &'static str,
        capacity: usize,
        tasks: &Tasks,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Topic<T>>> {
        let Some(url) = &config.redis_url else {
            return Ok(Arc::new(Topic::local(capacity)));
        };
        let redis = RedisConfig::from_url(url.expose_secret()).context("cluster.redis_url is not a valid Redis URL")?;
        let publisher = Builder::from_config(redis).build().context("cluster.redis_url")?;
        publisher
            .init()
            .await
            .context("could not connect to the cluster's Redis (cluster.redis_url)")?;
        let subscriber = publisher.clone_new();
        subscriber
            .init()
            .await
            .context("could not connect to the cluster's Redis (cluster.redis_url)")?;
        let channel = format!("{}:{name}", config.channel_prefix);
        subscriber.subscribe(channel.clone()).await?;
        let topic = Arc::new(Topic {
            local: broadcast::channel(capacity).0,
            redis: Some(RedisTopic {
                publisher,
                channel: channel.clone(),
            }),
        });
        let local = topic.local.clone();
        tasks.supervise(name, move || {
            relay(subscriber.clone(), channel.clone(), local.clone(), shutdown.clone())
        });
        Ok(topic)
    }

    /// Whether events reach other instances (through Redis), not only this one's subscribers.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<T> {
        self.local.subscribe()
    }

    /// Sends `event` to every instance's subscribers. If Redis cannot take it, this instance's subscribers still
    /// get it (and the failure is logged).
    pub async fn publish(&self, event: T) {
        let Some(redis) = &self.redis else {
            // No subscriber is not an error.
            let _ = self.local.send(event);
            return;
        };
        let sent = match serde_json::to_string(&event) {
            Ok(payload) => redis
                .publisher
                .publish::<(), _, _>(redis.channel.as_str(), payload)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = sent {
            tracing::warn!(%error, channel = %redis.channel, "An event could not be fanned out to other instances.");
            let _ = self.local.send(event);
        }
    }
}

/// What a topic delivered that its reader has not taken yet, folded into a map (say, the newest event per key),
/// so a reader that falls behind takes one entry per key rather than every event.
pub struct Inbox<K, V> {
    pending: std::sync::Mutex<std::collections::HashMap<K, V>>,
    arrived: tokio::sync::Notify,
}

impl<K, V> Inbox<K, V>
where
    K: Eq + std::hash::Hash + Send + 'static,
    V: Send + 'static,
{
    /// An inbox nothing delivers to (a one-off job needs none).
    pub fn empty() -> Arc<Inbox<K, V>> {
        Arc::new(Inbox {
            pending: std::sync::Mutex::new(std::collections::HashMap::new()),
            arrived: tokio::sync::Notify::new(),
        })
    }

    /// Folds each event of `topic` into the inbox with `fold` (a supervised task named `name`), until `shutdown`.
    pub fn follow<T>(
        topic: &Topic<T>,
        name: &'static str,
        fold: fn(&mut std::collections::HashMap<K, V>, T),
        tasks: &Tasks,
        shutdown: CancellationToken,
    ) -> Arc<Inbox<K, V>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + 'static,
    {
        use crate::locks::MutexExt;
        let inbox = Inbox::empty();
        let receiver = Arc::new(tokio::sync::Mutex::new(topic.subscribe()));
        let collector = inbox.clone();
        tasks.supervise(name, move || {
            let (inbox, receiver, shutdown) = (collector.clone(), receiver.clone(), shutdown.clone());
            async move {
                let mut receiver = receiver.lock().await;
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        event = receiver.recv() => event,
                    };
                    match event {
                        Ok(event) => {
                            fold(&mut inbox.pending.lock_unpoisoned(), event);
                            inbox.arrived.notify_one();
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(
                                missed,
                                inbox = name,
                                "A reader fell behind its topic and missed events."
                            );
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        inbox
    }

    /// Waits until something arrives.
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    /// Takes what arrived so far.
    pub fn take(&self) -> std::collections::HashMap<K, V> {
        use crate::locks::MutexExt;
        std::mem::take(&mut *self.pending.lock_unpoisoned())
    }
}

/// Hands what Redis delivers on `channel` to this instance's subscribers, subscribing again after a reconnect.
async fn relay<T: DeserializeOwned>(
    subscriber: Client,
    channel: String,
    local: broadcast::Sender<T>,
    shutdown: CancellationToken,
) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            reconnected = reconnects.recv() => {
                if reconnected.is_ok() {
                    if let Err(error) = subscriber.subscribe(channel.clone()).await {
                        tracing::warn!(%error, %channel, "Could not subscribe again after reconnecting to Redis.");
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            message = messages.recv() => match message {
                Ok(message) if message.channel == channel => {
                    let event = message
                        .value
                        .as_str()
                        .and_then(|text| serde_json::from_str::<T>(&text).ok());
                    match event {
                        Some(event) => {
                            let _ = local.send(event);
                        }
                        None => tracing::warn!(%channel, "An event from another instance could not be read."),
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, %channel, "Events from other instances were dropped: too many at once.");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

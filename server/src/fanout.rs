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

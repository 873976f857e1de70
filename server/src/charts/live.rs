//! Live readings for open charts: the ingest pipeline tells [`LiveReadings`] about every durable batch, and each
//! chart's event stream picks out its own series. Only readings of series some chart watches are passed on, so
//! nothing is copied while no chart is open.
//!
//! With several instances (`cluster.redis_url`) a chart open on one instance must see readings another received:
//! each instance keeps the series its charts watch in a Redis sorted set (scored by when the interest lapses,
//! refreshed every [`REFRESH`]), reads back what every instance watches, and fans out the readings of those series
//! through a [`Topic`]; each instance relays what arrives to its own charts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tower_sessions_redis_store::fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, SortedSetsInterface,
};

use crate::config::ClusterConfig;
use crate::fanout::Topic;
use crate::ingest::pipeline::ReadingsObserver;
use crate::locks::{MutexExt, RwLockExt};
use crate::metadata::now_ms;
use crate::tasks::Tasks;
use crate::timeseries::{Reading, SeriesId};

/// Batches kept for a slow chart before it is told it lagged (and refetches).
const BACKLOG: usize = 256;
/// How often an instance renews its charts' interest and reads everyone's.
const REFRESH: Duration = Duration::from_secs(1);
/// How long an interest lasts unless renewed (an instance that dies stops being sent readings after this).
const INTEREST_TTL_MS: i64 = 5_000;

/// One batch of readings as charts receive it: `(series, ts, value)`, shared between the charts of an instance.
#[derive(Debug, Clone)]
pub struct LiveBatch(pub Arc<Vec<(SeriesId, i64, f64)>>);

impl Serialize for LiveBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LiveBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(|points| LiveBatch(Arc::new(points)))
    }
}

pub struct LiveReadings {
    topic: Arc<Topic<LiveBatch>>,
    /// Series the charts of this instance watch, with how many charts watch each.
    watched_here: Arc<Mutex<HashMap<SeriesId, usize>>>,
    /// Series the charts of any instance watch (with Redis).
    watched_anywhere: Arc<RwLock<HashSet<SeriesId>>>,
    interest: Option<(Client, String)>,
    /// Wakes the interest refresher early when a chart starts watching.
    new_watch: Notify,
}

/// A chart's interest in its series; dropping it ends the interest.
pub struct Watch {
    series: Vec<SeriesId>,
    watched_here: Arc<Mutex<HashMap<SeriesId, usize>>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.watched_here.lock_unpoisoned();
        for id in &self.series {
            if let Some(count) = watched.get_mut(id) {
                *count -= 1;
                if *count == 0 {
                    watched.remove(id);
                }
            }
        }
    }
}

impl LiveReadings {
    /// Live readings of this process only.
    pub fn local() -> LiveReadings {
        LiveReadings {
            topic: Arc::new(Topic::local(BACKLOG)),
            watched_here: Arc::default(),
            watched_anywhere: Arc::default(),
            interest: None,
            new_watch: Notify::new(),
        }
    }

    /// Live readings shared by every instance when the configuration names a Redis, else [`LiveReadings::local`].
    pub async fn open(
        config: &ClusterConfig,
        tasks: &Tasks,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<LiveReadings>> {
        let Some(url) = &config.redis_url else {
            return Ok(Arc::new(LiveReadings::local()));
        };
        let topic = Topic::open(config, "live-readings", BACKLOG, tasks, shutdown.clone()).await?;
        let client = Builder::from_config(RedisConfig::from_url(url.expose_secret())?).build()?;
        client.init().await?;
        let live = Arc::new(LiveReadings {
            topic,
            watched_here: Arc::default(),
            watched_anywhere: Arc::default(),
            interest: Some((client, format!("{}:watched-series", config.channel_prefix))),
            new_watch: Notify::new(),
        });
        let refresher = live.clone();
        tasks.supervise("live-reading interests", move || {
            let (live, shutdown) = (refresher.clone(), shutdown.clone());
            async move {
                loop {
                    live.refresh_interest().await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(REFRESH) => {}
                        // Tell the other instances now rather than at the next refresh.
                        _ = live.new_watch.notified() => {}
                    }
                }
            }
        });
        Ok(live)
    }

    /// Batches for a chart of `series`, and its interest (keep it as long as the chart is open).
    pub fn subscribe(self: &Arc<Self>, series: &[SeriesId]) -> (broadcast::Receiver<LiveBatch>, Watch) {
        let receiver = self.topic.subscribe();
        {
            let mut watched = self.watched_here.lock_unpoisoned();
            for id in series {
                *watched.entry(*id).or_default() += 1;
            }
        }
        self.new_watch.notify_one();
        let watch = Watch {
            series: series.to_vec(),
            watched_here: self.watched_here.clone(),
        };
        (receiver, watch)
    }

    /// Renews this instance's interest in Redis and reads back every instance's.
    async fn refresh_interest(&self) {
        let Some((client, key)) = &self.interest else {
            return;
        };
        let now = now_ms();
        let mine: Vec<(f64, String)> = self
            .watched_here
            .lock_unpoisoned()
            .keys()
            .map(|id| ((now + INTEREST_TTL_MS) as f64, id.to_string()))
            .collect();
        let result = async {
            if !mine.is_empty() {
                client
                    .zadd::<(), _, _>(key.as_str(), None, None, false, false, mine)
                    .await?;
            }
            client
                .zremrangebyscore::<(), _, _, _>(key.as_str(), f64::NEG_INFINITY, now as f64)
                .await?;
            client
                .zrangebyscore::<Vec<String>, _, _, _>(key.as_str(), now as f64, f64::INFINITY, false, None)
                .await
        }
        .await;
        match result {
            Ok(members) => {
                *self.watched_anywhere.write_unpoisoned() = members.iter().filter_map(|m| m.parse().ok()).collect();
            }
            Err(error) => tracing::warn!(%error, "The series other instances' charts watch could not be read."),
        }
    }
}

#[async_trait::async_trait]
impl ReadingsObserver for LiveReadings {
    async fn observe(&self, readings: &[Reading]) {
        let batch: Vec<(SeriesId, i64, f64)> = {
            let here = self.watched_here.lock_unpoisoned();
            let anywhere = self.watched_anywhere.read_unpoisoned();
            if here.is_empty() && anywhere.is_empty() {
                return;
            }
            readings
                .iter()
                .filter(|r| here.contains_key(&r.series) || anywhere.contains(&r.series))
                .map(|r| (r.series, r.ts, r.value.as_f64()))
                .collect()
        };
        if !batch.is_empty() {
            self.topic.publish(LiveBatch(Arc::new(batch))).await;
        }
    }
}

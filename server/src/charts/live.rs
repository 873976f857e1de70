//! Live readings for open charts: the ingest pipeline tells [`LiveReadings`] about every durable batch, and each
//! chart's event stream picks out its own series. Nothing is copied while no chart is open.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::ingest::pipeline::ReadingsObserver;
use crate::timeseries::Reading;

/// Batches kept for a slow chart before it is told it lagged (and refetches).
const BACKLOG: usize = 256;

pub struct LiveReadings {
    batches: broadcast::Sender<Arc<[Reading]>>,
}

impl Default for LiveReadings {
    fn default() -> Self {
        LiveReadings {
            batches: broadcast::channel(BACKLOG).0,
        }
    }
}

impl LiveReadings {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Reading]>> {
        self.batches.subscribe()
    }
}

#[async_trait::async_trait]
impl ReadingsObserver for LiveReadings {
    async fn observe(&self, readings: &[Reading]) {
        if self.batches.receiver_count() > 0 {
            // No receiver between the check and the send only means nobody was listening.
            let _ = self.batches.send(readings.into());
        }
    }
}

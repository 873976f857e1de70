//! Alarm notifications: a live feed for open browsers (server-sent events read it) and webhooks, delivered from a
//! durable outbox with HMAC signatures, retries with backoff and a delivery log.
//!
//! A notification is written to the outbox (one row per webhook) before it is announced, so a crash loses none;
//! each row is claimed under a lease before an attempt, so two instances never send the same one at once. Its id
//! travels in `X-Gantry-Delivery`: a receiver that sees an id twice (a retry after a lost answer) drops the repeat.

use crate::locks::MutexExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::alarms::{AlarmEvent, AlarmEventKind, AlarmView};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{broadcast, Notify};

use crate::fanout::Topic;
use tokio_util::sync::CancellationToken;

use super::store::{AlarmStore, Attempt, DueDelivery, NewDelivery, WebhookRow};
use crate::auth::secrets::{hex, random_hex};
use crate::config::AlarmsConfig;
use crate::error::ApiError;
use crate::metadata::now_ms;

/// The signature header: `sha256=` and the hex HMAC-SHA256 of the body under the webhook's secret.
pub const SIGNATURE_HEADER: &str = "X-Gantry-Signature";
pub const DELIVERY_HEADER: &str = "X-Gantry-Delivery";
pub const EVENT_HEADER: &str = "X-Gantry-Event";

const WEBHOOK_CACHE: Duration = Duration::from_secs(5);
const LEASE_MS: i64 = 60_000;
const MAX_RETRY_WAIT_MS: u64 = 10 * 60 * 1000;

pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

pub struct Notifier {
    store: Arc<dyn AlarmStore>,
    live: Arc<Topic<AlarmEvent>>,
    webhooks: Mutex<Option<(Instant, Arc<Vec<WebhookRow>>)>>,
    wake: Notify,
    options: AlarmsConfig,
}

impl Notifier {
    /// A notifier whose live events go to `live` (in-process, or to every instance through Redis).
    pub fn new(store: Arc<dyn AlarmStore>, options: AlarmsConfig, live: Arc<Topic<AlarmEvent>>) -> Notifier {
        Notifier {
            store,
            live,
            webhooks: Mutex::new(None),
            wake: Notify::new(),
            options,
        }
    }

    /// Events for open browsers; a receiver that falls behind misses events and is told so by the channel.
    pub fn subscribe(&self) -> broadcast::Receiver<AlarmEvent> {
        self.live.subscribe()
    }

    /// Forgets the cached webhook list (after one was added or removed).
    pub fn webhooks_changed(&self) {
        *self.webhooks.lock_unpoisoned() = None;
    }

    async fn webhooks(&self) -> Result<Arc<Vec<WebhookRow>>, ApiError> {
        if let Some((at, hooks)) = self.webhooks.lock_unpoisoned().as_ref() {
            if at.elapsed() < WEBHOOK_CACHE {
                return Ok(hooks.clone());
            }
        }
        let hooks = Arc::new(self.store.webhooks().await?);
        *self.webhooks.lock_unpoisoned() = Some((Instant::now(), hooks.clone()));
        Ok(hooks)
    }

    /// Sends one notification: to the webhook outbox (durably) and then to open browsers.
    pub async fn publish(&self, kind: AlarmEventKind, alarm: AlarmView) -> Result<AlarmEvent, ApiError> {
        let event = AlarmEvent {
            id: random_hex(16),
            kind,
            at: now_ms(),
            alarm,
        };
        let hooks = self.webhooks().await?;
        let payload = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
        let deliveries: Vec<NewDelivery> = hooks
            .iter()
            .filter(|hook| hook.min_severity.is_none_or(|min| event.alarm.severity >= min))
            .map(|hook| NewDelivery {
                id: event.id.clone(),
                webhook_id: hook.id,
                alarm_id: event.alarm.id,
                kind,
                payload: payload.clone(),
            })
            .collect();
        if !deliveries.is_empty() {
            self.store.enqueue(&deliveries, event.at).await?;
            self.wake.notify_one();
        }
        metrics::counter!("gantry_alarm_notifications_total", "kind" => kind_label(kind)).increment(1);
        self.live.publish(event.clone()).await;
        Ok(event)
    }

    /// Delivers due webhook notifications until shutdown.
    pub fn spawn_delivery(self: &Arc<Self>, tasks: &crate::tasks::Tasks, shutdown: CancellationToken) {
        let notifier = self.clone();
        tasks.supervise("webhook deliveries", move || notifier.clone().deliver(shutdown.clone()));
    }

    async fn deliver(self: Arc<Self>, shutdown: CancellationToken) {
        let notifier = self;
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(notifier.options.webhook_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "Webhook deliveries cannot start: the HTTP client failed to build.");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = notifier.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let now = now_ms();
            let due = match notifier.store.claim_due(now, now + LEASE_MS, 32).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(error = %error.into_app_error(), "Could not read due webhook deliveries.");
                    continue;
                }
            };
            let attempts = due.into_iter().map(|delivery| notifier.attempt(&client, delivery));
            futures::future::join_all(attempts).await;
        }
    }

    async fn attempt(&self, client: &reqwest::Client, delivery: DueDelivery) {
        let result = client
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &delivery.id)
            .header(EVENT_HEADER, &delivery.kind)
            .header(
                SIGNATURE_HEADER,
                signature(&delivery.secret, delivery.payload.as_bytes()),
            )
            .body(delivery.payload.clone())
            .send()
            .await;
        let error = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the receiver answered {}", response.status())),
            // Without the URL: it may carry credentials.
            Err(error) => Some(format!("the request failed: {}", error.without_url())),
        };
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(1);
        let outcome = match error {
            None => {
                metrics::counter!("gantry_webhook_deliveries_total", "outcome" => "delivered").increment(1);
                Attempt::Delivered { at: now_ms() }
            }
            Some(error) if attempts >= self.options.webhook_max_attempts => {
                metrics::counter!("gantry_webhook_deliveries_total", "outcome" => "failed").increment(1);
                tracing::warn!(
                    webhook = delivery.webhook_id,
                    attempts,
                    %error,
                    "A webhook delivery failed for good; it stays in the delivery log."
                );
                Attempt::GaveUp { error }
            }
            Some(error) => {
                metrics::counter!("gantry_webhook_deliveries_total", "outcome" => "retry").increment(1);
                let wait = self
                    .options
                    .webhook_retry_ms
                    .saturating_mul(1u64 << (attempts - 1).min(20))
                    .min(MAX_RETRY_WAIT_MS);
                Attempt::Retry {
                    at: now_ms() + wait as i64,
                    error,
                }
            }
        };
        if let Err(error) = self.store.finish(delivery.webhook_id, &delivery.id, outcome).await {
            // The lease runs out and the delivery is attempted again: a repeat the receiver can drop by its id.
            tracing::warn!(error = %error.into_app_error(), "Could not record a webhook attempt.");
        }
    }
}

fn kind_label(kind: AlarmEventKind) -> &'static str {
    match kind {
        AlarmEventKind::Raised => "raised",
        AlarmEventKind::Returned => "returned",
        AlarmEventKind::Acknowledged => "acknowledged",
        AlarmEventKind::Reminder => "reminder",
        AlarmEventKind::Shelved => "shelved",
        AlarmEventKind::Unshelved => "unshelved",
        AlarmEventKind::OutOfService => "out_of_service",
        AlarmEventKind::InService => "in_service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! The MQTT source: when `mqtt.url` is set, Gantry subscribes with QoS 1 and a persistent session to
//! `gantry/+/telemetry` and feeds each message through the pipeline. A message is acknowledged to the broker only
//! once its readings are durable, so a crash loses nothing the broker handed over (the broker redelivers what was
//! not acknowledged when the session resumes). The broker authenticates devices (see the README); the topic names
//! the device, and the payload is the JSON ingest body for one device.

use std::{sync::Arc, time::Duration};

use app::error::ErrorKind;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{parse, pipeline::Pipeline};
use crate::{config::MqttConfig, devices::TokenGrant};

/// Messages processed at once; the rest wait at the broker.
const CONCURRENT_MESSAGES: usize = 256;

/// Connects and runs until `shutdown`; reconnects by itself when the broker goes away.
pub fn spawn(
    config: &MqttConfig,
    pipeline: Arc<Pipeline>,
    tasks: &crate::tasks::Tasks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(url) = &config.url else { return Ok(()) };
    let url = url::Url::parse(url.expose_secret()).map_err(|e| anyhow::anyhow!("mqtt.url is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("mqtt.url has no host"))?
        .to_string();
    let mut options = MqttOptions::new(config.client_id.clone(), host, url.port().unwrap_or(1883));
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(16 * 1024 * 1024, 1024 * 1024);
    if !url.username().is_empty() {
        options.set_credentials(url.username(), url.password().unwrap_or_default());
    }
    let device_segment = config
        .topic
        .split('/')
        .position(|part| part == "+")
        .ok_or_else(|| anyhow::anyhow!("mqtt.topic must have a `+` where the device name goes"))?;
    let topic = config.topic.clone();
    tasks.supervise("mqtt", move || {
        run(
            options.clone(),
            topic.clone(),
            device_segment,
            pipeline.clone(),
            shutdown.clone(),
        )
    });
    Ok(())
}

/// One connection's life: subscribes on every connect, stores each message's readings, until shutdown.
async fn run(
    options: MqttOptions,
    topic: String,
    device_segment: usize,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) {
    let (client, mut events) = AsyncClient::new(options, CONCURRENT_MESSAGES);
    let slots = Arc::new(Semaphore::new(CONCURRENT_MESSAGES));
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = client.disconnect().await;
                return;
            }
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("Connected to the MQTT broker.");
                if let Err(err) = client.subscribe(topic.clone(), QoS::AtLeastOnce).await {
                    tracing::warn!(error = %err, "Subscribing to device telemetry failed.");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (client, pipeline) = (client.clone(), pipeline.clone());
                tokio::spawn(async move {
                    handle(&pipeline, &client, publish, device_segment).await;
                    drop(slot);
                });
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "The MQTT connection failed; reconnecting.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Stores one message's readings (retrying while the store is unavailable), then acknowledges it.
async fn handle(pipeline: &Pipeline, client: &AsyncClient, publish: Publish, device_segment: usize) {
    let device = publish
        .topic
        .split('/')
        .nth(device_segment)
        .unwrap_or_default()
        .to_string();
    let mut delay = Duration::from_millis(200);
    loop {
        match store(pipeline, &device, &publish.payload).await {
            Ok(()) => break,
            Err(Retry::Later(message)) => {
                tracing::warn!(%message, "An MQTT message could not be stored yet; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(Retry::Never(message)) => {
                // Redelivery would not help: acknowledge so the broker stops sending it.
                metrics::counter!("gantry_ingest_mqtt_messages_refused_total").increment(1);
                tracing::warn!(%message, "An MQTT message was refused.");
                break;
            }
        }
    }
    if let Err(err) = client.ack(&publish).await {
        tracing::warn!(error = %err, "Acknowledging an MQTT message failed; the broker will redeliver it.");
    }
}

enum Retry {
    Later(String),
    Never(String),
}

async fn store(pipeline: &Pipeline, device: &str, payload: &[u8]) -> Result<(), Retry> {
    let never = |e: app::error::AppError| Retry::Never(e.message);
    let row = match pipeline.devices().by_name(device).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(Retry::Never(format!("no device named {device:?}"))),
        Err(err) => return Err(Retry::Later(err.message)),
    };
    let mut items = parse::json(payload).map_err(never)?;
    for item in &mut items {
        match &item.device {
            Some(named) if named != device => {
                return Err(Retry::Never(format!(
                    "a message on {device:?}'s topic names device {named:?}"
                )))
            }
            _ => item.device = None,
        }
    }
    let grant = TokenGrant {
        token_id: 0,
        devices: [(row.name.clone(), row)].into(),
    };
    match pipeline.ingest(&grant, "mqtt", items).await {
        Ok(outcome) => outcome.into_result().map(|_| ()).map_err(never),
        Err(err)
            if matches!(
                err.code,
                ErrorKind::Unavailable | ErrorKind::TooManyRequests | ErrorKind::Internal
            ) =>
        {
            Err(Retry::Later(err.message))
        }
        Err(err) => Err(never(err)),
    }
}

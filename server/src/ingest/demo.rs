//! `--demo`'s simulated devices: one device per piece of demo equipment, writing through a gateway token over
//! the real HTTP endpoint (`POST /api/v1/ingest`), as a plant's edge gateway would. Signals look like sensors:
//! a daily cycle, a slower wander and noise at two decimals, all well within limits; a few troubled attributes (one in
//! twelve) now and then go past their high limit, so the plant raises a handful of meaningful alarms an hour, as a
//! well-run plant does, and one attribute stands above its high limit all day (a standing alarm, in ISA-18.2's
//! words, the kind every plant has one of). On start the last 24 hours are filled in at one reading a minute, so
//! trends have history at once, and the alarms of that day that have returned are acknowledged by the demo
//! operator with a comment, as a shift would have left them; then readings arrive every second.

use std::{sync::Arc, time::Duration};

use app::services::{AlarmsService, DevicesService, ModelService};
use app::{
    alarms::{AckRequest, AlarmFilter},
    assets::{EffectiveAttribute, ValueType},
    auth::Actor,
    devices::{NewDevice, NewGatewayToken},
    error::AppError,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{alarms::Alarms, assets::Model, devices::Devices, metadata::now_ms, timeseries::DAY_MS};

/// One simulated device: its name and the attributes it sends.
struct SimulatedDevice {
    name: String,
    seed: u64,
    attributes: Vec<EffectiveAttribute>,
    /// The attribute (an index into `attributes`) held above its high limit: the plant's standing alarm.
    standing: Option<usize>,
}

/// Makes (or finds) a device for every templated asset of the demo plant and a fresh gateway token for them all.
async fn provision(
    actor: &Actor,
    model: &Model,
    devices: &Devices,
) -> Result<(Vec<SimulatedDevice>, String), AppError> {
    let mut pending: Vec<Option<i64>> = vec![None];
    let mut equipment = Vec::new();
    while let Some(parent) = pending.pop() {
        for child in model.children(actor, parent).await? {
            if child.child_count > 0 {
                pending.push(Some(child.id));
            }
            if child.template.is_some() {
                equipment.push(child);
            }
        }
    }
    let mut simulated = Vec::new();
    for (seed, asset) in equipment.into_iter().enumerate() {
        let name: String = asset
            .path
            .trim_start_matches('/')
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if devices.by_name(&name).await?.is_none() {
            let new = NewDevice {
                name: name.clone(),
                asset_id: Some(asset.id),
                asset_path: None,
                description: "Simulated by `gantry serve --demo`.".into(),
                field_map: Default::default(),
            };
            devices.create(actor, new).await?;
        }
        let view = model.get_asset(actor, asset.id).await?;
        let attributes = view.attributes.into_iter().filter(|a| a.attribute.is_series).collect();
        simulated.push(SimulatedDevice {
            name,
            seed: seed as u64 + 1,
            attributes,
            standing: None,
        });
    }
    // The first piece of equipment with a high limit carries the standing alarm.
    if let Some((device, index)) = simulated.iter_mut().find_map(|device| {
        let index = device.attributes.iter().position(|a| a.attribute.limits.hi.is_some())?;
        Some((device, index))
    }) {
        device.standing = Some(index);
    }
    // One simulator token at a time: the previous run's is revoked.
    if let Some(first) = simulated.first() {
        if let Some(row) = devices.by_name(&first.name).await? {
            for old in devices.tokens(actor, row.id).await? {
                if old.name == "demo simulator" && old.revoked_at.is_none() {
                    devices.revoke_token(actor, old.id).await?;
                }
            }
        }
    }
    let token = devices
        .create_gateway_token(
            actor,
            NewGatewayToken {
                name: "demo simulator".into(),
                devices: simulated.iter().map(|d| d.name.clone()).collect(),
            },
        )
        .await?;
    Ok((simulated, token.secret))
}

/// A repeatable pseudo-random number in [0, 1) for (seed, step).
fn unit(seed: u64, step: u64) -> f64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x % 1_000_000) as f64 / 1_000_000.0
}

/// Whether the attribute of this seed is one of the few that misbehave (one in twelve).
fn troubled(seed: u64) -> bool {
    unit(seed, 99) < 1.0 / 12.0
}

/// The value of one attribute at `ts`.
fn value(device: &SimulatedDevice, index: usize, attribute: &EffectiveAttribute, ts: i64) -> Value {
    let a = &attribute.attribute;
    let seed = device.seed * 31 + index as u64;
    let seconds = ts / 1000;
    if a.value_type == ValueType::Boolean {
        // Runs, with a stop of a few minutes now and then.
        return json!(unit(seed, (seconds / 600) as u64) > 0.08);
    }
    let low = a.limits.lo.or(a.display_min).unwrap_or(0.0);
    let high = a.limits.hi.or(a.display_max).unwrap_or(100.0);
    let span = (high - low).max(1.0);
    if let (Some(hi), true) = (a.limits.hi, device.standing == Some(index)) {
        // Stuck a little above Hi (a third of the way to HiHi, where there is one), wandering by less than that.
        let margin = a.limits.hihi.map_or(0.05 * span, |hihi| (hihi - hi) / 3.0);
        let noise = 0.2 * margin * (unit(seed, seconds as u64 + 7) - 0.5);
        return json!(((hi + margin + noise) * 100.0).round() / 100.0);
    }
    let middle = low + span * (0.45 + 0.1 * unit(seed, 0));
    let day = (ts % DAY_MS) as f64 / DAY_MS as f64;
    let daily = 0.15 * span * (day * std::f64::consts::TAU + unit(seed, 1) * 6.0).sin();
    let wander = 0.05 * span * ((seconds as f64) / (1800.0 + 600.0 * unit(seed, 2))).sin();
    let noise = 0.01 * span * (unit(seed, seconds as u64 + 7) - 0.5);
    // A troubled attribute goes past its high limit in about one ten-minute window in eighteen (eight a day).
    let excursion = if troubled(seed) && unit(seed, (seconds / 600) as u64 + 1000) > 17.0 / 18.0 {
        0.45 * span
    } else {
        0.0
    };
    json!(((middle + daily + wander + noise + excursion) * 100.0).round() / 100.0)
}

fn batch(devices: &[SimulatedDevice], timestamps: &[i64]) -> Value {
    let devices: Vec<Value> = devices
        .iter()
        .map(|device| {
            let readings: Vec<Value> = timestamps
                .iter()
                .flat_map(|&ts| {
                    device.attributes.iter().enumerate().map(
                        move |(i, a)| json!({ "field": a.attribute.name, "value": value(device, i, a, ts), "ts": ts }),
                    )
                })
                .collect();
            json!({ "device": device.name, "readings": readings })
        })
        .collect();
    json!({ "devices": devices })
}

/// Provisions the simulated devices and runs them until shutdown, posting to `base_url`. Returns how many there
/// are, and what resolves once the last day is filled in and its returned alarms acknowledged (the plant as a
/// new operator should first see it).
pub async fn start(
    model: Arc<Model>,
    devices: Arc<Devices>,
    alarms: Arc<Alarms>,
    admin: Actor,
    base_url: String,
    shutdown: CancellationToken,
) -> Result<(usize, tokio::sync::oneshot::Receiver<()>), AppError> {
    let (simulated, token) = provision(&admin, &model, &devices).await?;
    let count = simulated.len();
    let client = reqwest::Client::new();
    let url = format!("{base_url}/api/v1/ingest");
    let (history_ready, history) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let post = |body: Value| client.post(&url).bearer_auth(&token).json(&body).send();
        // The last day at one reading a minute, an hour per request.
        let now = now_ms() / 1000 * 1000;
        let minutes: Vec<i64> = (1..=1440).rev().map(|m| now - m * 60_000).collect();
        for hour in minutes.chunks(60) {
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(err) = post(batch(&simulated, hour)).await.and_then(|r| r.error_for_status()) {
                tracing::warn!(error = %err, "The demo simulator could not fill in history.");
                break;
            }
        }
        match acknowledge_history(&alarms, &admin).await {
            Ok(acknowledged) => tracing::info!(acknowledged, "The demo day's returned alarms are acknowledged."),
            Err(err) => tracing::warn!(error = %err.message, "The demo could not acknowledge its history."),
        }
        let _ = history_ready.send(());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ts = now_ms() / 1000 * 1000;
            match post(batch(&simulated, &[ts])).await.and_then(|r| r.error_for_status()) {
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "A simulated reading was not accepted."),
            }
        }
    });
    Ok((count, history))
}

/// The back-filled day as a well-run shift leaves it: every alarm that has returned to normal acknowledged by the
/// demo operator, with a comment; the ones still active wait for whoever signs in.
async fn acknowledge_history(alarms: &Alarms, operator: &Actor) -> Result<usize, AppError> {
    let filter = AlarmFilter {
        state: Some("unacknowledged".into()),
        limit: Some(500),
        ..AlarmFilter::default()
    };
    let returned: Vec<i64> = alarms
        .list(operator, filter)
        .await?
        .into_iter()
        .filter(|alarm| !alarm.active)
        .map(|alarm| alarm.id)
        .collect();
    let count = returned.len();
    for ids in returned.chunks(100) {
        let request = AckRequest {
            ids: ids.to_vec(),
            comment: Some("Seen on the round: back within limits, nothing to do.".into()),
        };
        alarms.acknowledge(operator, request).await?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_stay_within_limits_and_only_the_troubled_few_cross_the_high_one() {
        let attribute: EffectiveAttribute = serde_json::from_value(json!({
            "name": "flow", "value_type": "float", "limits": { "lo": 10.0, "hi": 110.0 },
            "defined_in": "Pump", "inherited": true
        }))
        .unwrap();
        let day = |seed: u64| -> Vec<f64> {
            let device = SimulatedDevice {
                name: "d".into(),
                seed,
                attributes: vec![attribute.clone()],
                standing: None,
            };
            (0..86_400)
                .step_by(60)
                .map(|s| value(&device, 0, &attribute, s * 1000).as_f64().unwrap())
                .collect()
        };
        let (mut troubled_seen, mut windows_over) = (0, 0);
        for seed in 0..240 {
            let values = day(seed);
            // Two decimals, as a sensor sends, and never wild.
            assert!(values.iter().all(|v| ((v * 100.0).round() - v * 100.0).abs() < 1e-6));
            assert!(values.iter().all(|v| (-50.0..=200.0).contains(v)));
            let over = values.iter().filter(|v| **v > 110.0).count();
            if troubled(seed * 31) {
                troubled_seen += 1;
                windows_over += over / 10;
            } else {
                assert_eq!(over, 0, "a calm attribute (seed {seed}) crossed its high limit");
                assert!(
                    values.iter().all(|v| *v >= 10.0),
                    "a calm attribute (seed {seed}) went below Lo"
                );
            }
        }
        // About one attribute in twelve is troubled, and each crosses a handful of times a day.
        assert!((10..=35).contains(&troubled_seen), "{troubled_seen} troubled of 240");
        let per_day = windows_over as f64 / troubled_seen as f64;
        assert!(
            (2.0..=20.0).contains(&per_day),
            "{per_day} excursions a day per troubled attribute"
        );
    }

    #[test]
    fn the_standing_attribute_stays_between_hi_and_hihi_all_day() {
        for limits in [json!({ "hi": 80.0, "hihi": 95.0 }), json!({ "lo": 10.0, "hi": 110.0 })] {
            let attribute: EffectiveAttribute = serde_json::from_value(json!({
                "name": "temperature", "value_type": "float", "limits": limits.clone(),
                "defined_in": "Pump", "inherited": true
            }))
            .unwrap();
            let device = SimulatedDevice {
                name: "d".into(),
                seed: 3,
                attributes: vec![attribute.clone()],
                standing: Some(0),
            };
            let hi = limits["hi"].as_f64().unwrap();
            let ceiling = limits["hihi"].as_f64().unwrap_or(f64::MAX);
            for s in (0..86_400).step_by(60) {
                let v = value(&device, 0, &attribute, s * 1000).as_f64().unwrap();
                assert!(
                    v > hi && v < ceiling,
                    "{v} at {s} s is not between Hi {hi} and HiHi {ceiling}"
                );
            }
        }
    }
}

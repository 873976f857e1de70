//! The one pipeline every source feeds: items (device, field, value, time) → authorize and check → map to series →
//! bounded queue → batched durable write → observers (alarm evaluation) → acknowledgement.
//!
//! The queue is bounded in readings by a semaphore: a request that does not fit is refused at once with 503 and
//! `Retry-After`, never parked. One writer task drains the queue, writing whatever has gathered as one batch (group
//! commit), so a thousand small requests cost a few store commits, not a thousand.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use app::services::ModelService;
use app::{
    assets::{AssetView, ValueType},
    auth::Actor,
    error::{AppError, ErrorKind},
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    assets::Model,
    devices::{DeviceRow, Devices, TokenGrant},
    locks::MutexExt,
    metadata::now_ms,
    tasks::Tasks,
    timeseries::{registry::SeriesRegistry, Reading, SeriesId, SharedStore, StoreError, Value, DAY_MS},
};

/// A value as a source parsed it.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemValue {
    Float(f64),
    Integer(i64),
    Boolean(bool),
    Text(String),
}

/// One reading as it arrived, before it is checked and mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The device named in the payload; none means the token's only device (or the MQTT topic's).
    pub device: Option<String>,
    pub field: String,
    pub value: ItemValue,
    /// Milliseconds UTC; none means "now".
    pub ts: Option<i64>,
}

/// Why one item was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// The item's position in the request (0-based).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub field: String,
    pub code: ErrorKind,
    pub message: String,
}

/// Most readings in one request (413 above), whatever the source: the work a request may cause is bounded
/// before any of it is done. Larger imports are sent as several requests.
pub const MAX_ITEMS_PER_REQUEST: usize = 100_000;
/// Longest device or field name, in bytes; longer ones are refused (and echoed shortened).
pub const MAX_NAME_BYTES: usize = 256;
/// Refusals listed in an answer; the rest are only counted.
pub const MAX_REFUSALS_LISTED: usize = 100;
/// Device and field pairs whose mapping is cached at once.
const MAX_CACHED_MAPPINGS: usize = 100_000;

/// The answer when a request holds more than [`MAX_ITEMS_PER_REQUEST`] readings.
pub fn too_many_items() -> AppError {
    AppError::new(
        ErrorKind::PayloadTooLarge,
        format!("more than {MAX_ITEMS_PER_REQUEST} readings in one request; send them in several"),
    )
}

/// The outcome of a request whose items were all looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    /// The first [`MAX_REFUSALS_LISTED`] refusals.
    pub refused: Vec<Refusal>,
    /// How many items were refused in all.
    pub refused_count: usize,
}

impl Outcome {
    /// Ok when everything was stored; otherwise the error the client sees, with the refusals item by item (the
    /// accepted readings are stored either way, as InfluxDB does with a partial write).
    pub fn into_result(self) -> Result<usize, AppError> {
        let Some(first) = self.refused.first() else {
            return Ok(self.accepted);
        };
        // The most telling status: unauthorized before unprocessable before bad request.
        let code = [ErrorKind::Unauthorized, ErrorKind::Unprocessable, ErrorKind::BadRequest]
            .into_iter()
            .find(|k| self.refused.iter().any(|r| r.code == *k))
            .unwrap_or(first.code);
        let message = format!(
            "{} of {} readings were refused (the other {} are stored): {}",
            self.refused_count,
            self.refused_count + self.accepted,
            self.accepted,
            first.message
        );
        Err(AppError::new(code, message).with_details(serde_json::json!({
            "accepted": self.accepted,
            "refused_count": self.refused_count,
            "refused": self.refused,
        })))
    }
}

/// Something told about readings once they are durable, before the sender is answered (alarm evaluation).
#[async_trait::async_trait]
pub trait ReadingsObserver: Send + Sync {
    async fn observe(&self, readings: &[Reading]);
}

/// Limits of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Readings waiting for the store, across all requests, before new requests get 503.
    pub queue_readings: usize,
    /// Most readings written as one batch.
    pub max_batch: usize,
    /// Readings older than this are refused (the raw retention); none accepts any age.
    pub max_age_ms: Option<i64>,
}

struct Job {
    readings: Vec<Reading>,
    /// When the request's readings entered the queue.
    queued: Instant,
    done: oneshot::Sender<Result<(), StoreError>>,
    _permit: OwnedSemaphorePermit,
}

/// Where an attribute's series is, or why a field cannot be stored, cached per device and field.
#[derive(Debug, Clone)]
enum Mapping {
    /// The series, and the value type its attribute declares.
    Series(SeriesId, ValueType),
    Refused(ErrorKind, String),
}

/// A reading's value as its attribute declares it, so that a series has one type in every store (a JSON `20` for a
/// float attribute is 20.0: TDengine keeps each series in a table of one type). `None` when the value cannot be
/// of that type (a fraction for an integer, 7 for a boolean).
fn as_declared(value: Value, declared: ValueType) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match (declared, value) {
        (ValueType::Float, value) => Some(Value::Float(value.as_f64())),
        (ValueType::Integer, Value::Integer(v)) => Some(Value::Integer(v)),
        (ValueType::Integer, Value::Float(v)) if v.fract() == 0.0 && v.abs() < EXACT => Some(Value::Integer(v as i64)),
        (ValueType::Integer, Value::Boolean(v)) => Some(Value::Integer(i64::from(v))),
        (ValueType::Boolean, Value::Boolean(v)) => Some(Value::Boolean(v)),
        (ValueType::Boolean, Value::Integer(v @ (0 | 1))) => Some(Value::Boolean(v == 1)),
        (ValueType::Boolean, Value::Float(v)) if v == 0.0 || v == 1.0 => Some(Value::Boolean(v == 1.0)),
        _ => None,
    }
}

const MAPPING_TTL: Duration = Duration::from_secs(30);

pub struct Pipeline {
    queue: mpsc::UnboundedSender<Job>,
    capacity: Arc<Semaphore>,
    options: PipelineOptions,
    devices: Arc<Devices>,
    model: Arc<Model>,
    registry: Arc<dyn SeriesRegistry>,
    /// Per device and field, with the model generation they were resolved in: a change of the model (here or,
    /// through the change feed, on another instance) drops them all.
    mappings: Mutex<HashMap<(i64, String), (Instant, Mapping)>>,
    mappings_generation: std::sync::atomic::AtomicU64,
}

impl Pipeline {
    pub fn start(
        store: SharedStore,
        devices: Arc<Devices>,
        model: Arc<Model>,
        registry: Arc<dyn SeriesRegistry>,
        observers: Vec<Arc<dyn ReadingsObserver>>,
        options: PipelineOptions,
        tasks: &Tasks,
    ) -> Arc<Pipeline> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        // Observers run in a task of their own, batch after batch in order, so that the next write need not wait
        // for the evaluation of the last one; each sender is answered once its batch is written and observed.
        // Both loops are supervised: after a panic the next run takes over the same queue (the batch in hand is
        // answered 503, never acknowledged), and both drain what is queued before they stop.
        let observed = (!observers.is_empty()).then(|| {
            let (observed, batches) = mpsc::unbounded_channel();
            let batches = Arc::new(tokio::sync::Mutex::new(batches));
            let (observers, stopping) = (Arc::new(observers), tasks.stopping());
            tasks.supervise("alarm evaluation", move || {
                observe_loop(observers.clone(), batches.clone(), stopping.clone())
            });
            observed
        });
        let (max_batch, stopping) = (options.max_batch, tasks.stopping());
        tasks.supervise("ingest writer", move || {
            write_loop(
                store.clone(),
                jobs.clone(),
                observed.clone(),
                max_batch,
                stopping.clone(),
            )
        });
        Arc::new(Pipeline {
            queue,
            capacity: Arc::new(Semaphore::new(options.queue_readings)),
            options,
            devices,
            model,
            registry,
            mappings: Mutex::new(HashMap::new()),
            mappings_generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn devices(&self) -> &Arc<Devices> {
        &self.devices
    }

    /// Items sent with a device or gateway token.
    pub async fn ingest_with_token(
        &self,
        secret: &str,
        source: &'static str,
        items: Vec<Item>,
    ) -> Result<Outcome, AppError> {
        let grant = self.devices.authenticate(secret).await?;
        self.ingest(&grant, source, items).await
    }

    /// Checks, maps and stores items for the devices of `grant`; returns once the accepted ones are durable.
    pub async fn ingest(
        &self,
        grant: &TokenGrant,
        source: &'static str,
        items: Vec<Item>,
    ) -> Result<Outcome, AppError> {
        if items.len() > MAX_ITEMS_PER_REQUEST {
            return Err(too_many_items());
        }
        let now = now_ms();
        let mut refusals = Refusals::default();
        let mut readings = Vec::with_capacity(items.len());
        let mut seen_devices: Vec<i64> = Vec::new();
        // Each device's asset is read once per request, however many unknown fields it sends.
        let mut assets: HashMap<i64, Arc<AssetView>> = HashMap::new();
        for (index, item) in items.into_iter().enumerate() {
            let mut refused = |code: ErrorKind, message: String, item: &Item| refusals.push(index, code, message, item);
            let too_long = [item.device.as_deref(), Some(item.field.as_str())]
                .into_iter()
                .flatten()
                .find(|name| name.len() > MAX_NAME_BYTES);
            if let Some(name) = too_long {
                let message = format!("{:?} is longer than {MAX_NAME_BYTES} bytes", shortened(name));
                refused(ErrorKind::BadRequest, message, &item);
                continue;
            }
            let device = match &item.device {
                Some(name) => grant.devices.get(name),
                None => grant.sole_device(),
            };
            let Some(device) = device else {
                let message = match &item.device {
                    Some(name) => format!("the token may not write for device {name:?} (or it does not exist)"),
                    None => "name the device: this token writes for several devices".to_string(),
                };
                refused(ErrorKind::Unauthorized, message, &item);
                continue;
            };
            let value = match &item.value {
                ItemValue::Float(v) if !v.is_finite() => {
                    refused(
                        ErrorKind::BadRequest,
                        format!("{v} is not a number Gantry stores"),
                        &item,
                    );
                    continue;
                }
                ItemValue::Float(v) => Value::Float(*v),
                ItemValue::Integer(v) => Value::Integer(*v),
                ItemValue::Boolean(v) => Value::Boolean(*v),
                ItemValue::Text(_) => {
                    refused(
                        ErrorKind::BadRequest,
                        "text values are not stored as time series; send a number or a boolean".into(),
                        &item,
                    );
                    continue;
                }
            };
            let ts = item.ts.unwrap_or(now);
            if ts > now + DAY_MS {
                refused(
                    ErrorKind::Unprocessable,
                    format!("timestamp {ts} is more than 24 h in the future"),
                    &item,
                );
                continue;
            }
            // With no raw retention (`raw_days = 0`) the oldest instant Gantry keeps is still the bound.
            let oldest = match self.options.max_age_ms {
                Some(max_age) => now.saturating_sub(max_age).max(app::timeseries::EARLIEST_MS),
                None => app::timeseries::EARLIEST_MS,
            };
            if ts < oldest {
                refused(
                    ErrorKind::Unprocessable,
                    format!("timestamp {ts} is older than the retention"),
                    &item,
                );
                continue;
            }
            match self.mapping(device, &item.field, &mut assets).await? {
                Mapping::Series(series, declared) => {
                    let Some(value) = as_declared(value, declared) else {
                        refused(
                            ErrorKind::Unprocessable,
                            format!(
                                "the value {} does not fit the attribute's type, {}",
                                value.as_f64(),
                                format!("{declared:?}").to_lowercase()
                            ),
                            &item,
                        );
                        continue;
                    };
                    readings.push(Reading { series, ts, value });
                    if seen_devices.last() != Some(&device.id) {
                        seen_devices.push(device.id);
                    }
                }
                Mapping::Refused(code, message) => refused(code, message, &item),
            }
        }
        let accepted = readings.len();
        metrics::counter!("gantry_ingest_readings_refused_total", "source" => source).increment(refusals.count as u64);
        if accepted > 0 {
            self.submit(readings).await?;
            metrics::counter!("gantry_ingest_readings_accepted_total", "source" => source).increment(accepted as u64);
            seen_devices.sort_unstable();
            seen_devices.dedup();
            self.devices
                .mark_seen(seen_devices, Some(grant.token_id).filter(|id| *id > 0), now);
        }
        Ok(Outcome {
            accepted,
            refused: refusals.listed,
            refused_count: refusals.count,
        })
    }

    /// Queues readings and waits until they are durable; 503 at once when the queue is full.
    pub async fn submit(&self, readings: Vec<Reading>) -> Result<(), AppError> {
        let n = readings.len();
        if n > self.options.queue_readings {
            return Err(AppError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "{n} readings in one request; at most {} are accepted",
                    self.options.queue_readings
                ),
            ));
        }
        let permit = self.capacity.clone().try_acquire_many_owned(n as u32).map_err(|_| {
            metrics::counter!("gantry_ingest_requests_shed_total").increment(1);
            AppError::unavailable(
                "Gantry is receiving more readings than it can store right now; retry shortly.",
                1,
            )
        })?;
        let (done, finished) = oneshot::channel();
        self.queue
            .send(Job {
                readings,
                queued: Instant::now(),
                done,
                _permit: permit,
            })
            .map_err(|_| AppError::unavailable("Gantry is shutting down; retry on another instance.", 1))?;
        match finished.await {
            Ok(outcome) => outcome.map_err(AppError::from),
            Err(_) => Err(AppError::unavailable("the write did not complete; retry", 1)),
        }
    }

    fn cached_mappings(&self) -> MutexGuard<'_, HashMap<(i64, String), (Instant, Mapping)>> {
        let mut cache = self.mappings.lock_unpoisoned();
        let generation = self.model.generation();
        if self
            .mappings_generation
            .swap(generation, std::sync::atomic::Ordering::AcqRel)
            != generation
        {
            cache.clear();
        }
        cache
    }

    async fn mapping(
        &self,
        device: &DeviceRow,
        field: &str,
        assets: &mut HashMap<i64, Arc<AssetView>>,
    ) -> Result<Mapping, AppError> {
        let key = (device.id, field.to_string());
        if let Some((at, mapping)) = self.cached_mappings().get(&key) {
            if at.elapsed() < MAPPING_TTL {
                return Ok(mapping.clone());
            }
        }
        let attribute = device.field_map.get(field).map(String::as_str).unwrap_or(field);
        let asset = match assets.get(&device.asset_id) {
            Some(asset) => asset.clone(),
            None => {
                let asset = Arc::new(self.model.get_asset(&Actor::command_line(), device.asset_id).await?);
                assets.insert(device.asset_id, asset.clone());
                asset
            }
        };
        let mapping = match asset.attributes.iter().find(|a| a.attribute.name == attribute) {
            Some(a) if a.attribute.is_series => Mapping::Series(
                self.registry.ensure(device.asset_id, attribute).await?,
                a.attribute.value_type,
            ),
            Some(_) => Mapping::Refused(
                ErrorKind::Unprocessable,
                format!("field {field:?} goes to {attribute:?}, a static value, not a time series"),
            ),
            None => Mapping::Refused(
                ErrorKind::Unprocessable,
                format!("unknown field {field:?}: the device's asset has no attribute {attribute:?}"),
            ),
        };
        let mut cache = self.cached_mappings();
        if cache.len() >= MAX_CACHED_MAPPINGS {
            cache.retain(|_, (at, _)| at.elapsed() < MAPPING_TTL);
            if cache.len() >= MAX_CACHED_MAPPINGS {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), mapping.clone()));
        Ok(mapping)
    }
}

/// The refusals of one request: the first [`MAX_REFUSALS_LISTED`] in full, the rest counted.
#[derive(Default)]
struct Refusals {
    listed: Vec<Refusal>,
    count: usize,
}

impl Refusals {
    fn push(&mut self, index: usize, code: ErrorKind, message: String, item: &Item) {
        self.count += 1;
        if self.listed.len() < MAX_REFUSALS_LISTED {
            self.listed.push(Refusal {
                index,
                device: item.device.as_deref().map(shortened),
                field: shortened(&item.field),
                code,
                message,
            });
        }
    }
}

/// A name as an answer may echo it: at most 64 characters.
fn shortened(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_string(),
    }
}

async fn write_loop(
    store: SharedStore,
    jobs: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    observed: Option<mpsc::UnboundedSender<Observed>>,
    max_batch: usize,
    stopping: CancellationToken,
) {
    let mut jobs = jobs.lock().await;
    while let Some(first) = next_or_drained(&mut jobs, &stopping).await {
        let mut batch = vec![first];
        let mut count = batch[0].readings.len();
        while count < max_batch {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.readings.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut readings = Vec::with_capacity(count);
        let mut counts = Vec::with_capacity(batch.len());
        for job in &mut batch {
            counts.push(job.readings.len());
            readings.append(&mut job.readings);
        }
        let started = Instant::now();
        // Observers need the readings after the write, and a group may have to be written again request by
        // request; otherwise the batch moves into the store uncopied.
        let kept = (observed.is_some() || batch.len() > 1).then(|| readings.clone());
        let outcome = store.write(readings).await;
        metrics::histogram!("gantry_ingest_write_seconds").record(started.elapsed().as_secs_f64());
        if let (Some(kept), Err(StoreError::Refused(_) | StoreError::Invalid(_))) = (&kept, &outcome) {
            if batch.len() > 1 {
                // One request's readings were refused: the others of the group must not fail with them.
                let mut rest = kept.as_slice();
                for (job, count) in batch.iter_mut().zip(counts) {
                    let (own, later) = rest.split_at(count);
                    job.readings = own.to_vec();
                    rest = later;
                }
                write_one_by_one(store.as_ref(), batch, observed.as_ref()).await;
                continue;
            }
        }
        let kept = if observed.is_some() { kept } else { None };
        match (&observed, kept, &outcome) {
            (Some(observed), Some(readings), Ok(())) => {
                if let Err(mpsc::error::SendError((_, batch, outcome))) = observed.send((readings, batch, outcome)) {
                    answer(batch, outcome);
                }
            }
            _ => answer(batch, outcome),
        }
    }
}

/// Writes each request of a refused group on its own, so that each gets its own answer.
async fn write_one_by_one(
    store: &dyn crate::timeseries::TimeSeriesStore,
    batch: Vec<Job>,
    observed: Option<&mpsc::UnboundedSender<Observed>>,
) {
    metrics::counter!("gantry_ingest_groups_split_total").increment(1);
    for mut job in batch {
        let readings = std::mem::take(&mut job.readings);
        let kept = observed.is_some().then(|| readings.clone());
        let outcome = store.write(readings).await;
        match (observed, kept, &outcome) {
            (Some(observed), Some(readings), Ok(())) => {
                if let Err(mpsc::error::SendError((_, batch, outcome))) = observed.send((readings, vec![job], outcome))
                {
                    answer(batch, outcome);
                }
            }
            _ => answer(vec![job], outcome),
        }
    }
}

/// The next queued item; once `stopping`, only what is already queued, then none.
async fn next_or_drained<T>(queue: &mut mpsc::UnboundedReceiver<T>, stopping: &CancellationToken) -> Option<T> {
    tokio::select! {
        item = queue.recv() => item,
        _ = stopping.cancelled() => queue.try_recv().ok(),
    }
}

type Observed = (Vec<Reading>, Vec<Job>, Result<(), StoreError>);

async fn observe_loop(
    observers: Arc<Vec<Arc<dyn ReadingsObserver>>>,
    batches: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Observed>>>,
    stopping: CancellationToken,
) {
    let mut batches = batches.lock().await;
    while let Some((readings, batch, outcome)) = next_or_drained(&mut batches, &stopping).await {
        for observer in observers.iter() {
            observer.observe(&readings).await;
        }
        // Ingest-to-alarm latency: every alarm these readings raise or clear has been decided, stored and
        // announced by now.
        for job in &batch {
            metrics::histogram!("gantry_ingest_to_alarm_seconds").record(job.queued.elapsed().as_secs_f64());
        }
        answer(batch, outcome);
    }
}

fn answer(batch: Vec<Job>, outcome: Result<(), StoreError>) {
    for job in batch {
        let _ = job.done.send(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_type_their_attribute_declares() {
        use Value::{Boolean, Float, Integer};
        assert_eq!(as_declared(Integer(20), ValueType::Float), Some(Float(20.0)));
        assert_eq!(as_declared(Boolean(true), ValueType::Float), Some(Float(1.0)));
        assert_eq!(as_declared(Float(20.0), ValueType::Integer), Some(Integer(20)));
        assert_eq!(as_declared(Float(20.5), ValueType::Integer), None);
        assert_eq!(as_declared(Integer(1), ValueType::Boolean), Some(Boolean(true)));
        assert_eq!(as_declared(Float(0.0), ValueType::Boolean), Some(Boolean(false)));
        assert_eq!(as_declared(Integer(7), ValueType::Boolean), None);
        assert_eq!(as_declared(Float(1.0), ValueType::String), None);
    }
}

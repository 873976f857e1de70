//! Which instance evaluates which alarm points.
//!
//! Delays, no-data timers and deadbands need every reading of a series to pass through one state machine, in
//! order, exactly once. So the alarm points are split into [`PARTITIONS`] partitions by asset (all of an asset's
//! points, and so each series, in one), and each partition is evaluated by the one live instance holding its lease
//! (`alarm-partition:N`, see `crate::leases`). Each instance takes its share (the partitions over the live
//! instances, rounded up), gives extra ones back when another instance joins, and takes over the partitions of one
//! that died once their leases end. A reading that reaches an instance not holding its series' partition is
//! forwarded to the holder (`forward.rs`) before it is acknowledged.
//!
//! A taken partition starts where its previous holder left it: the points' conditions as stored, then the readings
//! after each point's last evaluated sample, read back from the time-series store and evaluated again (which is
//! idempotent: a point skips samples at or before its last). Holders store that position with every change and
//! every few seconds, and on handing a partition back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::engine::AlarmEngine;
use crate::error::ApiError;
use crate::leases::{self, LeaseStore, INSTANCE_PREFIX};
use crate::locks::MutexExt;
use crate::metadata::now_ms;
use crate::tasks::Tasks;

/// How many partitions the alarm points are split into: the most instances that can share the evaluation.
pub const PARTITIONS: i64 = 32;

/// How often an instance renews its leases and rebalances.
const BALANCE_EVERY: Duration = Duration::from_secs(1);

/// How long after taking a partition it replays readings once more: those another instance forwarded to the
/// previous holder before it learned of the change.
const SECOND_LOOK_AFTER: Duration = Duration::from_secs(3);

const PREFIX: &str = "alarm-partition:";

pub fn partition_of(asset_id: i64) -> i64 {
    asset_id.rem_euclid(PARTITIONS)
}

fn lease_name(partition: i64) -> String {
    format!("{PREFIX}{partition}")
}

fn partition_named(name: &str) -> Option<i64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

#[derive(Default)]
struct State {
    /// Partitions this instance holds, and until when it may act on them without renewing.
    owned: HashMap<i64, Instant>,
    /// Who holds each partition, as of the last look.
    holders: HashMap<i64, String>,
    /// Partitions taken recently, due a second look.
    recent: Vec<(Instant, i64)>,
}

/// This instance's view of who evaluates what.
pub struct Ownership {
    instance: String,
    state: Mutex<State>,
}

impl Ownership {
    pub fn new(instance: String) -> Ownership {
        Ownership {
            instance,
            state: Mutex::new(State::default()),
        }
    }

    /// This instance's name in leases.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance evaluates the asset's points now.
    pub fn owns(&self, asset_id: i64) -> bool {
        self.owns_partition(partition_of(asset_id))
    }

    pub fn owns_partition(&self, partition: i64) -> bool {
        self.state
            .lock_unpoisoned()
            .owned
            .get(&partition)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The partitions this instance holds.
    pub fn owned(&self) -> Vec<i64> {
        let mut owned: Vec<i64> = self.state.lock_unpoisoned().owned.keys().copied().collect();
        owned.sort_unstable();
        owned
    }

    /// Which instance evaluates a partition, as of the last look (none while it changes hands).
    pub fn holder(&self, partition: i64) -> Option<String> {
        self.state.lock_unpoisoned().holders.get(&partition).cloned()
    }

    pub(super) fn took(&self, partition: i64, valid_until: Instant) {
        let mut state = self.state.lock_unpoisoned();
        state.owned.insert(partition, valid_until);
        state.holders.insert(partition, self.instance.clone());
        state.recent.push((Instant::now(), partition));
    }

    pub(super) fn gave_up(&self, partition: i64) {
        let mut state = self.state.lock_unpoisoned();
        state.owned.remove(&partition);
        if state.holders.get(&partition) == Some(&self.instance) {
            state.holders.remove(&partition);
        }
    }
}

/// Takes this instance's share of the partitions now (so a single instance evaluates from its first reading),
/// then keeps the share right every [`BALANCE_EVERY`] until shutdown, when it hands every partition back.
pub async fn start(
    engine: Arc<AlarmEngine>,
    leases: Arc<dyn LeaseStore>,
    tasks: &Tasks,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    balance(&engine, leases.as_ref()).await?;
    tasks.supervise("alarm partitions", move || {
        run(engine.clone(), leases.clone(), shutdown.clone())
    });
    Ok(())
}

async fn run(engine: Arc<AlarmEngine>, leases: Arc<dyn LeaseStore>, shutdown: CancellationToken) {
    let mut warned_alone = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(BALANCE_EVERY) => {}
        }
        match balance(&engine, leases.as_ref()).await {
            Ok(instances) if instances > 1 && !engine.forwards_between_instances() && !warned_alone => {
                warned_alone = true;
                tracing::error!(
                    instances,
                    "Several instances share this database but cluster.redis_url is not set: readings reaching an \
                     instance that does not evaluate their alarms cannot be forwarded, and are only evaluated when \
                     their partition changes hands. Set cluster.redis_url on every instance."
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error.into_app_error(), "Alarm partitions could not be renewed; retrying.")
            }
        }
    }
    // Hand everything back at once, so that the other instances need not wait for the leases to end.
    let owned = engine.ownership().owned();
    if let Err(error) = engine.hand_over(&owned).await {
        tracing::warn!(error = %error.into_app_error(), "Alarm points could not be saved at shutdown.");
    }
    let me = engine.ownership().instance().to_string();
    for partition in owned {
        let _ = leases.release(&lease_name(partition), &me).await;
    }
    let _ = leases.release(&format!("{INSTANCE_PREFIX}{me}"), &me).await;
}

/// One round: announce this instance, renew its partitions, give back extras or take free ones up to its share,
/// and take a second look at recently taken ones. Returns how many instances are live.
async fn balance(engine: &AlarmEngine, leases: &dyn LeaseStore) -> Result<usize, ApiError> {
    let ownership = engine.ownership();
    let me = ownership.instance().to_string();
    let started = Instant::now();
    let (now, until) = (now_ms(), leases::until_ms());
    leases
        .acquire(&format!("{INSTANCE_PREFIX}{me}"), &me, now, until)
        .await?;
    let renewed: HashSet<i64> = leases
        .renew(PREFIX, &me, now, until)
        .await?
        .iter()
        .filter_map(|name| partition_named(name))
        .collect();

    // Partitions whose lease ended are someone else's now; partitions renewed after this instance stopped acting
    // on them (a stall longer than the margin) are taken again, with a replay.
    let (mut lost, mut lapsed) = (Vec::new(), Vec::new());
    {
        let mut state = ownership.state.lock_unpoisoned();
        for (partition, valid) in state.owned.iter_mut() {
            if !renewed.contains(partition) {
                lost.push(*partition);
            } else if *valid <= started {
                lapsed.push(*partition);
            } else {
                *valid = leases::valid_until(started);
            }
        }
    }
    if !lost.is_empty() {
        tracing::warn!(
            ?lost,
            "Alarm partitions were lost: their leases ended before this instance renewed them."
        );
    }
    engine.drop_partitions(&lost).await;
    engine.drop_partitions(&lapsed).await;

    let instances = leases.held(INSTANCE_PREFIX, now).await?.len().max(1);
    let held: HashMap<i64, String> = leases
        .held(PREFIX, now)
        .await?
        .into_iter()
        .filter_map(|(name, holder)| Some((partition_named(&name)?, holder)))
        .collect();
    ownership.state.lock_unpoisoned().holders = held.clone();

    let share = (PARTITIONS as usize).div_ceil(instances);
    let owned = ownership.owned();
    if owned.len() > share {
        let extra = &owned[share..];
        engine.hand_over(extra).await?;
        for partition in extra {
            leases.release(&lease_name(*partition), &me).await?;
        }
        tracing::info!(
            given_back = extra.len(),
            instances,
            "Alarm partitions handed to other instances."
        );
    }
    let mut taken = lapsed;
    let wanted = share.saturating_sub(owned.len() + taken.len());
    if wanted > 0 {
        // Start looking at a place of this instance's own, so instances starting together rarely race.
        let offset = me.bytes().map(i64::from).sum::<i64>();
        for step in 0..PARTITIONS {
            if taken.len() >= wanted {
                break;
            }
            let partition = (offset + step).rem_euclid(PARTITIONS);
            // A partition this instance's name holds but its memory does not (a restart on SQLite, where the
            // name stays `local`) is taken like a free one.
            let mine = ownership.owns_partition(partition) || taken.contains(&partition);
            if mine || held.get(&partition).is_some_and(|holder| *holder != me) {
                continue;
            }
            if leases.acquire(&lease_name(partition), &me, now, until).await? {
                taken.push(partition);
            }
        }
    }
    if !taken.is_empty() {
        engine.adopt(&taken, leases::valid_until(started)).await?;
        tracing::info!(partitions = ?taken, instances, "Alarm partitions taken over.");
    }

    let due: Vec<i64> = {
        let mut state = ownership.state.lock_unpoisoned();
        let (due, later): (Vec<_>, Vec<_>) = state
            .recent
            .drain(..)
            .partition(|(at, _)| at.elapsed() >= SECOND_LOOK_AFTER);
        state.recent = later;
        due.into_iter().map(|(_, partition)| partition).collect()
    };
    engine.catch_up(&due).await?;
    metrics::gauge!("gantry_alarm_partitions_owned").set(ownership.owned().len() as f64);
    Ok(instances)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_asset_and_round_trip_through_lease_names() {
        assert_eq!(partition_of(0), 0);
        assert_eq!(partition_of(33), 1);
        assert_eq!(partition_of(-1), PARTITIONS - 1);
        assert_eq!(partition_named(&lease_name(7)), Some(7));
        assert_eq!(partition_named("instance:a"), None);
    }
}

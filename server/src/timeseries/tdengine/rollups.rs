//! Rollups on TDengine: minute and hour summaries (count, sum, min, max, first, last) of every series, so that a
//! chart over a week or a year reads thousands of summary rows instead of millions of readings, as the embedded
//! store's tiers do. They live in a database of their own (`<database>_rollups`, kept forever and trimmed per tier
//! by retention passes), so the readings' database keeps its short KEEP.
//!
//! Gantry writes them; TDengine's own means do not fit: TSMA is refused by TDengine 3.3.7 ("TSMA not support yet"
//! since its stream engine was rewritten), and a stream's results lag by an amount a reader cannot see, so a chart
//! would silently leave late readings out. Here a reader always knows which parts are summarised and exact:
//! - A maintenance pass (one instance at a time, every few seconds) summarises every window that ended more than
//!   [`ROLLUP_LAG_MS`] ago and records how far each tier got (`rollup_state`: the watermark).
//! - A write holding readings older than [`LATE_AFTER_MS`] (a gateway's buffer, a re-send, a correction) marks the
//!   hours it touched (`rollup_dirty`) before it is acknowledged; a later pass recomputes those hours from the
//!   readings and removes the marks it took.
//! - A read takes summaries below the watermark outside marked hours, and raw readings for the rest.
//!
//! The watermark only grows and a mark is removed only after its hour was recomputed, so a reader holding an old
//! watermark reads more raw readings, never a wrong answer.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    time::{Duration, Instant},
};

use super::{integer, multi_table_inserts, number, TdengineStore, MAX_STATEMENT_BYTES};
use crate::timeseries::{
    ceil_to, floor_to, Accumulator, BucketSet, Reading, Resolution, SeriesId, StoreError, TimeRange, HOUR_MS, MINUTE_MS,
};

/// Windows are summarised once they ended this long ago (by TDengine's clock), so in-order readings arrive first.
pub const ROLLUP_LAG_MS: i64 = 2 * MINUTE_MS;
/// Readings older than this (by the writing instance's clock) may fall in windows already summarised: their hours
/// are marked. Below [`ROLLUP_LAG_MS`] by a margin for the instances' clocks to differ.
pub const LATE_AFTER_MS: i64 = MINUTE_MS;
/// How old a mark must be before a pass takes it: longer than any write may take between TDengine stamping the
/// mark and committing it (a call times out after 15 s), so a pass never removes a mark it has not seen.
pub const MARKS_SETTLE: Duration = Duration::from_secs(30);
/// How long a reader trusts the watermark it read.
const WATERMARK_TTL: Duration = Duration::from_secs(1);
/// The most a pass summarises per query: minutes of 6 hours, hours of a week.
const MINUTE_CHUNK_MS: i64 = 6 * HOUR_MS;
const HOUR_CHUNK_MS: i64 = 7 * 24 * HOUR_MS;
/// A pass stops after this long and reports that it is behind; the next starts at once.
const PASS_BUDGET: Duration = Duration::from_secs(20);

/// The readings' super tables, with the expression their values are summed as (TDengine sums no booleans).
const READING_TABLES: [(&str, &str); 3] = [
    ("readings_float", "v"),
    ("readings_int", "v"),
    ("readings_bool", "CAST(v AS DOUBLE)"),
];

/// How far each tier is summarised: every window that starts before the watermark is (outside marked hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolledUntil {
    pub minute: i64,
    pub hour: i64,
}

impl RolledUntil {
    /// Nothing summarised yet: the first pass starts at the first reading.
    const NOTHING: RolledUntil = RolledUntil { minute: 0, hour: 0 };

    fn of(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Raw => i64::MIN,
            Resolution::Minute => self.minute,
            Resolution::Hour => self.hour,
        }
    }
}

pub(super) struct CachedWatermark {
    read_at: Instant,
    endpoint: usize,
    rolled: RolledUntil,
}

/// The rollups' database (one vnode with a 32 MB write buffer: it takes a row per series and minute, not the
/// readings' stream): summaries per tier (a subtable per series: `m_<id>`, `h_<id>`), the late-write marks
/// (`d_<id>`; the hour is part of the key, so marks of several hours stamped in the same millisecond all stay) and
/// the watermark's history.
pub(super) fn schema_statements(rdb: &str) -> Vec<String> {
    let mut statements = vec![format!(
        "CREATE DATABASE IF NOT EXISTS {rdb} PRECISION 'ms' KEEP 365000d WAL_LEVEL 2 WAL_FSYNC_PERIOD 0 \
         VGROUPS 1 BUFFER 32"
    )];
    for table in ["rollup_minute", "rollup_hour"] {
        statements.push(format!(
            "CREATE STABLE IF NOT EXISTS {rdb}.{table} (ts TIMESTAMP, n BIGINT, total DOUBLE, lo DOUBLE, hi DOUBLE, \
             first_v DOUBLE, last_v DOUBLE) TAGS (series BIGINT)"
        ));
    }
    statements.push(format!(
        "CREATE STABLE IF NOT EXISTS {rdb}.rollup_dirty (ts TIMESTAMP, hour BIGINT PRIMARY KEY) TAGS (series BIGINT)"
    ));
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {rdb}.rollup_state (ts TIMESTAMP, minute_until BIGINT, hour_until BIGINT)"
    ));
    statements
}

/// Where each part of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Raw,
    Minutes,
    Hours,
}

/// The parts of `range` and where each is read from, for buckets of `resolution`'s tier: summaries for the whole
/// windows below the tier's watermark outside `dirty` hours, the next finer tier for the edges and the rest.
pub(super) fn plan(
    range: TimeRange,
    resolution: Resolution,
    rolled: RolledUntil,
    dirty: &BTreeSet<i64>,
) -> Vec<(Source, TimeRange)> {
    let mut parts: Vec<(Source, TimeRange)> = Vec::new();
    plan_into(range, resolution, rolled, dirty, &mut parts);
    // Neighbouring parts from the same source are one query.
    let mut merged: Vec<(Source, TimeRange)> = Vec::with_capacity(parts.len());
    for (source, part) in parts {
        match merged.last_mut() {
            Some((last_source, last)) if *last_source == source && last.to == part.from => last.to = part.to,
            _ => merged.push((source, part)),
        }
    }
    merged
}

fn plan_into(
    range: TimeRange,
    resolution: Resolution,
    rolled: RolledUntil,
    dirty: &BTreeSet<i64>,
    parts: &mut Vec<(Source, TimeRange)>,
) {
    let (width, source, finer) = match resolution {
        Resolution::Raw => {
            parts.push((Source::Raw, range));
            return;
        }
        Resolution::Minute => (MINUTE_MS, Source::Minutes, Resolution::Raw),
        Resolution::Hour => (HOUR_MS, Source::Hours, Resolution::Minute),
    };
    let middle_from = ceil_to(range.from, width);
    let middle_to = floor_to(range.to.min(rolled.of(resolution)), width);
    if middle_from >= middle_to {
        plan_into(range, finer, rolled, dirty, parts);
        return;
    }
    if range.from < middle_from {
        plan_into(
            TimeRange {
                from: range.from,
                to: middle_from,
            },
            finer,
            rolled,
            dirty,
            parts,
        );
    }
    // Marked hours inside the middle come from the readings; the summaries between them from the tier.
    let mut from = middle_from;
    for &hour in dirty.range(floor_to(middle_from, HOUR_MS)..middle_to) {
        let (start, end) = (hour.max(middle_from), (hour + HOUR_MS).min(middle_to));
        if from < start {
            parts.push((source, TimeRange { from, to: start }));
        }
        parts.push((Source::Raw, TimeRange { from: start, to: end }));
        from = end;
    }
    if from < middle_to {
        parts.push((source, TimeRange { from, to: middle_to }));
    }
    if middle_to < range.to {
        plan_into(
            TimeRange {
                from: middle_to,
                to: range.to,
            },
            finer,
            rolled,
            dirty,
            parts,
        );
    }
}

/// A summary row: (window start, count, sum, min, max, first, last).
type Summary = (i64, u64, f64, f64, f64, f64, f64);

fn summary(values: &[taos::Value]) -> Option<Summary> {
    match values {
        [start, count, sum, min, max, first, last] => Some((
            integer(start)?,
            integer(count)? as u64,
            number(sum)?,
            number(min)?,
            number(max)?,
            number(first)?,
            number(last)?,
        )),
        _ => None,
    }
}

fn bad_row() -> StoreError {
    StoreError::Corrupt("TDengine answered a rollup row of an unexpected shape".into())
}

impl TdengineStore {
    fn rdb(&self) -> &str {
        &self.inner.rollups_database
    }

    /// Buckets of `bucket_ms` over `range`, each part read from where [`plan`] says; the parts run concurrently.
    pub(super) async fn aggregate(
        &self,
        series: SeriesId,
        range: TimeRange,
        bucket_ms: i64,
        resolution: Resolution,
    ) -> Result<BucketSet, StoreError> {
        let read = |parts: Vec<(Source, TimeRange)>| {
            futures::future::try_join_all(
                parts
                    .into_iter()
                    .map(move |(source, part)| self.part(series, source, part, bucket_ms)),
            )
        };
        let answers = if resolution == Resolution::Raw {
            read(vec![(Source::Raw, range)]).await?
        } else {
            // The parts are read while the marks are: most series have none, so the plan made without them is
            // usually the plan, and the read takes one round trip instead of two.
            let rolled = self.rolled_until().await?;
            let hoped = plan(range, resolution, rolled, &BTreeSet::new());
            let (dirty, answers) = tokio::join!(self.dirty_hours(series), read(hoped.clone()));
            let needed = plan(range, resolution, rolled, &dirty?);
            if needed == hoped {
                answers?
            } else {
                read(needed).await?
            }
        };
        let mut buckets = BucketSet::new(bucket_ms);
        for rows in answers {
            for row in rows {
                let (Some((_, count, sum, min, max, first, last)), Some(first_ts), Some(last_ts)) = (
                    row.get(..7).and_then(summary),
                    row.get(7).and_then(integer),
                    row.get(8).and_then(integer),
                ) else {
                    return Err(bad_row());
                };
                if count == 0 {
                    continue;
                }
                // Parts cover disjoint spans, so the instants of their first and last values order them.
                let piece = Accumulator {
                    count,
                    sum,
                    min,
                    max,
                    first: (first_ts, first),
                    last: (last_ts, last),
                };
                buckets.add(first_ts, piece);
            }
        }
        Ok(buckets)
    }

    /// One part's buckets: (start, count, sum, min, max, first, last, first instant, last instant) rows.
    async fn part(
        &self,
        series: SeriesId,
        source: Source,
        part: TimeRange,
        bucket_ms: i64,
    ) -> Result<Vec<Vec<taos::Value>>, StoreError> {
        let (db, rdb) = (&self.inner.database, self.rdb());
        let (from, to) = (part.from, part.to);
        let sql = match source {
            Source::Raw => format!(
                "SELECT _wstart, COUNT(v), SUM(CAST(v AS DOUBLE)), MIN(CAST(v AS DOUBLE)), MAX(CAST(v AS DOUBLE)), \
                 FIRST(v), LAST(v), FIRST(ts), LAST(ts) FROM {db}.s_{series} WHERE ts >= {from} AND ts < {to} \
                 INTERVAL({bucket_ms}a) FILL(NONE)"
            ),
            Source::Minutes | Source::Hours => {
                let prefix = if source == Source::Minutes { "m" } else { "h" };
                format!(
                    "SELECT _wstart, SUM(n), SUM(total), MIN(lo), MAX(hi), FIRST(first_v), LAST(last_v), FIRST(ts), \
                     LAST(ts) FROM {rdb}.{prefix}_{series} WHERE ts >= {from} AND ts < {to} \
                     INTERVAL({bucket_ms}a) FILL(NONE)"
                )
            }
        };
        self.series_records(sql).await
    }

    /// How far the rollups go, as read at most a second ago from the endpoint in use.
    pub async fn rolled_until(&self) -> Result<RolledUntil, StoreError> {
        let endpoint = self.inner.serving.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(cached) = self.inner.rolled.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if cached.endpoint == endpoint && cached.read_at.elapsed() < WATERMARK_TTL {
                return Ok(cached.rolled);
            }
        }
        let read_at = Instant::now();
        let rolled = self.stored_watermark().await?;
        // A failover in the meantime makes this endpoint's answer the one to keep, whichever it was read from.
        let endpoint = self.inner.serving.load(std::sync::atomic::Ordering::Relaxed);
        *self.inner.rolled.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedWatermark {
            read_at,
            endpoint,
            rolled,
        });
        Ok(rolled)
    }

    async fn stored_watermark(&self) -> Result<RolledUntil, StoreError> {
        let rows = self
            .records(format!(
                "SELECT LAST_ROW(minute_until), LAST_ROW(hour_until) FROM {}.rollup_state",
                self.rdb()
            ))
            .await?;
        Ok(match rows.first().map(Vec::as_slice) {
            Some([minute, hour]) => match (integer(minute), integer(hour)) {
                (Some(minute), Some(hour)) => RolledUntil { minute, hour },
                _ => RolledUntil::NOTHING,
            },
            _ => RolledUntil::NOTHING,
        })
    }

    async fn save_watermark(&self, rolled: RolledUntil) -> Result<(), StoreError> {
        self.exec(format!(
            "INSERT INTO {}.rollup_state VALUES (NOW, {}, {})",
            self.rdb(),
            rolled.minute,
            rolled.hour
        ))
        .await
        .map(|_| ())
    }

    /// The hours of `series` marked by late writes and not yet recomputed.
    pub async fn dirty_hours(&self, series: SeriesId) -> Result<BTreeSet<i64>, StoreError> {
        let rows = self
            .series_records(format!("SELECT hour FROM {}.d_{series}", self.rdb()))
            .await?;
        Ok(rows.iter().filter_map(|row| row.first().and_then(integer)).collect())
    }

    /// Marks the hours of the batch's late readings (see the module's documentation); called after the readings
    /// are written and before they are acknowledged.
    pub(super) async fn mark_late(&self, batch: &[Reading]) -> Result<(), StoreError> {
        let late_before = crate::metadata::now_ms() - LATE_AFTER_MS;
        let mut hours: BTreeMap<SeriesId, BTreeSet<i64>> = BTreeMap::new();
        for reading in batch.iter().filter(|r| r.ts < late_before) {
            hours
                .entry(reading.series)
                .or_default()
                .insert(floor_to(reading.ts, HOUR_MS));
        }
        self.mark_hours(hours).await
    }

    async fn mark_hours(&self, hours: BTreeMap<SeriesId, BTreeSet<i64>>) -> Result<(), StoreError> {
        let rdb = self.rdb();
        let hours: Vec<(SeriesId, Vec<i64>)> = hours.into_iter().map(|(s, h)| (s, h.into_iter().collect())).collect();
        let groups = hours.iter().map(|(series, hours)| {
            (
                format!(" {rdb}.d_{series} USING {rdb}.rollup_dirty TAGS ({series}) VALUES"),
                hours.as_slice(),
            )
        });
        for (sql, _) in multi_table_inserts(
            groups,
            |out, hour| {
                let _ = write!(out, " (NOW, {hour})");
            },
            MAX_STATEMENT_BYTES,
        ) {
            self.exec(sql).await?;
        }
        Ok(())
    }

    /// After readings of `series` in `range` were deleted: removes the summaries of the whole hours inside it and
    /// marks the hours it cuts, which the next pass recomputes.
    pub(super) async fn forget_range(&self, series: SeriesId, range: TimeRange) -> Result<(), StoreError> {
        let rdb = self.rdb();
        let (whole_from, whole_to) = (ceil_to(range.from, HOUR_MS), floor_to(range.to, HOUR_MS));
        let mut cut = BTreeSet::new();
        if whole_from < whole_to {
            for prefix in ["m", "h"] {
                self.series_exec(format!(
                    "DELETE FROM {rdb}.{prefix}_{series} WHERE ts >= {whole_from} AND ts < {whole_to}"
                ))
                .await?;
            }
        }
        for edge in [range.from, range.to] {
            if edge % HOUR_MS != 0 {
                cut.insert(floor_to(edge, HOUR_MS));
            }
        }
        if cut.is_empty() {
            return Ok(());
        }
        self.mark_hours([(series, cut)].into()).await
    }

    /// One maintenance pass: summarises what the watermark allows, then recomputes marked hours. Returns whether
    /// the rollups are caught up (false: the pass ran out of time, run another).
    pub async fn maintain_rollups(&self) -> Result<bool, StoreError> {
        let started = Instant::now();
        let server_now = self.server_now().await?;
        let before = self.stored_watermark().await?;
        let mut rolled = before;
        let minute_target = floor_to(server_now - ROLLUP_LAG_MS, MINUTE_MS);
        while rolled.minute < minute_target && started.elapsed() < PASS_BUDGET {
            let tables: Vec<(String, &str)> = READING_TABLES
                .iter()
                .map(|(table, value)| (format!("{}.{table}", self.inner.database), *value))
                .collect();
            let Some(first) = self.first_instant(&tables, rolled.minute, minute_target).await? else {
                rolled.minute = minute_target;
                break;
            };
            let from = floor_to(first, MINUTE_MS).max(rolled.minute);
            let to = (from + MINUTE_CHUNK_MS).min(minute_target);
            self.summarise(&tables, TimeRange { from, to }, Source::Minutes).await?;
            rolled.minute = to;
            self.save_watermark(rolled).await?;
        }
        let hour_target = floor_to(rolled.minute, HOUR_MS);
        let minutes = [(format!("{}.rollup_minute", self.rdb()), "")];
        while rolled.hour < hour_target && started.elapsed() < PASS_BUDGET {
            let Some(first) = self.first_instant(&minutes, rolled.hour, hour_target).await? else {
                rolled.hour = hour_target;
                break;
            };
            let from = floor_to(first, HOUR_MS).max(rolled.hour);
            let to = (from + HOUR_CHUNK_MS).min(hour_target);
            self.summarise(&minutes, TimeRange { from, to }, Source::Hours).await?;
            rolled.hour = to;
            self.save_watermark(rolled).await?;
        }
        self.save_watermark(rolled).await?;
        // Marks older than `cut` were committed before this pass began (see MARKS_SETTLE), so the windows this pass
        // summarised already hold their readings: only what was summarised before, up to `before`, is redone.
        let settle = self.inner.marks_settle.as_millis() as i64;
        self.recompute_marked(before, server_now - settle + 1).await?;
        let lag = (server_now - rolled.minute) as f64 / 1000.0;
        metrics::gauge!("gantry_timeseries_rollup_lag_seconds").set(lag);
        Ok(rolled.minute >= minute_target && rolled.hour >= hour_target)
    }

    async fn server_now(&self) -> Result<i64, StoreError> {
        let rows = self.records("SELECT NOW()".to_string()).await?;
        rows.first()
            .and_then(|row| row.first())
            .and_then(integer)
            .ok_or_else(bad_row)
    }

    /// The first instant in `[from, to)` of any of `tables`, to skip spans without data at once.
    async fn first_instant(&self, tables: &[(String, &str)], from: i64, to: i64) -> Result<Option<i64>, StoreError> {
        let mut first: Option<i64> = None;
        for (table, _) in tables {
            let rows = self
                .records(format!(
                    "SELECT FIRST(ts) FROM {table} WHERE ts >= {from} AND ts < {to}"
                ))
                .await?;
            if let Some(ts) = rows.first().and_then(|row| row.first()).and_then(integer) {
                first = Some(first.map_or(ts, |f| f.min(ts)));
            }
        }
        Ok(first)
    }

    /// Writes the summaries of every series in `tables` over `range` into the tier of `into`: from readings for
    /// minutes, from minutes for hours.
    async fn summarise(&self, tables: &[(String, &str)], range: TimeRange, into: Source) -> Result<(), StoreError> {
        let (width, aggregates) = match into {
            Source::Hours => (
                HOUR_MS,
                "SUM(n), SUM(total), MIN(lo), MAX(hi), FIRST(first_v), LAST(last_v)".to_string(),
            ),
            _ => (MINUTE_MS, String::new()),
        };
        for (table, value) in tables {
            let aggregates = if into == Source::Hours {
                aggregates.clone()
            } else {
                format!("COUNT(v), SUM({value}), MIN({value}), MAX({value}), FIRST(v), LAST(v)")
            };
            let rows = self
                .records(format!(
                    "SELECT series, _wstart, {aggregates} FROM {table} WHERE ts >= {} AND ts < {} \
                     PARTITION BY series INTERVAL({width}a)",
                    range.from, range.to
                ))
                .await?;
            let mut by_series: BTreeMap<SeriesId, Vec<Summary>> = BTreeMap::new();
            for row in rows {
                let (Some(series), Some(summary)) = (row.first().and_then(integer), summary(&row[1..])) else {
                    return Err(bad_row());
                };
                by_series.entry(series).or_default().push(summary);
            }
            self.write_summaries(into, &by_series).await?;
        }
        Ok(())
    }

    async fn write_summaries(
        &self,
        into: Source,
        by_series: &BTreeMap<SeriesId, Vec<Summary>>,
    ) -> Result<(), StoreError> {
        let rdb = self.rdb();
        let (prefix, stable) = match into {
            Source::Hours => ("h", "rollup_hour"),
            _ => ("m", "rollup_minute"),
        };
        let groups = by_series.iter().map(|(series, rows)| {
            (
                format!(" {rdb}.{prefix}_{series} USING {rdb}.{stable} TAGS ({series}) VALUES"),
                rows.as_slice(),
            )
        });
        let statements = multi_table_inserts(
            groups,
            |out, &(ts, n, total, lo, hi, first, last)| {
                let _ = write!(out, " ({ts}, {n}, {total:e}, {lo:e}, {hi:e}, {first:e}, {last:e})");
            },
            MAX_STATEMENT_BYTES,
        );
        for (sql, _) in statements {
            self.exec(sql).await?;
        }
        Ok(())
    }

    /// Recomputes the hours marked before `cut` from the readings, then removes those marks.
    async fn recompute_marked(&self, rolled: RolledUntil, cut: i64) -> Result<(), StoreError> {
        let (db, rdb) = (&self.inner.database, self.rdb());
        let rows = self
            .records(format!("SELECT series, hour FROM {rdb}.rollup_dirty WHERE ts < {cut}"))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut marked: BTreeMap<SeriesId, BTreeSet<i64>> = BTreeMap::new();
        for row in &rows {
            if let [series, hour] = row.as_slice() {
                if let (Some(series), Some(hour)) = (integer(series), integer(hour)) {
                    marked.entry(series).or_default().insert(hour);
                }
            }
        }
        let mut recomputed = 0_u64;
        for (series, hours) in marked {
            for span in spans(&hours).into_iter().flat_map(|span| chunks(span, MINUTE_CHUNK_MS)) {
                for (source, until) in [(Source::Minutes, rolled.minute), (Source::Hours, rolled.hour)] {
                    let to = span.to.min(until);
                    if span.from >= to {
                        continue;
                    }
                    let (prefix, width) = if source == Source::Minutes {
                        ("m", MINUTE_MS)
                    } else {
                        ("h", HOUR_MS)
                    };
                    // The mark stays until the end, so readers take the readings while the summaries are rewritten.
                    self.series_exec(format!(
                        "DELETE FROM {rdb}.{prefix}_{series} WHERE ts >= {} AND ts < {to}",
                        span.from
                    ))
                    .await?;
                    let rows = self
                        .series_records(format!(
                            "SELECT _wstart, COUNT(v), SUM(CAST(v AS DOUBLE)), MIN(CAST(v AS DOUBLE)), \
                             MAX(CAST(v AS DOUBLE)), FIRST(v), LAST(v) FROM {db}.s_{series} \
                             WHERE ts >= {} AND ts < {to} INTERVAL({width}a) FILL(NONE)",
                            span.from
                        ))
                        .await?;
                    let summaries = rows
                        .iter()
                        .map(|row| summary(row).ok_or_else(bad_row))
                        .filter(|s| !matches!(s, Ok((_, 0, ..))))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.write_summaries(source, &[(series, summaries)].into()).await?;
                }
                recomputed += (span.to - span.from) as u64 / HOUR_MS as u64;
            }
        }
        self.exec(format!("DELETE FROM {rdb}.rollup_dirty WHERE ts < {cut}"))
            .await?;
        metrics::counter!("gantry_timeseries_rollup_recomputed_hours_total").increment(recomputed);
        Ok(())
    }

    /// The summaries stored for `series` in `range` at a tier, without the readings (for tests and diagnosis).
    pub async fn stored_summaries(
        &self,
        series: SeriesId,
        resolution: Resolution,
        range: TimeRange,
    ) -> Result<Vec<crate::timeseries::Bucket>, StoreError> {
        let prefix = match resolution {
            Resolution::Minute => "m",
            Resolution::Hour => "h",
            Resolution::Raw => return Ok(Vec::new()),
        };
        let rows = self
            .series_records(format!(
                "SELECT ts, n, total, lo, hi, first_v, last_v FROM {}.{prefix}_{series} WHERE ts >= {} AND ts < {} \
                 ORDER BY ts",
                self.rdb(),
                range.from,
                range.to
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let (start, count, sum, min, max, first, last) = summary(row).ok_or_else(bad_row)?;
                Ok(crate::timeseries::Bucket {
                    start,
                    count,
                    sum,
                    min,
                    max,
                    first,
                    last,
                })
            })
            .collect()
    }

    /// Trims a series' rollup tiers to what `keep` allows (missing subtables are nothing to trim).
    pub(super) async fn trim_rollups(
        &self,
        series: SeriesId,
        keep: crate::timeseries::TierRetention,
        now_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut trimmed = (0, 0);
        for (prefix, ms, width, count) in [
            ("m", keep.minute_ms, MINUTE_MS, &mut trimmed.0),
            ("h", keep.hour_ms, HOUR_MS, &mut trimmed.1),
        ] {
            if let Some(ms) = ms {
                let before = floor_to(now_ms - ms, width);
                let sql = format!("DELETE FROM {}.{prefix}_{series} WHERE ts < {before}", self.rdb());
                *count += self.series_exec(sql).await? as u64;
            }
        }
        Ok(trimmed)
    }
}

/// `range` in pieces of at most `width`.
fn chunks(range: TimeRange, width: i64) -> impl Iterator<Item = TimeRange> {
    (range.from..range.to)
        .step_by(width as usize)
        .map(move |from| TimeRange {
            from,
            to: (from + width).min(range.to),
        })
}

/// Runs of consecutive hours, as ranges.
fn spans(hours: &BTreeSet<i64>) -> Vec<TimeRange> {
    let mut spans: Vec<TimeRange> = Vec::new();
    for &hour in hours {
        match spans.last_mut() {
            Some(last) if last.to == hour => last.to = hour + HOUR_MS,
            _ => spans.push(TimeRange {
                from: hour,
                to: hour + HOUR_MS,
            }),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a whole hour

    fn range(from: i64, to: i64) -> TimeRange {
        TimeRange { from, to }
    }

    #[test]
    fn nothing_summarised_reads_the_readings() {
        let parts = plan(
            range(T0, T0 + 5 * HOUR_MS),
            Resolution::Hour,
            RolledUntil::NOTHING,
            &BTreeSet::new(),
        );
        assert_eq!(parts, vec![(Source::Raw, range(T0, T0 + 5 * HOUR_MS))]);
    }

    #[test]
    fn hours_below_the_watermark_then_minutes_then_readings() {
        let rolled = RolledUntil {
            minute: T0 + 3 * HOUR_MS + 10 * MINUTE_MS,
            hour: T0 + 3 * HOUR_MS,
        };
        let query = range(T0 + 30_000, T0 + 4 * HOUR_MS);
        let parts = plan(query, Resolution::Hour, rolled, &BTreeSet::new());
        assert_eq!(
            parts,
            vec![
                // The edge before the first whole hour: its whole minutes from the minute tier.
                (Source::Raw, range(T0 + 30_000, T0 + MINUTE_MS)),
                (Source::Minutes, range(T0 + MINUTE_MS, T0 + HOUR_MS)),
                (Source::Hours, range(T0 + HOUR_MS, T0 + 3 * HOUR_MS)),
                (
                    Source::Minutes,
                    range(T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 10 * MINUTE_MS)
                ),
                (Source::Raw, range(T0 + 3 * HOUR_MS + 10 * MINUTE_MS, T0 + 4 * HOUR_MS)),
            ]
        );
    }

    #[test]
    fn marked_hours_are_read_from_the_readings() {
        let rolled = RolledUntil {
            minute: T0 + 10 * HOUR_MS,
            hour: T0 + 10 * HOUR_MS,
        };
        let dirty: BTreeSet<i64> = [T0 - HOUR_MS, T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS, T0 + 9 * HOUR_MS].into();
        let parts = plan(range(T0, T0 + 6 * HOUR_MS), Resolution::Hour, rolled, &dirty);
        assert_eq!(
            parts,
            vec![
                (Source::Hours, range(T0, T0 + 2 * HOUR_MS)),
                (Source::Raw, range(T0 + 2 * HOUR_MS, T0 + 4 * HOUR_MS)),
                (Source::Hours, range(T0 + 4 * HOUR_MS, T0 + 6 * HOUR_MS)),
            ]
        );
        // Minutes: a marked hour cut by the range's start is read from the readings as far as it reaches.
        let parts = plan(
            range(T0 + 2 * HOUR_MS + 30 * MINUTE_MS, T0 + 5 * HOUR_MS),
            Resolution::Minute,
            rolled,
            &dirty,
        );
        assert_eq!(
            parts,
            vec![
                (Source::Raw, range(T0 + 2 * HOUR_MS + 30 * MINUTE_MS, T0 + 4 * HOUR_MS)),
                (Source::Minutes, range(T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS)),
            ]
        );
    }

    #[test]
    fn parts_cover_the_range_exactly_once() {
        let rolled = RolledUntil {
            minute: T0 + 7 * HOUR_MS + 17 * MINUTE_MS,
            hour: T0 + 7 * HOUR_MS,
        };
        let dirty: BTreeSet<i64> = [T0 + HOUR_MS, T0 + 5 * HOUR_MS, T0 + 7 * HOUR_MS].into();
        for from in [T0 - 7_001, T0, T0 + 59_999, T0 + 90 * MINUTE_MS] {
            for to in [
                T0 + 2 * HOUR_MS + 1,
                T0 + 7 * HOUR_MS + 20 * MINUTE_MS,
                T0 + 30 * HOUR_MS,
            ] {
                for resolution in [Resolution::Raw, Resolution::Minute, Resolution::Hour] {
                    let parts = plan(range(from, to), resolution, rolled, &dirty);
                    let mut at = from;
                    for pair in parts.windows(2) {
                        assert!(
                            pair[0].0 != pair[1].0,
                            "neighbours from one source are merged: {parts:?}"
                        );
                    }
                    for (source, part) in &parts {
                        assert_eq!(part.from, at, "{parts:?}");
                        assert!(part.from < part.to, "{parts:?}");
                        if *source != Source::Raw {
                            let watermark = if *source == Source::Hours {
                                rolled.hour
                            } else {
                                rolled.minute
                            };
                            assert!(part.to <= watermark, "{parts:?}");
                            assert!(
                                dirty.iter().all(|&h| part.to <= h || h + HOUR_MS <= part.from),
                                "{parts:?}"
                            );
                        }
                        at = part.to;
                    }
                    assert_eq!(at, to, "{parts:?}");
                }
            }
        }
    }

    #[test]
    fn consecutive_hours_form_one_span_taken_in_chunks() {
        let hours: BTreeSet<i64> = [T0, T0 + HOUR_MS, T0 + 3 * HOUR_MS].into();
        assert_eq!(
            spans(&hours),
            vec![range(T0, T0 + 2 * HOUR_MS), range(T0 + 3 * HOUR_MS, T0 + 4 * HOUR_MS)]
        );
        let pieces: Vec<TimeRange> = chunks(range(T0, T0 + 13 * HOUR_MS), MINUTE_CHUNK_MS).collect();
        assert_eq!(
            pieces,
            vec![
                range(T0, T0 + 6 * HOUR_MS),
                range(T0 + 6 * HOUR_MS, T0 + 12 * HOUR_MS),
                range(T0 + 12 * HOUR_MS, T0 + 13 * HOUR_MS)
            ]
        );
    }
}

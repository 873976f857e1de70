//! The `blocks` table: where each series' flushed readings live, as compressed blocks of at most `block_points`
//! readings and six hours; appending after the newest block, merging readings that reach back, deleting ranges.

use std::ops::ControlFlow;

// The store's tables, types and helpers are this module's vocabulary.
use super::*;

/// Writes one series' flushed readings: appended after its blocks, or merged into them when they reach back.
pub(super) fn write_plan(tx: &Transaction<'_>, plan: &mut FlushPlan, block_points: usize) -> Result<(), StoreError> {
    plan.new_max_ts = plan.flushed_max_ts;
    plan.new_last = plan.flushed_last;
    let (Some(&first), Some(&last)) = (plan.points.first(), plan.points.last()) else {
        return Ok(());
    };
    plan.new_max_ts = Some(plan.flushed_max_ts.map_or(last.0, |m| m.max(last.0)));
    if plan.flushed_last.is_none_or(|l| l.0 <= last.0) {
        plan.new_last = Some(last);
    }
    let appending = plan.flushed_max_ts.is_none_or(|max| first.0 > max);
    if appending {
        append_blocks(tx, plan.series, &plan.points, block_points)?;
        upsert_rollups(tx, plan.series, &plan.points)?;
    } else {
        merge_into_blocks(tx, plan.series, &plan.points, block_points)?;
        if plan.flushed_last.is_some_and(|l| l.0 > last.0) {
            // An older reading of the newest instant may have been replaced.
            plan.new_last = newest_in_blocks(tx, plan.series)?;
        }
    }
    Ok(())
}

pub(super) fn insert_blocks(
    tx: &Transaction<'_>,
    series: SeriesId,
    points: &[(i64, f64)],
    block_points: usize,
) -> Result<(), StoreError> {
    if points.is_empty() {
        return Ok(());
    }
    // Even chunks: 4100 readings make two blocks of 2050, not 4096 and 4.
    let chunks = points.len().div_ceil(block_points);
    let size = points.len().div_ceil(chunks);
    let mut stmt = tx
        .prepare_cached("INSERT INTO blocks (series, start_ts, end_ts, n, data) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(storage_error)?;
    // Blocks expire whole, so a block never spans more than a few hours, however few readings it holds.
    let mut chunks: Vec<&[(i64, f64)]> = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || i - start >= size || points[i].0 - points[start].0 > MAX_BLOCK_SPAN_MS {
            chunks.push(&points[start..i]);
            start = i;
        }
    }
    for chunk in chunks {
        let data = block::encode(chunk)?;
        stmt.execute(params![
            series,
            chunk[0].0,
            chunk[chunk.len() - 1].0,
            chunk.len() as i64,
            data
        ])
        .map_err(storage_error)?;
    }
    Ok(())
}

/// Appends readings newer than every stored one; a small last block (a slow series) is extended instead of
/// leaving a trail of tiny blocks that compress badly.
pub(super) fn append_blocks(
    tx: &Transaction<'_>,
    series: SeriesId,
    points: &[(i64, f64)],
    block_points: usize,
) -> Result<(), StoreError> {
    let last: Option<(i64, i64, i64, Vec<u8>)> = tx
        .prepare_cached("SELECT id, start_ts, n, data FROM blocks WHERE series = ?1 ORDER BY end_ts DESC LIMIT 1")
        .and_then(|mut s| {
            s.query_row([series], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(storage_error)?;
    if let Some((id, start, n, data)) = last {
        let span = points[points.len() - 1].0 - start;
        // Blocks expire whole, so one never spans more than a few hours.
        if (n as usize) < block_points / 2 && n as usize + points.len() <= block_points && span <= MAX_BLOCK_SPAN_MS {
            let mut combined = block::decode(&data)?;
            combined.extend_from_slice(points);
            tx.prepare_cached("DELETE FROM blocks WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(storage_error)?;
            return insert_blocks(tx, series, &combined, block_points);
        }
    }
    insert_blocks(tx, series, points, block_points)
}

/// Loads the blocks of a series that overlap `[from, to]` (inclusive), deleting them; returns their readings.
pub(super) fn take_blocks(tx: &Transaction<'_>, series: SeriesId, from: i64, to: i64) -> Result<Points, StoreError> {
    let mut taken: Vec<(i64, Points)> = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, start_ts, data FROM blocks WHERE series = ?1 AND end_ts >= ?2 AND start_ts <= ?3",
            )
            .map_err(storage_error)?;
        let mut rows = stmt.query(params![series, from, to]).map_err(storage_error)?;
        let mut ids = Vec::new();
        while let Some(row) = rows.next().map_err(storage_error)? {
            ids.push(row.get::<_, i64>(0).map_err(storage_error)?);
            let start: i64 = row.get(1).map_err(storage_error)?;
            let data = row
                .get_ref(2)
                .map_err(storage_error)?
                .as_blob()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            taken.push((start, block::decode(data)?));
        }
        drop(rows);
        let mut delete = tx
            .prepare_cached("DELETE FROM blocks WHERE id = ?1")
            .map_err(storage_error)?;
        for id in ids {
            delete.execute([id]).map_err(storage_error)?;
        }
    }
    taken.sort_by_key(|(start, _)| *start);
    Ok(taken.into_iter().flat_map(|(_, points)| points).collect())
}

/// Merges readings that reach back into a series' stored past: rewrites the blocks they touch and recomputes the
/// rollups of the minutes and hours they fall in.
pub(super) fn merge_into_blocks(
    tx: &Transaction<'_>,
    series: SeriesId,
    points: &[(i64, f64)],
    block_points: usize,
) -> Result<(), StoreError> {
    let from = floor_to(points[0].0, MINUTE_MS);
    let to = ceil_to(points[points.len() - 1].0 + 1, MINUTE_MS) - 1;
    let stored = take_blocks(tx, series, from, to)?;
    let merged = block::merge(&stored, points);
    insert_blocks(tx, series, &merged, block_points)?;
    let minutes: BTreeSet<i64> = points.iter().map(|p| floor_to(p.0, MINUTE_MS)).collect();
    recompute_minutes(tx, series, &merged, &minutes)?;
    let hours: BTreeSet<i64> = minutes.iter().map(|m| floor_to(*m, HOUR_MS)).collect();
    recompute_hours(tx, series, &hours)
}

/// Deletes a range of one series from its blocks and rollups.
pub(super) fn delete_in_blocks(
    tx: &Transaction<'_>,
    series: SeriesId,
    range: TimeRange,
    block_points: usize,
) -> Result<(), StoreError> {
    // Load whole boundary minutes: their rollups are recomputed from what remains.
    let from = floor_to(range.from, MINUTE_MS);
    let to = ceil_to(range.to, MINUTE_MS);
    let stored = take_blocks(tx, series, from, to - 1)?;
    let kept: Points = stored.into_iter().filter(|p| !range.contains(p.0)).collect();
    insert_blocks(tx, series, &kept, block_points)?;
    let mut minutes = BTreeSet::new();
    for table in ["rollup_1m", "rollup_1h"] {
        let width = if table == "rollup_1m" { MINUTE_MS } else { HOUR_MS };
        tx.execute(
            &format!("DELETE FROM {table} WHERE series = ?1 AND ts >= ?2 AND ts < ?3"),
            params![series, floor_to(range.from, width), ceil_to(range.to, width)],
        )
        .map_err(storage_error)?;
    }
    // The boundary minutes whose rows were deleted; a minute starting exactly at `to` was not.
    minutes.insert(from);
    if floor_to(range.to, MINUTE_MS) < to {
        minutes.insert(floor_to(range.to, MINUTE_MS));
    }
    recompute_minutes(tx, series, &kept, &minutes)?;
    // Boundary hours: rebuilt from the minutes that remain in them.
    let hours: BTreeSet<i64> = [floor_to(range.from, HOUR_MS), floor_to(range.to, HOUR_MS)].into();
    recompute_hours(tx, series, &hours)
}

/// The newest flushed instant and reading of a series, read from its last block.
pub(super) fn newest_in_blocks(tx: &Transaction<'_>, series: SeriesId) -> Result<Option<(i64, f64)>, StoreError> {
    let data: Option<Vec<u8>> = tx
        .prepare_cached("SELECT data FROM blocks WHERE series = ?1 ORDER BY end_ts DESC LIMIT 1")
        .and_then(|mut s| s.query_row([series], |r| r.get(0)).optional())
        .map_err(storage_error)?;
    match data {
        Some(data) => Ok(block::decode(&data)?.last().copied()),
        None => Ok(None),
    }
}

/// Visits the flushed readings of `series` in `range`, oldest first (blocks never overlap, and each is sorted),
/// until `visit` answers `Break`.
pub(super) fn visit_blocks(
    conn: &Connection,
    series: SeriesId,
    range: TimeRange,
    mut visit: impl FnMut(i64, f64) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT start_ts, data FROM blocks WHERE series = ?1 AND end_ts >= ?2 ORDER BY end_ts")
        .map_err(storage_error)?;
    let mut rows = stmt.query(params![series, range.from]).map_err(storage_error)?;
    while let Some(row) = rows.next().map_err(storage_error)? {
        let start: i64 = row.get(0).map_err(storage_error)?;
        if start >= range.to {
            break;
        }
        let data = row
            .get_ref(1)
            .map_err(storage_error)?
            .as_blob()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for (ts, value) in block::decode(data)? {
            if ts >= range.to {
                return Ok(());
            }
            if ts >= range.from && visit(ts, value).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

//! The 1-minute and 1-hour rollups (`rollup_1m`, `rollup_1h`): upserted as blocks are written, recomputed from
//! the blocks when a merge or delete changes the past, and read to aggregate a range.

use std::ops::ControlFlow;

// The store's tables, types and helpers are this module's vocabulary.
use super::*;

/// Adds readings newer than everything stored to the rollups: the first minute and hour may already hold earlier
/// readings, so rows are combined, never replaced.
pub(super) fn upsert_rollups(tx: &Transaction<'_>, series: SeriesId, points: &[(i64, f64)]) -> Result<(), StoreError> {
    let mut minutes = BucketSet::new(MINUTE_MS);
    for &(ts, value) in points {
        minutes.add_point(ts, value);
    }
    let minutes = minutes.into_buckets();
    let mut hours = BucketSet::new(HOUR_MS);
    for b in &minutes {
        hours.add(
            b.start,
            Accumulator::summary(b.start, b.count, b.sum, b.min, b.max, b.first, b.last),
        );
    }
    for (table, rows) in [("rollup_1m", minutes), ("rollup_1h", hours.into_buckets())] {
        let mut stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO {table} (series, ts, n, total, lo, hi, first, last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (series, ts) DO UPDATE SET n = n + excluded.n, total = total + excluded.total,
                     lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), last = excluded.last"
            ))
            .map_err(storage_error)?;
        for b in rows {
            stmt.execute(params![
                series,
                b.start,
                b.count as i64,
                b.sum,
                b.min,
                b.max,
                b.first,
                b.last
            ])
            .map_err(storage_error)?;
        }
    }
    Ok(())
}

/// Rebuilds the given minutes' rollups from `points`, which hold every stored reading of those minutes.
pub(super) fn recompute_minutes(
    tx: &Transaction<'_>,
    series: SeriesId,
    points: &[(i64, f64)],
    minutes: &BTreeSet<i64>,
) -> Result<(), StoreError> {
    let mut delete = tx
        .prepare_cached("DELETE FROM rollup_1m WHERE series = ?1 AND ts = ?2")
        .map_err(storage_error)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO rollup_1m (series, ts, n, total, lo, hi, first, last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(storage_error)?;
    for &minute in minutes {
        delete.execute(params![series, minute]).map_err(storage_error)?;
        let start = points.partition_point(|p| p.0 < minute);
        let end = points.partition_point(|p| p.0 < minute + MINUTE_MS);
        let mut acc: Option<Accumulator> = None;
        for &(ts, value) in &points[start..end] {
            let point = Accumulator::point(ts, value);
            match acc.as_mut() {
                Some(acc) => acc.merge(&point),
                None => acc = Some(point),
            }
        }
        if let Some(a) = acc {
            insert
                .execute(params![
                    series,
                    minute,
                    a.count as i64,
                    a.sum,
                    a.min,
                    a.max,
                    a.first.1,
                    a.last.1
                ])
                .map_err(storage_error)?;
        }
    }
    Ok(())
}

/// Rebuilds the given hours' rollups from their minute rows.
pub(super) fn recompute_hours(tx: &Transaction<'_>, series: SeriesId, hours: &BTreeSet<i64>) -> Result<(), StoreError> {
    for &hour in hours {
        tx.prepare_cached("DELETE FROM rollup_1h WHERE series = ?1 AND ts = ?2")
            .and_then(|mut s| s.execute(params![series, hour]))
            .map_err(storage_error)?;
        let mut acc: Option<Accumulator> = None;
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT ts, n, total, lo, hi, first, last FROM rollup_1m WHERE series = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts",
                )
                .map_err(storage_error)?;
            let mut rows = stmt
                .query(params![series, hour, hour + HOUR_MS])
                .map_err(storage_error)?;
            while let Some(row) = rows.next().map_err(storage_error)? {
                let piece = summary_row(row).map_err(storage_error)?;
                match acc.as_mut() {
                    Some(acc) => acc.merge(&piece),
                    None => acc = Some(piece),
                }
            }
        }
        if let Some(a) = acc {
            tx.prepare_cached(
                "INSERT INTO rollup_1h (series, ts, n, total, lo, hi, first, last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| s.execute(params![series, hour, a.count as i64, a.sum, a.min, a.max, a.first.1, a.last.1]))
            .map_err(storage_error)?;
        }
    }
    Ok(())
}

pub(super) fn summary_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Accumulator> {
    Ok(Accumulator::summary(
        row.get(0)?,
        row.get::<_, i64>(1)? as u64,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

/// Folds the flushed readings of `range` into `buckets`: the middle from the resolution's rollups, the edges that
/// do not cover a whole rollup interval from the next finer resolution.
pub(super) fn aggregate_flushed(
    conn: &Connection,
    series: SeriesId,
    range: TimeRange,
    resolution: Resolution,
    buckets: &mut BucketSet,
) -> Result<(), StoreError> {
    let (width, table, finer) = match resolution {
        Resolution::Raw => return aggregate_raw(conn, series, range, buckets),
        Resolution::Minute => (MINUTE_MS, "rollup_1m", Resolution::Raw),
        Resolution::Hour => (HOUR_MS, "rollup_1h", Resolution::Minute),
    };
    let middle_from = ceil_to(range.from, width);
    let middle_to = floor_to(range.to, width);
    if middle_from >= middle_to {
        return aggregate_flushed(conn, series, range, finer, buckets);
    }
    if range.from < middle_from {
        aggregate_flushed(
            conn,
            series,
            TimeRange {
                from: range.from,
                to: middle_from,
            },
            finer,
            buckets,
        )?;
    }
    {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT ts, n, total, lo, hi, first, last FROM {table} WHERE series = ?1 AND ts >= ?2 AND ts < ?3"
            ))
            .map_err(storage_error)?;
        let mut rows = stmt
            .query(params![series, middle_from, middle_to])
            .map_err(storage_error)?;
        while let Some(row) = rows.next().map_err(storage_error)? {
            let piece = summary_row(row).map_err(storage_error)?;
            buckets.add(piece.first.0, piece);
        }
    }
    if middle_to < range.to {
        aggregate_flushed(
            conn,
            series,
            TimeRange {
                from: middle_to,
                to: range.to,
            },
            finer,
            buckets,
        )?;
    }
    Ok(())
}

pub(super) fn aggregate_raw(
    conn: &Connection,
    series: SeriesId,
    range: TimeRange,
    buckets: &mut BucketSet,
) -> Result<(), StoreError> {
    visit_blocks(conn, series, range, |ts, value| {
        buckets.add_point(ts, value);
        ControlFlow::Continue(())
    })
}

//! When a report's time range falls: the last shift, day, week or month before the run in the report's time zone
//! (DST-correct: a day may be 23 or 25 hours), the hours up to the run, or a fixed range; and the hour or day
//! boundaries a table's rows split it at.

use app::error::AppError;
use app::reports::{Interval, Period, ReportRange};
use jiff::{civil, tz::TimeZone, Timestamp, ToSpan, Zoned};

/// The hours a shift starts at.
const SHIFT_STARTS: [i8; 3] = [6, 14, 22];

/// The zone of a report, by its IANA name, or 400 naming the field.
pub fn zone(name: &str) -> Result<TimeZone, AppError> {
    TimeZone::get(name).map_err(|_| {
        AppError::bad_request(format!(
            "{name:?} is not a time zone Gantry knows; use an IANA name such as Europe/Berlin"
        ))
        .for_field("time_zone")
    })
}

fn failed(err: jiff::Error) -> AppError {
    AppError::bad_request(format!("the report's time range cannot be worked out: {err}")).for_field("range")
}

fn ms(zoned: &Zoned) -> i64 {
    zoned.timestamp().as_millisecond()
}

/// `[from, to)` in milliseconds UTC of `range` for a run at `now_ms` in `zone`.
pub fn resolve(range: ReportRange, zone: &TimeZone, now_ms: i64) -> Result<(i64, i64), AppError> {
    let now = Timestamp::from_millisecond(now_ms)
        .map_err(failed)?
        .to_zoned(zone.clone());
    match range {
        ReportRange::Absolute { from, to } => Ok((from, to)),
        ReportRange::Hours { hours } => Ok((now_ms - i64::from(hours) * 3_600_000, now_ms)),
        ReportRange::Last { period } => {
            let (from, to) = last(period, &now)?;
            Ok((ms(&from), ms(&to)))
        }
    }
}

/// The last complete `period` before `now`, as zoned instants.
fn last(period: Period, now: &Zoned) -> Result<(Zoned, Zoned), AppError> {
    let today = now.start_of_day().map_err(failed)?;
    match period {
        Period::Day => Ok((today.checked_sub(1.day()).map_err(failed)?, today)),
        Period::Week => {
            let monday = today
                .checked_sub((i64::from(today.weekday().to_monday_zero_offset())).days())
                .map_err(failed)?;
            Ok((monday.checked_sub(1.week()).map_err(failed)?, monday))
        }
        Period::Month => {
            let first = today.first_of_month().map_err(failed)?;
            Ok((first.checked_sub(1.month()).map_err(failed)?, first))
        }
        Period::Shift => {
            // The latest shift start at or before now ends the last complete shift; the one before begins it.
            let date = now.date();
            let mut starts = Vec::new();
            for day in [date.yesterday().map_err(failed)?, date] {
                for hour in SHIFT_STARTS {
                    starts.push(at(day, hour, now.time_zone())?);
                }
            }
            let current = starts
                .iter()
                .rposition(|start| start <= now)
                .ok_or_else(AppError::internal)?;
            let end = starts[current].clone();
            let begin = match current.checked_sub(1) {
                Some(previous) => starts[previous].clone(),
                None => at(
                    date.yesterday().map_err(failed)?.yesterday().map_err(failed)?,
                    22,
                    now.time_zone(),
                )?,
            };
            Ok((begin, end))
        }
    }
}

/// `hour`:00 on `date` in `zone` (a time skipped by a DST change is taken as the first one after it).
fn at(date: civil::Date, hour: i8, zone: &TimeZone) -> Result<Zoned, AppError> {
    date.at(hour, 0, 0, 0).to_zoned(zone.clone()).map_err(failed)
}

/// The boundaries that split `[from, to)` into hours or days of `zone`, `from` and `to` included; the first and
/// last pieces may be partial.
pub fn boundaries(from: i64, to: i64, interval: Interval, zone: &TimeZone) -> Result<Vec<i64>, AppError> {
    let start = Timestamp::from_millisecond(from)
        .map_err(failed)?
        .to_zoned(zone.clone());
    let mut next = match interval {
        Interval::Hour => start
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .map_err(failed)?,
        Interval::Day => start.start_of_day().map_err(failed)?,
    };
    let mut cuts = vec![from];
    // Hours are counted in absolute time (a DST change repeats or skips a local hour), days on the calendar.
    loop {
        next = match interval {
            Interval::Hour => next.checked_add(1.hour()),
            Interval::Day => next.checked_add(1.day()),
        }
        .map_err(failed)?;
        let at = ms(&next);
        if at >= to {
            break;
        }
        if at > from {
            cuts.push(at);
        }
        if cuts.len() > 100_000 {
            return Err(
                AppError::bad_request("a table splits a report into at most 100,000 rows per asset")
                    .for_field("sections"),
            );
        }
    }
    cuts.push(to);
    Ok(cuts)
}

/// An instant as ISO 8601 with the zone's offset at that instant (`2026-03-29T03:00:00+02:00`).
pub fn iso(ms: i64, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(instant) => {
            let offset = zone.to_offset(instant);
            instant.display_with_offset(offset).to_string()
        }
        Err(_) => ms.to_string(),
    }
}

/// The zone's offsets over `[from, to)`, for a chart's time labels.
pub fn offsets(zone: &TimeZone, from: i64, to: i64) -> app::time::Offsets {
    app::time::Offsets::over(from, to, |ts| {
        Timestamp::from_millisecond(ts).map_or(0, |instant| zone.to_offset(instant).seconds() / 60)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn last_periods_are_whole_calendar_periods_of_the_zone() {
        // 2026-03-30 10:00 in Berlin (UTC+2): the day before the DST change had 23 hours.
        let now = utc_ms("2026-03-30T08:00:00Z");
        let day = resolve(ReportRange::Last { period: Period::Day }, &berlin(), now).unwrap();
        assert_eq!(day, (utc_ms("2026-03-28T23:00:00Z"), utc_ms("2026-03-29T22:00:00Z")));
        assert_eq!(day.1 - day.0, 23 * 3_600_000);
        let week = resolve(ReportRange::Last { period: Period::Week }, &berlin(), now).unwrap();
        assert_eq!(week, (utc_ms("2026-03-22T23:00:00Z"), utc_ms("2026-03-29T22:00:00Z")));
        let month = resolve(ReportRange::Last { period: Period::Month }, &berlin(), now).unwrap();
        assert_eq!(
            month,
            (utc_ms("2026-01-31T23:00:00Z"), utc_ms("2026-02-28T23:00:00Z")),
            "February"
        );
    }

    #[test]
    fn the_last_shift_ends_at_the_latest_shift_start() {
        let shift = |now: &str| resolve(ReportRange::Last { period: Period::Shift }, &berlin(), utc_ms(now)).unwrap();
        // 15:30 in Berlin (UTC+1 in winter): the morning shift, 06:00 to 14:00.
        assert_eq!(
            shift("2026-12-03T14:30:00Z"),
            (utc_ms("2026-12-03T05:00:00Z"), utc_ms("2026-12-03T13:00:00Z"))
        );
        // 03:00: last night's shift began yesterday at 14:00 and ended at 22:00.
        assert_eq!(
            shift("2026-12-03T02:00:00Z"),
            (utc_ms("2026-12-02T13:00:00Z"), utc_ms("2026-12-02T21:00:00Z"))
        );
        // 06:30: the night shift, 22:00 to 06:00.
        assert_eq!(
            shift("2026-12-03T05:30:00Z"),
            (utc_ms("2026-12-02T21:00:00Z"), utc_ms("2026-12-03T05:00:00Z"))
        );
    }

    #[test]
    fn days_split_at_local_midnight_and_hours_in_absolute_time() {
        let zone = berlin();
        let (from, to) = (utc_ms("2026-03-28T23:00:00Z"), utc_ms("2026-03-30T22:00:00Z"));
        let days = boundaries(from, to, Interval::Day, &zone).unwrap();
        assert_eq!(days, vec![from, utc_ms("2026-03-29T22:00:00Z"), to]);
        let hours = boundaries(from, utc_ms("2026-03-29T03:00:00Z"), Interval::Hour, &zone).unwrap();
        assert_eq!(hours.len(), 5, "four whole hours across the change: {hours:?}");
        // A range that starts mid-hour gets a partial first row.
        let partial = boundaries(
            utc_ms("2026-12-03T10:30:00Z"),
            utc_ms("2026-12-03T12:00:00Z"),
            Interval::Hour,
            &zone,
        )
        .unwrap();
        assert_eq!(
            partial,
            vec![
                utc_ms("2026-12-03T10:30:00Z"),
                utc_ms("2026-12-03T11:00:00Z"),
                utc_ms("2026-12-03T12:00:00Z")
            ]
        );
        assert_eq!(iso(from, &zone), "2026-03-29T00:00:00+01:00");
        assert_eq!(iso(utc_ms("2026-03-29T22:00:00Z"), &zone), "2026-03-30T00:00:00+02:00");
    }
}

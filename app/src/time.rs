//! Instants as people read them. Gantry keeps every instant as milliseconds UTC; this leaf module turns them into
//! calendar text in the zone the reader chose (their account's setting, else the browser's own), DST-correct.
//!
//! Server renders show UTC (the server cannot know the browser's zone); once the page has hydrated, the browser
//! switches every shown instant to the reader's zone ([`show_zone`]), formatting with the browser's own time-zone
//! database (`Intl.DateTimeFormat`), so the bundle carries none. Charts get the zone's offsets over their range
//! ([`Offsets`]), so ticks stay on round local times across a DST change.

use leptos::prelude::*;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A zone's offsets from UTC (minutes) over a range: entries (from instant, offset), sorted; the offset at an
/// instant is that of the last entry at or before it (the first entry's before all of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Offsets(Vec<(i64, i32)>);

impl Default for Offsets {
    fn default() -> Self {
        Offsets::fixed(0)
    }
}

impl Offsets {
    /// One offset everywhere (0: UTC).
    pub fn fixed(minutes: i32) -> Offsets {
        Offsets(vec![(i64::MIN, minutes)])
    }

    /// The offsets of a zone over `[from, to]`, given the zone's offset at any instant (`exact`). Zones change
    /// their offset a few times a year at most, never twice within hours: sampled every six hours (coarser for
    /// spans over a decade), each change is then found to the second by bisection.
    pub fn over(from: i64, to: i64, exact: impl Fn(i64) -> i32) -> Offsets {
        const SIX_HOURS: i64 = 6 * 3_600_000;
        let from = from.clamp(crate::timeseries::EARLIEST_MS, crate::timeseries::LATEST_MS);
        let to = to.clamp(from, crate::timeseries::LATEST_MS);
        let step = SIX_HOURS.max((to - from) / 20_000);
        let mut entries = vec![(i64::MIN, exact(from))];
        let mut at = from;
        while at < to {
            let next = (at + step).min(to);
            let (before, after) = (exact(at), exact(next));
            if before != after {
                // The change lies in (at, next]: narrow it to the first second with the new offset.
                let (mut lo, mut hi) = (at, next);
                while hi - lo > 1000 {
                    let mid = lo + (hi - lo) / 2;
                    if exact(mid) == before {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                entries.push((hi - hi.rem_euclid(1000), after));
            }
            at = next;
        }
        Offsets(entries)
    }

    /// The offset at `ts`, in minutes.
    pub fn at(&self, ts: i64) -> i32 {
        let after = self.0.partition_point(|(start, _)| *start <= ts);
        self.0[after.saturating_sub(1)].1
    }

    /// The instant at which the local clock reads `local` (ms since 1970 on the local calendar): the later reading
    /// when the clock passes it twice; when it skips it, the time read with the offset before the jump (02:30 on a
    /// spring-forward night is 03:30), as RFC 5545 and jiff's `compatible` choice do.
    pub fn instant_of(&self, local: i64) -> i64 {
        let reads = |ts: i64| ts.saturating_add(i64::from(self.at(ts)) * 60_000);
        let first = local.saturating_sub(i64::from(self.at(local)) * 60_000);
        let first = local.saturating_sub(i64::from(self.at(first)) * 60_000);
        if reads(first) == local {
            return first;
        }
        let second = local.saturating_sub(i64::from(self.at(first)) * 60_000);
        if reads(second) == local {
            return second;
        }
        first.max(second)
    }
}

/// An instant as `YYYY-MM-DD HH:MM:SS` at an offset from UTC (the chart's hover readout).
pub fn instant_text(ts: i64, utc_offset_minutes: i32) -> String {
    let local = ts + i64::from(utc_offset_minutes) * 60_000;
    let (year, month, day) = civil_from_days(local.div_euclid(86_400_000));
    let seconds = local.rem_euclid(86_400_000) / 1000;
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `1795323732032` → `2026-11-22 05:02:12 UTC`.
pub fn format_utc(ms: i64) -> String {
    format!("{} UTC", instant_text(ms, 0))
}

/// The zone the pages show instants in: `None` is UTC (server renders, and the browser until it knows the zone).
#[derive(Clone, Copy)]
struct ShownZone(RwSignal<Option<String>>);

/// Provides the shown zone to every page (the app's root calls this once).
pub fn provide_shown_zone() {
    provide_context(ShownZone(RwSignal::new(None)));
}

/// The zone instants are shown in (tracked, so text that reads it follows a change), `None` for UTC.
pub fn shown_zone() -> Option<String> {
    use_context::<ShownZone>().and_then(|zone| zone.0.get())
}

/// Switches every shown instant to `setting` (the reader's account setting) or, without one, the browser's own
/// zone. Only the browser does this, once the page has hydrated (see [`hydration_finished`]); server renders stay
/// in UTC.
pub fn show_zone(setting: Option<String>) {
    #[cfg(feature = "hydrate")]
    if let Some(zone) = use_context::<ShownZone>() {
        let chosen = setting
            .filter(|name| intl::formatter(name).is_some())
            .or_else(intl::browser_zone);
        hydration::switch_when_hydrated(zone.0, chosen);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = setting;
}

/// Tells the zone switch that the whole page has hydrated (the frontend calls it). Until then a switch waits: a
/// lazy route hydrates only once its chunk has arrived, and hydration keeps the server's text as it finds it, so a
/// zone set before would leave that page's times in UTC.
#[cfg(feature = "hydrate")]
pub fn hydration_finished() {
    hydration::finished();
}

#[cfg(feature = "hydrate")]
mod hydration {
    use std::cell::{Cell, RefCell};

    use leptos::prelude::*;

    /// The shown zone's signal and the zone it is to switch to.
    type Switch = (RwSignal<Option<String>>, Option<String>);

    thread_local! {
        static DONE: Cell<bool> = const { Cell::new(false) };
        static PENDING: RefCell<Option<Switch>> = const { RefCell::new(None) };
    }

    pub fn switch_when_hydrated(zone: RwSignal<Option<String>>, chosen: Option<String>) {
        if DONE.get() {
            if zone.get_untracked() != chosen {
                zone.set(chosen);
            }
        } else {
            PENDING.set(Some((zone, chosen)));
        }
    }

    pub fn finished() {
        DONE.set(true);
        if let Some((zone, chosen)) = PENDING.take() {
            switch_when_hydrated(zone, chosen);
        }
    }
}

/// The browser's own zone (`Europe/Berlin`), for forms that offer it; none on the server.
pub fn browser_zone() -> Option<String> {
    #[cfg(feature = "hydrate")]
    return intl::browser_zone();
    #[cfg(not(feature = "hydrate"))]
    None
}

/// An instant as text in the shown zone: `2026-11-22 06:02:12 CET`, or `… UTC`. Call it inside a closure in a
/// view, so the text follows the zone once the browser knows it.
pub fn shown_time(ms: i64) -> String {
    match shown_zone() {
        #[cfg(feature = "hydrate")]
        Some(zone) => intl::format(ms, &zone).unwrap_or_else(|| format_utc(ms)),
        _ => format_utc(ms),
    }
}

/// [`shown_time`] as view text that follows the zone. One concrete type for every page's times, so the bundle
/// holds one copy of the code that renders them.
pub fn shown(ms: i64) -> Signal<String> {
    Signal::derive(move || shown_time(ms))
}

/// [`shown`], or `none` when there is no instant.
pub fn shown_or(ms: Option<i64>, none: &'static str) -> Signal<String> {
    Signal::derive(move || ms.map_or_else(|| none.to_string(), shown_time))
}

/// The shown zone's offsets over `[from, to]` (a chart's range); UTC without one.
pub fn shown_offsets(from: i64, to: i64) -> Offsets {
    match shown_zone() {
        #[cfg(feature = "hydrate")]
        Some(zone) if intl::formatter(&zone).is_some() => {
            Offsets::over(from, to, |ts| intl::offset_minutes(ts, &zone).unwrap_or(0))
        }
        _ => {
            let _ = (from, to);
            Offsets::fixed(0)
        }
    }
}

/// A `datetime-local` input's value (`2026-03-29T03:30`, seconds optional) read in the shown zone, as ms UTC.
pub fn parse_shown_local(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    // Whole numbers only (a fraction of a second is dropped): the bundle then needs no float parser.
    let mut clock = time
        .splitn(3, ':')
        .map(|part| part.split('.').next().unwrap_or("").parse::<i64>());
    let hour = clock.next()?.ok()?;
    let minute = clock.next()?.ok()?;
    let second = clock.next().map_or(Some(0), Result::ok)?;
    let valid = (1970..=2200).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    if !valid {
        return None;
    }
    let local = days_from_civil(year, month as u32, day as u32) * 86_400_000
        + hour * 3_600_000
        + minute * 60_000
        + second * 1000;
    Some(shown_offsets(local - 86_400_000, local + 86_400_000).instant_of(local))
}

/// The browser's time-zone database, through `Intl.DateTimeFormat` (one formatter per zone, kept).
#[cfg(feature = "hydrate")]
mod intl {
    use std::cell::RefCell;

    use js_sys::{Array, Intl::DateTimeFormat, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    thread_local! {
        static FORMATTERS: RefCell<Vec<(String, Option<DateTimeFormat>)>> = const { RefCell::new(Vec::new()) };
    }

    /// A formatter of `zone` giving numeric parts on a 24-hour clock and the zone's short name; none when the
    /// browser does not know the zone (the constructor throws, which `Reflect::construct` catches).
    pub fn formatter(zone: &str) -> Option<DateTimeFormat> {
        FORMATTERS.with(|cache| {
            if let Some((_, known)) = cache.borrow().iter().find(|(name, _)| name == zone) {
                return known.clone();
            }
            let made = (|| {
                let options = Object::new();
                for (key, value) in [
                    ("timeZone", zone),
                    ("hourCycle", "h23"),
                    ("year", "numeric"),
                    ("month", "numeric"),
                    ("day", "numeric"),
                    ("hour", "numeric"),
                    ("minute", "numeric"),
                    ("second", "numeric"),
                    ("timeZoneName", "short"),
                ] {
                    Reflect::set(&options, &key.into(), &value.into()).ok()?;
                }
                let constructor = Reflect::get(&js_sys::global(), &"Intl".into())
                    .and_then(|intl| Reflect::get(&intl, &"DateTimeFormat".into()))
                    .ok()?;
                let arguments = Array::of2(&JsValue::from_str("en-US"), &options);
                Reflect::construct(constructor.unchecked_ref::<js_sys::Function>(), &arguments)
                    .ok()?
                    .dyn_into::<DateTimeFormat>()
                    .ok()
            })();
            cache.borrow_mut().push((zone.to_string(), made.clone()));
            made
        })
    }

    /// (year, month, day, hour, minute, second, zone name) of an instant in `zone`.
    fn parts(ms: i64, zone: &str) -> Option<(i64, u32, u32, u32, u32, u32, String)> {
        let formatter = formatter(zone)?;
        let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
        let mut fields = (0i64, 0u32, 0u32, 0u32, 0u32, 0u32, String::new());
        for part in formatter.format_to_parts(&date).iter() {
            let kind = Reflect::get(&part, &"type".into()).ok()?.as_string()?;
            let value = Reflect::get(&part, &"value".into()).ok()?.as_string()?;
            let number = || value.parse::<u32>().ok();
            match kind.as_str() {
                "year" => fields.0 = value.parse().ok()?,
                "month" => fields.1 = number()?,
                "day" => fields.2 = number()?,
                "hour" => fields.3 = number()?,
                "minute" => fields.4 = number()?,
                "second" => fields.5 = number()?,
                "timeZoneName" => fields.6 = value,
                _ => {}
            }
        }
        Some(fields)
    }

    pub fn format(ms: i64, zone: &str) -> Option<String> {
        let (year, month, day, hour, minute, second, name) = parts(ms, zone)?;
        Some(format!(
            "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} {name}"
        ))
    }

    pub fn offset_minutes(ms: i64, zone: &str) -> Option<i32> {
        let (year, month, day, hour, minute, second, _) = parts(ms, zone)?;
        let local = super::days_from_civil(year, month, day) * 86_400_000
            + i64::from(hour) * 3_600_000
            + i64::from(minute) * 60_000
            + i64::from(second) * 1000;
        Some(((local - (ms - ms.rem_euclid(1000))) / 60_000) as i32)
    }

    pub fn browser_zone() -> Option<String> {
        let options = DateTimeFormat::new(&Array::new(), &Object::new()).resolved_options();
        Reflect::get(&options, &"timeZone".into()).ok()?.as_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(instant_text(1_767_225_600_000 + 3_723_000, 60), "2026-01-01 02:02:03");
    }

    #[test]
    fn utc_times_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_795_323_732_032), "2026-11-22 05:02:12 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn local_inputs_read_in_utc_without_a_zone() {
        assert_eq!(parse_shown_local("2026-01-01T00:00"), Some(1_767_225_600_000));
        assert_eq!(
            parse_shown_local("2026-01-01T01:02:03"),
            Some(1_767_225_600_000 + 3_723_000)
        );
        assert_eq!(parse_shown_local("2026-13-01T00:00"), None);
        assert_eq!(parse_shown_local("yesterday"), None);
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [-800_000, -1, 0, 1, 59, 60, 11_016, 20_454, 103_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
        }
    }

    /// Europe/Berlin in 2026: UTC+1, UTC+2 from 2026-03-29 01:00 UTC to 2026-10-25 01:00 UTC.
    fn berlin(ts: i64) -> i32 {
        const SPRING: i64 = 1_774_746_000_000;
        const AUTUMN: i64 = 1_792_890_000_000;
        if (SPRING..AUTUMN).contains(&ts) {
            120
        } else {
            60
        }
    }

    #[test]
    fn offsets_find_each_change_to_the_second() {
        let from = 1_767_225_600_000; // 2026-01-01
        let offsets = Offsets::over(from, from + 365 * 86_400_000, berlin);
        assert_eq!(offsets.0.len(), 3, "{offsets:?}");
        assert_eq!(offsets.0[1], (1_774_746_000_000, 120));
        assert_eq!(offsets.0[2], (1_792_890_000_000, 60));
        for ts in [
            from,
            1_774_745_999_000,
            1_774_746_000_000,
            1_780_000_000_000,
            1_792_890_000_000,
        ] {
            assert_eq!(offsets.at(ts), berlin(ts), "{ts}");
        }
        assert_eq!(Offsets::fixed(-300).at(0), -300);
        // 2026-03-29 03:30 local (after the jump) is 01:30 UTC.
        let local = days_from_civil(2026, 3, 29) * 86_400_000 + 3 * 3_600_000 + 1_800_000;
        assert_eq!(offsets.instant_of(local), local - 120 * 60_000);
        // 02:30 that day is skipped: read with the offset before the jump, 01:30 UTC (which reads 03:30).
        assert_eq!(offsets.instant_of(local - 3_600_000), 1_774_747_800_000);
        // 2026-10-25 02:30 local is read twice; the later reading is 01:30 UTC.
        let twice = days_from_civil(2026, 10, 25) * 86_400_000 + 2 * 3_600_000 + 1_800_000;
        assert_eq!(offsets.instant_of(twice), 1_792_890_000_000 + 1_800_000);
    }
}

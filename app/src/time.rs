//! Instants as people read them. Gantry keeps every instant as milliseconds UTC; this leaf module turns them into
//! calendar text (UTC, or at the offset the chart is drawn in), for every area's pages.

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
}

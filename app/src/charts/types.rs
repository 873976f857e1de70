//! What a trend is, shared by the browser and the server: which series (an asset path and an attribute), which
//! range (a preset such as "last 24 h" or two instants), the answer with each series' readings at the resolution
//! the server chose, and the trend's address (`/trends?s=…&range=…`), which carries all of it.

use serde::{Deserialize, Serialize};

use crate::alarms::Severity;
use crate::assets::Limits;
use crate::timeseries::{Point, Resolution, SeriesData};

/// At most this many series in one trend.
pub const MAX_TREND_SERIES: usize = 12;
/// A chart narrower or wider than this is refused (the server asks the store for one value per pixel).
pub const MIN_CHART_WIDTH: u32 = 100;
pub const MAX_CHART_WIDTH: u32 = 4000;

/// One series of a trend: an attribute of the asset at a path. Written `path|attribute` in addresses, as PI
/// writes attribute references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesRef {
    pub asset: String,
    pub attribute: String,
}

impl SeriesRef {
    pub fn new(asset: impl Into<String>, attribute: impl Into<String>) -> Self {
        SeriesRef {
            asset: asset.into(),
            attribute: attribute.into(),
        }
    }

    /// Reads `path|attribute`; the attribute follows the last `|`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.rsplit_once('|') {
            Some((asset, attribute)) if !asset.trim().is_empty() && !attribute.trim().is_empty() => {
                Ok(SeriesRef::new(asset.trim(), attribute.trim()))
            }
            _ => Err(format!(
                "a series is written `asset path|attribute`, such as `/Plant/Pump 1|Flow`, not {text:?}"
            )),
        }
    }
}

impl std::fmt::Display for SeriesRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}", self.asset, self.attribute)
    }
}

/// The preset ranges of the range picker, each ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RangePreset {
    Hour,
    EightHours,
    Day,
    Week,
    Month,
    Year,
}

impl RangePreset {
    pub const ALL: [RangePreset; 6] = [
        RangePreset::Hour,
        RangePreset::EightHours,
        RangePreset::Day,
        RangePreset::Week,
        RangePreset::Month,
        RangePreset::Year,
    ];

    /// The key in addresses and the picker's label.
    pub fn key(self) -> &'static str {
        match self {
            RangePreset::Hour => "1h",
            RangePreset::EightHours => "8h",
            RangePreset::Day => "24h",
            RangePreset::Week => "7d",
            RangePreset::Month => "30d",
            RangePreset::Year => "1y",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        RangePreset::ALL.into_iter().find(|p| p.key() == key)
    }

    pub fn span_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            RangePreset::Hour => HOUR,
            RangePreset::EightHours => 8 * HOUR,
            RangePreset::Day => 24 * HOUR,
            RangePreset::Week => 7 * 24 * HOUR,
            RangePreset::Month => 30 * 24 * HOUR,
            RangePreset::Year => 365 * 24 * HOUR,
        }
    }
}

/// The range a chart shows: a preset ending now (which follows live readings), or two instants (after a zoom, a
/// pan or a custom pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChartRange {
    Last(RangePreset),
    Between { from: i64, to: i64 },
}

impl Default for ChartRange {
    fn default() -> Self {
        ChartRange::Last(RangePreset::Day)
    }
}

/// The shortest range a zoom can reach.
pub const MIN_RANGE_MS: i64 = 10_000;

impl ChartRange {
    /// `[from, to)` in ms UTC at `now`.
    pub fn resolve(self, now: i64) -> (i64, i64) {
        match self {
            ChartRange::Last(preset) => (now - preset.span_ms(), now),
            ChartRange::Between { from, to } => (from, to),
        }
    }

    pub fn is_live(self) -> bool {
        matches!(self, ChartRange::Last(_))
    }

    /// Two instants, in order and at least [`MIN_RANGE_MS`] apart (a zoom narrower than that keeps its middle).
    pub fn between(a: i64, b: i64) -> Self {
        let (from, to) = (a.min(b), a.max(b));
        if to - from >= MIN_RANGE_MS {
            return ChartRange::Between { from, to };
        }
        let middle = from + (to - from) / 2;
        ChartRange::Between {
            from: middle - MIN_RANGE_MS / 2,
            to: middle + MIN_RANGE_MS / 2,
        }
    }

    /// The same span moved by `fraction` of itself (negative: back in time), kept inside Gantry's window of
    /// instants.
    pub fn panned(self, now: i64, fraction: f64) -> Self {
        use crate::timeseries::{EARLIEST_MS, LATEST_MS};
        let (from, to) = self.resolve(now);
        let span = to.saturating_sub(from).clamp(0, LATEST_MS - EARLIEST_MS);
        let shift = (span as f64 * fraction) as i64;
        let from = from.saturating_add(shift).clamp(EARLIEST_MS, LATEST_MS - span);
        ChartRange::Between { from, to: from + span }
    }

    /// The query parameters that carry it: `range=24h`, or `from=…&to=…` in ms.
    pub fn query_pairs(self) -> Vec<(&'static str, String)> {
        match self {
            ChartRange::Last(preset) => vec![("range", preset.key().to_string())],
            ChartRange::Between { from, to } => vec![("from", from.to_string()), ("to", to.to_string())],
        }
    }

    /// Reads what [`ChartRange::query_pairs`] wrote; anything else (instants outside Gantry's window among them)
    /// is the default range.
    pub fn from_query(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> Self {
        let instant = |text: Option<&str>| {
            text.and_then(|t| t.parse().ok())
                .filter(|ts| crate::timeseries::check_instant(*ts, "").is_ok())
        };
        if let (Some(from), Some(to)) = (instant(from), instant(to)) {
            if from < to {
                return ChartRange::Between { from, to };
            }
        }
        range
            .and_then(RangePreset::from_key)
            .map(ChartRange::Last)
            .unwrap_or_default()
    }
}

/// What a chart asks for: the series, the range and its plot's width in pixels (the server picks the resolution
/// so that no series has more than about two values per pixel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendQuery {
    pub series: Vec<SeriesRef>,
    pub from: i64,
    pub to: i64,
    pub width: u32,
}

impl TrendQuery {
    pub fn validate(&self) -> Result<(), String> {
        if self.series.is_empty() {
            return Err("name at least one series (`s=asset path|attribute`)".into());
        }
        if self.series.len() > MAX_TREND_SERIES {
            return Err(format!(
                "at most {MAX_TREND_SERIES} series in one trend, not {}",
                self.series.len()
            ));
        }
        crate::timeseries::check_instant(self.from, "from")?;
        crate::timeseries::check_instant(self.to, "to")?;
        if self.from >= self.to {
            return Err(format!("`from` ({}) must be before `to` ({})", self.from, self.to));
        }
        if !(MIN_CHART_WIDTH..=MAX_CHART_WIDTH).contains(&self.width) {
            return Err(format!(
                "`width` must be between {MIN_CHART_WIDTH} and {MAX_CHART_WIDTH} pixels, not {}",
                self.width
            ));
        }
        Ok(())
    }
}

/// One series of a trend as the server answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TrendSeries {
    pub asset_id: i64,
    pub asset_path: String,
    pub attribute: String,
    pub unit: Option<String>,
    pub limits: Limits,
    /// The readings, raw or aggregated; live readings are appended to them in the browser.
    pub data: SeriesData,
}

impl TrendSeries {
    /// The legend's name: the asset's own name and the attribute.
    pub fn label(&self) -> String {
        let asset = self.asset_path.rsplit('/').next().unwrap_or(&self.asset_path);
        format!("{asset} · {}", self.attribute)
    }

    /// Appends a live reading (later than what is there) without refetching: as a point to raw data, as a bucket
    /// of one reading to aggregated data.
    pub fn append(&mut self, point: Point) {
        let data = &mut self.data;
        if data.buckets.is_empty() {
            if data.points.last().is_none_or(|last| last.ts < point.ts) {
                data.points.push(point);
            }
        } else if data.buckets.last().is_some_and(|last| last.start < point.ts) {
            data.buckets.push(crate::timeseries::Bucket {
                start: point.ts,
                count: 1,
                sum: point.value,
                min: point.value,
                max: point.value,
                first: point.value,
                last: point.value,
            });
        }
        data.to = data.to.max(point.ts + 1);
    }
}

/// An alarm occurrence drawn on a trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AlarmMarker {
    /// The index of the series in [`Trend::series`].
    pub series: usize,
    pub alarm_id: i64,
    pub severity: Severity,
    pub started_at: i64,
    /// Absent while the alarm is active.
    pub ended_at: Option<i64>,
    pub message: String,
}

/// The answer to a [`TrendQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Trend {
    pub from: i64,
    pub to: i64,
    pub series: Vec<TrendSeries>,
    pub alarms: Vec<AlarmMarker>,
}

impl Trend {
    /// The coarsest resolution any series is shown at, and a sentence saying so.
    pub fn resolution_text(&self) -> String {
        let coarsest = self
            .series
            .iter()
            .map(|s| (s.data.resolution, s.data.bucket_ms))
            .max_by_key(|(_, bucket)| bucket.unwrap_or(0));
        match coarsest {
            None | Some((Resolution::Raw, None)) => "raw readings".into(),
            Some((resolution, bucket)) => {
                let tier = match resolution {
                    Resolution::Raw => "raw readings",
                    Resolution::Minute => "1-minute rollups",
                    Resolution::Hour => "1-hour rollups",
                };
                match bucket {
                    Some(ms) => format!("{} averages (min–max shaded), from {tier}", duration_text(ms)),
                    None => tier.into(),
                }
            }
        }
    }
}

/// A span as people say it: `90 s`, `5 min`, `2 h`, `1 d`.
pub fn duration_text(ms: i64) -> String {
    const S: i64 = 1000;
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{} d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms if ms % S == 0 => format!("{} s", ms / S),
        ms => format!("{ms} ms"),
    }
}

/// A query string from pairs, values encoded.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", crate::shell::percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The address of a trend on the Trends page.
pub fn trend_href(series: &[SeriesRef], range: ChartRange) -> String {
    let mut pairs: Vec<(&str, String)> = series.iter().map(|s| ("s", s.to_string())).collect();
    pairs.extend(range.query_pairs());
    format!("/trends?{}", query_string(&pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_refs_round_trip_through_their_text_and_split_at_the_last_bar() {
        let series = SeriesRef::parse("/Plant/Line|2/Pump 1|Flow").unwrap();
        assert_eq!(series.asset, "/Plant/Line|2/Pump 1");
        assert_eq!(series.attribute, "Flow");
        assert_eq!(SeriesRef::parse(&series.to_string()).unwrap(), series);
        assert!(SeriesRef::parse("/Plant/Pump")
            .unwrap_err()
            .contains("asset path|attribute"));
        assert!(SeriesRef::parse("/Plant/Pump|").is_err());
    }

    #[test]
    fn ranges_round_trip_through_the_query_and_fall_back_to_a_day() {
        for range in [
            ChartRange::Last(RangePreset::Week),
            ChartRange::Between { from: 5, to: 90_000 },
        ] {
            let pairs = range.query_pairs();
            let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
            assert_eq!(ChartRange::from_query(get("range"), get("from"), get("to")), range);
        }
        assert_eq!(
            ChartRange::from_query(Some("2w"), None, None),
            ChartRange::Last(RangePreset::Day)
        );
        assert_eq!(
            ChartRange::from_query(None, Some("9"), Some("3")),
            ChartRange::Last(RangePreset::Day),
            "a reversed range is not a range"
        );
    }

    #[test]
    fn zooms_keep_a_minimum_span_and_pans_move_by_a_fraction() {
        assert_eq!(
            ChartRange::between(9_000, 1_000),
            ChartRange::Between { from: 0, to: 10_000 }
        );
        assert_eq!(
            ChartRange::between(30_000, 1_000),
            ChartRange::Between {
                from: 1_000,
                to: 30_000
            }
        );
        assert_eq!(
            ChartRange::Last(RangePreset::Hour).panned(7_200_000, -0.5),
            ChartRange::Between {
                from: 1_800_000,
                to: 5_400_000
            }
        );
        // Panning stops at the edges of the instants Gantry keeps, with the span unchanged.
        assert_eq!(
            ChartRange::Last(RangePreset::Hour).panned(3_600_000, -0.5),
            ChartRange::Between { from: 0, to: 3_600_000 }
        );
        let last = crate::timeseries::LATEST_MS;
        assert_eq!(
            ChartRange::Between { from: 0, to: last }.panned(0, 0.5),
            ChartRange::Between { from: 0, to: last }
        );
    }

    #[test]
    fn addresses_with_instants_outside_the_window_fall_back_to_a_day() {
        for (from, to) in [
            ("-9223372036854775808", "9223372036854775807"),
            ("-1", "1000"),
            ("0", "7258118400001"),
        ] {
            assert_eq!(
                ChartRange::from_query(None, Some(from), Some(to)),
                ChartRange::Last(RangePreset::Day),
                "{from}..{to}"
            );
        }
        let query = |from, to| TrendQuery {
            series: vec![SeriesRef::new("/a", "b")],
            from,
            to,
            width: 800,
        };
        assert!(query(i64::MIN, i64::MAX)
            .validate()
            .unwrap_err()
            .contains("outside the instants"));
        assert!(query(0, crate::timeseries::LATEST_MS).validate().is_ok());
    }

    #[test]
    fn trend_addresses_encode_paths_and_bars() {
        let href = trend_href(
            &[SeriesRef::new("/Plant/Pump 1", "Flow")],
            ChartRange::Last(RangePreset::Hour),
        );
        assert_eq!(href, "/trends?s=%2FPlant%2FPump%201%7CFlow&range=1h");
    }

    #[test]
    fn the_resolution_is_named_from_the_coarsest_series() {
        let series = |resolution, bucket_ms| TrendSeries {
            asset_id: 1,
            asset_path: "/P/A".into(),
            attribute: "x".into(),
            unit: None,
            limits: Limits::default(),
            data: SeriesData {
                asset_id: 1,
                attribute: "x".into(),
                unit: None,
                from: 0,
                to: 1,
                resolution,
                bucket_ms,
                points: vec![],
                buckets: vec![],
            },
        };
        let mut trend = Trend {
            from: 0,
            to: 1,
            series: vec![series(Resolution::Raw, None)],
            alarms: vec![],
        };
        assert_eq!(trend.resolution_text(), "raw readings");
        trend.series.push(series(Resolution::Minute, Some(120_000)));
        assert_eq!(
            trend.resolution_text(),
            "2 min averages (min–max shaded), from 1-minute rollups"
        );
    }
}

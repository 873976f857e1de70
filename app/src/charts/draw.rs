//! The trend chart's drawing: one routine, generic over plotters' `DrawingBackend`, that the browser runs on a
//! `<canvas>` and the server on SVG and PNG, so a shared link, a report and the live page show the same picture.
//!
//! The layout is computed here too ([`Layout`]): the browser maps mouse positions to instants with it (zoom by
//! dragging, the hover readout), so drawing and interaction cannot disagree about where a time is.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::types::Trend;
use crate::alarms::Severity;
use crate::assets::Limits;
use crate::time::Offsets;
use crate::timeseries::{Bucket, Point};

/// The series colours, in order (a colour-blind-safe palette); the browser test looks for the first one.
pub const SERIES_COLORS: [(u8, u8, u8); 8] = [
    (0x1f, 0x77, 0xb4),
    (0xd6, 0x27, 0x28),
    (0x2c, 0xa0, 0x2c),
    (0x94, 0x67, 0xbd),
    (0xff, 0x7f, 0x0e),
    (0x17, 0xbe, 0xcf),
    (0x8c, 0x56, 0x4b),
    (0xe3, 0x77, 0xc2),
];

/// Limit bands: HiHi/LoLo zones red, Hi/Lo zones amber, both see-through so the series stay readable.
pub const ALARM_ZONE: (u8, u8, u8) = (0xdc, 0x26, 0x26);
pub const WARNING_ZONE: (u8, u8, u8) = (0xf5, 0x9e, 0x0b);
pub const ZONE_ALPHA: f64 = 0.14;

const TEXT: RGBColor = RGBColor(0x37, 0x41, 0x51);
const GRID: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);
const FRAME: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);

pub fn severity_color(severity: Severity) -> RGBColor {
    match severity {
        Severity::Critical => RGBColor(0xb9, 0x1c, 0x1c),
        Severity::High => RGBColor(0xea, 0x58, 0x0c),
        Severity::Medium => RGBColor(0xca, 0x8a, 0x04),
        Severity::Low => RGBColor(0x25, 0x63, 0xeb),
    }
}

fn series_color(index: usize) -> RGBColor {
    let (r, g, b) = SERIES_COLORS[index % SERIES_COLORS.len()];
    RGBColor(r, g, b)
}

/// Where the plot sits in the picture and which instants its edges are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// The plot's edges in pixels: left, right (exclusive), top, bottom (exclusive).
    pub left: i32,
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
    pub from: i64,
    pub to: i64,
}

/// Room for the left axis' labels.
pub const LEFT_MARGIN: i32 = 64;
/// Room for a second unit's axis on the right; without one, a little air.
const RIGHT_AXIS_MARGIN: i32 = 64;
const RIGHT_MARGIN: i32 = 16;
/// The strip above the plot for the units and alarm markers.
const TOP_MARGIN: i32 = 26;
/// Time labels and the legend below the plot.
const BOTTOM_MARGIN: i32 = 46;

impl Layout {
    pub fn new(width: u32, height: u32, from: i64, to: i64, right_axis: bool) -> Self {
        let right_margin = if right_axis { RIGHT_AXIS_MARGIN } else { RIGHT_MARGIN };
        Layout {
            width,
            height,
            left: LEFT_MARGIN,
            right: (width as i32 - right_margin).max(LEFT_MARGIN + 10),
            top: TOP_MARGIN,
            bottom: (height as i32 - BOTTOM_MARGIN).max(TOP_MARGIN + 10),
            from,
            to: to.max(from + 1),
        }
    }

    /// The layout a trend is drawn with.
    pub fn of(trend: &Trend, width: u32, height: u32) -> Self {
        let right_axis = unit_groups(trend).len() > 1;
        Layout::new(width, height, trend.from, trend.to, right_axis)
    }

    pub fn plot_width(&self) -> i32 {
        self.right - self.left
    }

    pub fn x_of(&self, ts: i64) -> i32 {
        let fraction = (ts - self.from) as f64 / (self.to - self.from) as f64;
        self.left + (fraction * f64::from(self.plot_width())).round() as i32
    }

    /// The instant at pixel column `x`, clamped to the plot.
    pub fn ts_of(&self, x: f64) -> i64 {
        let fraction = ((x - f64::from(self.left)) / f64::from(self.plot_width())).clamp(0.0, 1.0);
        self.from + (fraction * (self.to - self.from) as f64).round() as i64
    }

    pub fn in_plot(&self, x: f64, y: f64) -> bool {
        x >= f64::from(self.left) && x < f64::from(self.right) && y >= f64::from(self.top) && y < f64::from(self.bottom)
    }
}

/// The series of each unit, in order of first appearance: one value axis per unit.
pub fn unit_groups(trend: &Trend) -> Vec<(Option<String>, Vec<usize>)> {
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (index, series) in trend.series.iter().enumerate() {
        match groups.iter_mut().find(|(unit, _)| *unit == series.unit) {
            Some((_, members)) => members.push(index),
            None => groups.push((series.unit.clone(), vec![index])),
        }
    }
    groups
}

/// A value axis: the range shown and its tick step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueAxis {
    pub min: f64,
    pub max: f64,
    pub step: f64,
}

impl ValueAxis {
    /// Covers the values and the set limits (so the limit bands show), with some air, in round steps.
    fn covering(values: impl Iterator<Item = f64>) -> Self {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for value in values.filter(|v| v.is_finite()) {
            low = low.min(value);
            high = high.max(value);
        }
        if !low.is_finite() {
            (low, high) = (0.0, 1.0);
        }
        if high <= low {
            let spread = (low.abs() * 0.1).max(1.0);
            (low, high) = (low - spread, high + spread);
        }
        let step = nice_step((high - low) / 5.0);
        let air = (high - low) * 0.05;
        ValueAxis {
            min: low - air,
            max: high + air,
            step,
        }
    }

    pub fn y_of(&self, value: f64, layout: &Layout) -> i32 {
        let fraction = (value - self.min) / (self.max - self.min);
        layout.bottom - (fraction * f64::from(layout.bottom - layout.top)).round() as i32
    }

    fn ticks(&self) -> Vec<f64> {
        let first = (self.min / self.step).ceil() as i64;
        let last = (self.max / self.step).floor() as i64;
        // A step is a fifth of the span, so a dozen ticks at most; the cap holds for values near f64's limits too.
        (first..=last).take(16).map(|i| i as f64 * self.step).collect()
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

fn limit_values(limits: &Limits) -> impl Iterator<Item = f64> {
    [limits.lolo, limits.lo, limits.hi, limits.hihi].into_iter().flatten()
}

/// The value axis of every unit group, indexed like [`unit_groups`].
pub fn value_axes(trend: &Trend) -> Vec<ValueAxis> {
    unit_groups(trend)
        .into_iter()
        .map(|(_, members)| {
            ValueAxis::covering(members.iter().flat_map(|&i| {
                let series = &trend.series[i];
                let (points, buckets) = visible(trend, series);
                points
                    .iter()
                    .map(|p| p.value)
                    .chain(buckets.iter().flat_map(|b| [b.min, b.max]))
                    .chain(limit_values(&series.limits))
                    .collect::<Vec<_>>()
            }))
        })
        .collect()
}

/// The readings of a series inside the trend's range (live readings slide the range past older ones).
fn visible<'a>(trend: &Trend, series: &'a super::types::TrendSeries) -> (&'a [Point], &'a [Bucket]) {
    let data = &series.data;
    let points = &data.points;
    let points = &points[points.partition_point(|p| p.ts < trend.from)..points.partition_point(|p| p.ts <= trend.to)];
    let buckets = &data.buckets;
    let half = data.bucket_ms.unwrap_or(0) / 2;
    let buckets = &buckets[buckets.partition_point(|b| b.start + half < trend.from)
        ..buckets.partition_point(|b| b.start + half <= trend.to)];
    (points, buckets)
}

/// How the picture is drawn where the backends differ.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrawOptions {
    /// The zone's offsets over the range, for the time labels (the reader's zone; UTC by default).
    pub offsets: Offsets,
}

const FONT: &str = "sans-serif";

fn text_style(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// Draws `trend` on `area`, whatever the backend. Errors are the backend's, as text.
pub fn draw_trend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    trend: &Trend,
    options: &DrawOptions,
) -> Result<(), String> {
    draw(area, trend, options).map_err(|err| format!("the chart could not be drawn: {err}"))
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, trend: &Trend, options: &DrawOptions) -> DrawResult<DB> {
    let (width, height) = area.dim_in_pixel();
    let layout = Layout::of(trend, width, height);
    let groups = unit_groups(trend);
    let axes = value_axes(trend);
    let group_of = |series: usize| {
        groups
            .iter()
            .position(|(_, members)| members.contains(&series))
            .unwrap_or(0)
    };

    area.fill(&WHITE)?;
    let plot = [(layout.left, layout.top), (layout.right, layout.bottom)];

    // Limit bands first, under everything; the same limits on one axis are drawn once.
    let mut drawn: Vec<(usize, &Limits)> = Vec::new();
    for (index, series) in trend.series.iter().enumerate() {
        let group = group_of(index);
        if drawn.iter().any(|(g, l)| *g == group && **l == series.limits) {
            continue;
        }
        drawn.push((group, &series.limits));
        draw_bands(area, &layout, &axes[group], &series.limits)?;
    }

    // The grid and the axes.
    let time_ticks = time_ticks(layout.from, layout.to, layout.plot_width(), &options.offsets);
    for (ts, label) in &time_ticks {
        let x = layout.x_of(*ts);
        area.draw(&PathElement::new(vec![(x, layout.top), (x, layout.bottom)], GRID))?;
        area.draw(&Text::new(
            label.clone(),
            (x, layout.bottom + 5),
            text_style(11, TEXT, HPos::Center, VPos::Top),
        ))?;
    }
    if let Some(axis) = axes.first() {
        for value in axis.ticks() {
            let y = axis.y_of(value, &layout);
            area.draw(&PathElement::new(vec![(layout.left, y), (layout.right, y)], GRID))?;
            area.draw(&Text::new(
                number_text(value, axis.step),
                (layout.left - 6, y),
                text_style(11, TEXT, HPos::Right, VPos::Center),
            ))?;
        }
        area.draw(&Text::new(
            groups[0].0.clone().unwrap_or_default(),
            (layout.left - 6, 4),
            text_style(11, TEXT, HPos::Right, VPos::Top),
        ))?;
    }
    if let (Some(axis), Some((unit, _))) = (axes.get(1), groups.get(1)) {
        for value in axis.ticks() {
            let y = axis.y_of(value, &layout);
            area.draw(&PathElement::new(vec![(layout.right, y), (layout.right + 4, y)], FRAME))?;
            area.draw(&Text::new(
                number_text(value, axis.step),
                (layout.right + 6, y),
                text_style(11, TEXT, HPos::Left, VPos::Center),
            ))?;
        }
        area.draw(&Text::new(
            unit.clone().unwrap_or_default(),
            (layout.right + 6, 4),
            text_style(11, TEXT, HPos::Left, VPos::Top),
        ))?;
    }
    area.draw(&Rectangle::new(plot, FRAME.stroke_width(1)))?;

    // The series, each on its unit's axis.
    let clipped = area.clone().shrink(
        (layout.left, layout.top),
        (layout.plot_width() as u32, (layout.bottom - layout.top) as u32),
    );
    for (index, series) in trend.series.iter().enumerate() {
        let axis = &axes[group_of(index)];
        let color = series_color(index);
        // Drawing in the clipped area: its coordinates start at the plot's corner.
        let to_plot = |(x, y): (i32, i32)| (x - layout.left, y - layout.top);
        let (points, buckets) = visible(trend, series);
        if buckets.is_empty() {
            for segment in segments(points, None) {
                let path: Vec<(i32, i32)> = segment
                    .iter()
                    .map(|p| to_plot((layout.x_of(p.ts), axis.y_of(p.value, &layout))))
                    .collect();
                draw_path(&clipped, path, color)?;
            }
        } else {
            let bucket_ms = series.data.bucket_ms.unwrap_or(1);
            let middles: Vec<Point> = buckets
                .iter()
                .map(|b| Point {
                    ts: b.start + bucket_ms / 2,
                    value: b.avg(),
                })
                .collect();
            for segment in bucket_segments(buckets, bucket_ms) {
                let mut envelope: Vec<(i32, i32)> = segment
                    .iter()
                    .map(|b| to_plot((layout.x_of(b.start + bucket_ms / 2), axis.y_of(b.max, &layout))))
                    .collect();
                envelope.extend(
                    segment
                        .iter()
                        .rev()
                        .map(|b| to_plot((layout.x_of(b.start + bucket_ms / 2), axis.y_of(b.min, &layout)))),
                );
                if segment.len() > 1 {
                    clipped.draw(&Polygon::new(envelope, color.mix(0.2).filled()))?;
                }
            }
            for segment in segments(&middles, Some(bucket_ms)) {
                let path: Vec<(i32, i32)> = segment
                    .iter()
                    .map(|p| to_plot((layout.x_of(p.ts), axis.y_of(p.value, &layout))))
                    .collect();
                draw_path(&clipped, path, color)?;
            }
        }
    }

    // Alarm occurrences: a bar in the strip above the plot from raise to return, and a line where each began.
    for marker in &trend.alarms {
        let color = severity_color(marker.severity);
        let start = layout.x_of(marker.started_at).clamp(layout.left, layout.right);
        let end = layout
            .x_of(marker.ended_at.unwrap_or(layout.to))
            .clamp(layout.left, layout.right)
            .max(start + 2);
        area.draw(&Rectangle::new(
            [(start, layout.top - 7), (end, layout.top - 2)],
            color.filled(),
        ))?;
        if (layout.from..layout.to).contains(&marker.started_at) {
            area.draw(&PathElement::new(
                vec![(start, layout.top), (start, layout.bottom)],
                color.mix(0.6).stroke_width(1),
            ))?;
            area.draw(&Polygon::new(
                vec![
                    (start - 4, layout.top - 12),
                    (start + 4, layout.top - 12),
                    (start, layout.top - 3),
                ],
                color.filled(),
            ))?;
        }
    }

    // The legend.
    let mut x = layout.left;
    let y = height as i32 - 12;
    for (index, series) in trend.series.iter().enumerate() {
        let label = match &series.unit {
            Some(unit) => format!("{} [{unit}]", series.label()),
            None => series.label(),
        };
        let style = text_style(11, TEXT, HPos::Left, VPos::Center);
        area.draw(&Rectangle::new(
            [(x, y - 4), (x + 10, y + 4)],
            series_color(index).filled(),
        ))?;
        area.draw(&Text::new(label.clone(), (x + 14, y), style))?;
        // An estimate, not a measurement: in the browser plotters measures text through a styled element, which
        // the page's CSP forbids, and the spacing need not be exact.
        let text_width = label.chars().count() as i32 * 6 + 4;
        x += 14 + text_width + 16;
    }
    area.present()?;
    Ok(())
}

fn draw_path<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    path: Vec<(i32, i32)>,
    color: RGBColor,
) -> DrawResult<DB> {
    if path.len() == 1 {
        area.draw(&Circle::new(path[0], 2, color.filled()))?;
    } else {
        area.draw(&PathElement::new(path, color.stroke_width(2)))?;
    }
    Ok(())
}

fn draw_bands<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    layout: &Layout,
    axis: &ValueAxis,
    limits: &Limits,
) -> DrawResult<DB> {
    let (top, bottom) = (layout.top, layout.bottom);
    let y = |value: f64| axis.y_of(value, layout).clamp(top, bottom);
    let band = |from: i32, to: i32, (r, g, b): (u8, u8, u8)| {
        if to > from {
            area.draw(&Rectangle::new(
                [(layout.left, from), (layout.right, to)],
                RGBColor(r, g, b).mix(ZONE_ALPHA).filled(),
            ))
        } else {
            Ok(())
        }
    };
    if let Some(hihi) = limits.hihi {
        band(top, y(hihi), ALARM_ZONE)?;
    }
    if let Some(hi) = limits.hi {
        band(limits.hihi.map_or(top, &y), y(hi), WARNING_ZONE)?;
    }
    if let Some(lo) = limits.lo {
        band(y(lo), limits.lolo.map_or(bottom, &y), WARNING_ZONE)?;
    }
    if let Some(lolo) = limits.lolo {
        band(y(lolo), bottom, ALARM_ZONE)?;
    }
    Ok(())
}

/// Runs of points with no gap: a gap is a silence longer than three typical intervals (and longer than a bucket,
/// for aggregated data), so a stopped device shows as a break, not as a straight line across.
fn segments(points: &[Point], bucket_ms: Option<i64>) -> Vec<&[Point]> {
    let mut deltas: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].ts - w[0].ts)
        .filter(|d| *d > 0)
        .collect();
    deltas.sort_unstable();
    let typical = deltas.get(deltas.len() / 2).copied().unwrap_or(i64::MAX / 4);
    let gap = (typical.saturating_mul(3)).max(bucket_ms.map_or(0, |b| b + b / 2));
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].ts - points[i - 1].ts > gap {
            out.push(&points[start..i]);
            start = i;
        }
    }
    if start < points.len() {
        out.push(&points[start..]);
    }
    out
}

fn bucket_segments(buckets: &[Bucket], bucket_ms: i64) -> Vec<&[Bucket]> {
    let middles: Vec<Point> = buckets
        .iter()
        .map(|b| Point {
            ts: b.start,
            value: 0.0,
        })
        .collect();
    let mut out = Vec::new();
    let mut start = 0;
    for segment in segments(&middles, Some(bucket_ms)) {
        out.push(&buckets[start..start + segment.len()]);
        start += segment.len();
    }
    out
}

fn number_text(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{value:.decimals$}")
}

/// Tick instants and their labels: steps a clock reads well, about one per 110 pixels, on round local times (also
/// across a change of the zone's offset).
pub fn time_ticks(from: i64, to: i64, plot_width: i32, offsets: &Offsets) -> Vec<(i64, String)> {
    const SECOND: i64 = 1000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const STEPS: [i64; 22] = [
        SECOND,
        2 * SECOND,
        5 * SECOND,
        10 * SECOND,
        15 * SECOND,
        30 * SECOND,
        MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY,
        2 * DAY,
        7 * DAY,
        14 * DAY,
        30 * DAY,
    ];
    // Never more ticks than the width has room for, whatever the instants (a hostile range must not loop for
    // ever or fill memory).
    const MAX_TICKS: usize = 64;
    let wanted = (plot_width / 110).clamp(2, MAX_TICKS as i32) as i64;
    let span = to.saturating_sub(from).max(1);
    let step = STEPS
        .into_iter()
        .find(|step| span / step <= wanted)
        .unwrap_or_else(|| (span / wanted / (30 * DAY) + 1) * 30 * DAY);
    let local_from = from.saturating_add(i64::from(offsets.at(from)) * MINUTE);
    let local_to = to.saturating_add(i64::from(offsets.at(to)) * MINUTE);
    let mut local = local_from.div_euclid(step).saturating_mul(step);
    if local < local_from {
        local = local.saturating_add(step);
    }
    let mut ticks: Vec<(i64, String)> = Vec::new();
    while local < local_to && ticks.len() < MAX_TICKS {
        let (year, month, day) = crate::time::civil_from_days(local.div_euclid(DAY));
        let time_of_day = local.rem_euclid(DAY);
        let (hours, minutes, seconds) = (
            time_of_day / HOUR,
            time_of_day % HOUR / MINUTE,
            time_of_day % MINUTE / SECOND,
        );
        let label = if step >= 30 * DAY {
            format!("{year}-{month:02}")
        } else if step >= DAY || time_of_day == 0 {
            format!("{month:02}-{day:02}")
        } else if step < MINUTE {
            format!("{hours:02}:{minutes:02}:{seconds:02}")
        } else {
            format!("{hours:02}:{minutes:02}")
        };
        let at = offsets.instant_of(local);
        // A local time the clock skips (a DST change) gets no tick; one it reads twice gets the later.
        let read = at.saturating_add(i64::from(offsets.at(at)) * MINUTE);
        if read == local && (from..to).contains(&at) && ticks.last().is_none_or(|(previous, _)| *previous < at) {
            ticks.push((at, label));
        }
        local = local.saturating_add(step);
    }
    ticks
}

/// The value each series had at `ts`: its nearest point or bucket average (the hover readout).
pub fn values_at(trend: &Trend, ts: i64) -> Vec<Option<f64>> {
    trend
        .series
        .iter()
        .map(|series| {
            let data = &series.data;
            if data.buckets.is_empty() {
                nearest(&data.points, |p| p.ts, ts).map(|p| p.value)
            } else {
                let half = data.bucket_ms.unwrap_or(0) / 2;
                nearest(&data.buckets, |b| b.start + half, ts).map(Bucket::avg)
            }
        })
        .collect()
}

fn nearest<T>(items: &[T], ts_of: impl Fn(&T) -> i64, ts: i64) -> Option<&T> {
    let after = items.partition_point(|item| ts_of(item) < ts);
    let candidates = [after.checked_sub(1), Some(after)];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|i| items.get(i))
        .min_by_key(|item| (ts_of(item) - ts).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_fall_on_round_local_times() {
        let from = 1_767_225_600_000 + 7 * 60_000; // 2026-01-01 00:07 UTC
        let ticks = time_ticks(from, from + 3_600_000, 800, &Offsets::fixed(0));
        assert_eq!(ticks.first().unwrap().1, "00:10");
        assert!(ticks.len() >= 5 && ticks.len() <= 8, "{ticks:?}");
        let days = time_ticks(from, from + 7 * 86_400_000, 800, &Offsets::fixed(120));
        assert!(
            days.iter().all(|(_, label)| label.len() == 5 && label.contains('-')),
            "{days:?}"
        );
        // Local midnight at UTC+2 is 22:00 UTC.
        assert_eq!(days[0].0 % 86_400_000, 22 * 3_600_000);
    }

    #[test]
    fn time_ticks_stay_on_round_local_hours_across_a_dst_change() {
        // 2026-03-29 in Berlin: 00:00 local (23:00 UTC the day before) to 12:00 local; the clock jumps 02:00 → 03:00.
        let start = 1_774_738_800_000;
        let berlin = |ts: i64| if ts >= 1_774_746_000_000 { 120 } else { 60 };
        let offsets = Offsets::over(start - 86_400_000, start + 86_400_000, berlin);
        let ticks = time_ticks(start, start + 11 * 3_600_000, 1200, &offsets);
        let labels: Vec<&str> = ticks.iter().map(|(_, label)| label.as_str()).collect();
        assert_eq!(labels, ["03-29", "04:00", "06:00", "08:00", "10:00"]);
        for (ts, label) in &ticks {
            let local = ts + i64::from(offsets.at(*ts)) * 60_000;
            let hour = if *label == "03-29" {
                0
            } else {
                label[..2].parse().unwrap()
            };
            assert_eq!(local.rem_euclid(86_400_000), hour * 3_600_000, "{label} at {ts}");
        }
        assert!(ticks.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn time_ticks_stay_few_for_any_instants() {
        for (from, to, width) in [
            (i64::MIN, i64::MAX, 4000),
            (0, i64::MAX, 100),
            (i64::MAX - 10, i64::MAX, i32::MAX),
        ] {
            let ticks = time_ticks(from, to, width, &Offsets::fixed(16 * 60));
            assert!(ticks.len() <= 64, "{from}..{to}: {} ticks", ticks.len());
        }
    }

    #[test]
    fn gaps_split_the_line_where_readings_stop() {
        let points: Vec<Point> = [0, 1000, 2000, 3000, 60_000, 61_000]
            .into_iter()
            .map(|ts| Point { ts, value: 1.0 })
            .collect();
        let runs = segments(&points, None);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), vec![4, 2]);
    }

    #[test]
    fn the_layout_maps_instants_to_pixels_and_back() {
        let layout = Layout::new(1000, 300, 0, 920_000, false);
        assert_eq!(layout.x_of(0), LEFT_MARGIN);
        assert_eq!(layout.x_of(920_000), layout.right);
        assert_eq!(layout.ts_of(f64::from(layout.x_of(460_000))), 460_000);
        assert_eq!(layout.ts_of(-5.0), 0, "clamped to the plot");
    }

    #[test]
    fn value_axes_cover_the_data_and_the_limits() {
        let axis = ValueAxis::covering([3.0, 7.0, 12.0].into_iter());
        assert!(axis.min < 3.0 && axis.max > 12.0);
        assert_eq!(axis.step, 2.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(number_text(2.5, 0.5), "2.5");
    }

    #[test]
    fn the_readout_takes_the_nearest_reading() {
        let points = [Point { ts: 0, value: 1.0 }, Point { ts: 10, value: 2.0 }];
        assert_eq!(nearest(&points, |p| p.ts, 4).unwrap().value, 1.0);
        assert_eq!(nearest(&points, |p| p.ts, 6).unwrap().value, 2.0);
        assert_eq!(nearest(&points, |p| p.ts, 99).unwrap().value, 2.0);
    }
}

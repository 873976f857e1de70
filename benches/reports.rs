//! The report writers (issue 18's targets: a one-page daily report of 20 assets × 5 attributes with two trends as
//! PDF ≤ 300 ms and XLSX ≤ 300 ms; a 100-page PDF ≤ 5 s; CSV ≥ 1M rows/s): each writer times a fixed rendered
//! report (what the stores' rollups give the writers), so these figures are the writers' own; the store side of a
//! report is the charts' and the tables' bucket reads, measured in the trend-chart and time-series rows.
//!
//! Run: `cargo bench -p server --bench reports` (about a minute; results go in BENCHMARKS.md).

use std::time::{Duration, Instant};

use app::alarms::{AlarmSummary, Severity, SeverityCount};
use app::assets::Limits;
use app::charts::{Trend, TrendSeries};
use app::reports::{Aggregate, RenderedReport, RenderedSection, TableColumn, TableRow};
use app::timeseries::{Point, Resolution, SeriesData};
use jiff::tz::TimeZone;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000;

fn trend(series: usize) -> Trend {
    Trend {
        from: T0,
        to: T0 + DAY,
        series: (0..series)
            .map(|s| TrendSeries {
                asset_id: s as i64,
                asset_path: format!("/North Plant/Line 1/Pump {}", s + 1),
                attribute: "flow".into(),
                unit: Some("m³/h".into()),
                limits: Limits {
                    hi: Some(110.0),
                    ..Default::default()
                },
                data: SeriesData {
                    asset_id: s as i64,
                    attribute: "flow".into(),
                    unit: Some("m³/h".into()),
                    from: T0,
                    to: T0 + DAY,
                    resolution: Resolution::Raw,
                    bucket_ms: None,
                    // About a value per pixel of the report's 1000-pixel trend.
                    points: (0..1000)
                        .map(|i| Point {
                            ts: T0 + i * DAY / 1000,
                            value: 60.0 + 30.0 * ((i as f64 / 80.0) + s as f64).sin(),
                        })
                        .collect(),
                    buckets: Vec::new(),
                },
            })
            .collect(),
        alarms: Vec::new(),
    }
}

fn report(assets: usize, attributes: usize, trends: usize) -> RenderedReport {
    let aggregates = [Aggregate::Average, Aggregate::Min, Aggregate::Max];
    let columns: Vec<TableColumn> = (0..attributes)
        .flat_map(|a| {
            aggregates.map(|aggregate| TableColumn {
                attribute: format!("attribute {a}"),
                aggregate,
                unit: Some("bar".into()),
            })
        })
        .collect();
    let rows = (0..assets)
        .map(|i| TableRow {
            asset: format!("/North Plant/Line {}/Pump {}", i / 10 + 1, i % 10 + 1),
            from: T0,
            to: T0 + DAY,
            cells: (0..columns.len()).map(|c| Some((i * c) as f64 * 0.37)).collect(),
        })
        .collect();
    let mut sections = vec![RenderedSection::Table {
        title: "Pumps over the day".into(),
        columns,
        rows,
    }];
    for t in 0..trends {
        sections.push(RenderedSection::Trend {
            title: format!("Trend {}", t + 1),
            trend: trend(2),
            hidden: 0,
        });
    }
    sections.push(RenderedSection::Alarms {
        title: "Alarms of the day".into(),
        summary: AlarmSummary {
            raised: 12,
            by_severity: Severity::ALL
                .into_iter()
                .map(|severity| SeverityCount { severity, count: 3 })
                .collect(),
            most_frequent: Vec::new(),
            standing: Vec::new(),
            acknowledged: 10,
            median_to_acknowledge_ms: Some(240_000),
            longest_to_acknowledge_ms: Some(1_800_000),
            average_per_period: 0.08,
            peak_per_period: 3,
            flood_periods: 0,
            periods: 144,
            capped: false,
        },
    });
    RenderedReport {
        name: "North Plant daily".into(),
        scope: "/North Plant".into(),
        from: T0,
        to: T0 + DAY,
        time_zone: "UTC".into(),
        generated_at: T0 + DAY + 60_000,
        sections,
    }
}

/// Median and slowest of `runs` calls.
fn time(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        size = f();
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], times[runs - 1], size)
}

fn main() {
    let zone = TimeZone::UTC;
    let daily = report(20, 5, 2);
    let (median, slowest, bytes) = time(20, || server::reports::pdf::write(&daily, &zone).unwrap().len());
    println!("daily report (20 assets × 5 attributes × 3 aggregates, 2 trends), PDF: median {median:.1?}, slowest {slowest:.1?}, {bytes} bytes");
    let (median, slowest, bytes) = time(20, || server::reports::xlsx::write(&daily, &zone).unwrap().len());
    println!("daily report, XLSX: median {median:.1?}, slowest {slowest:.1?}, {bytes} bytes");

    // About 55 table rows a page: 5,500 rows make a hundred pages.
    let long = report(5_500, 2, 0);
    let (median, slowest, bytes) = time(3, || server::reports::pdf::write(&long, &zone).unwrap().len());
    println!("100-page PDF (5,500 rows): median {median:.1?}, slowest {slowest:.1?}, {bytes} bytes");

    let many = report(1_000_000, 1, 0);
    let (median, _, bytes) = time(3, || {
        let mut out = Vec::new();
        server::reports::csv::write(&many, &zone, &mut out).unwrap();
        out.len()
    });
    println!(
        "CSV, 1,000,000 rows: median {median:.1?} ({:.2}M rows/s), {bytes} bytes",
        1.0 / median.as_secs_f64()
    );
}

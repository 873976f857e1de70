//! The report types the browser and the server share: a report's definition (its scope, time range, time zone
//! and sections), the report as stored, and the rendered report that every writer (HTML, CSV, XLSX, PDF, SVG and PNG) takes.

use serde::{Deserialize, Serialize};

use crate::alarms::AlarmSummary;
use crate::charts::{SeriesRef, Trend, MAX_TREND_SERIES};
use crate::error::AppError;

pub const MAX_SECTIONS: usize = 20;
pub const MAX_TABLE_ATTRIBUTES: usize = 20;
/// The longest `hours` range: a leap year.
pub const MAX_REPORT_HOURS: u32 = 24 * 366;

/// What a report is: which assets, which time range, in which time zone, and its sections in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportSpec {
    pub name: String,
    pub scope: ReportScope,
    pub range: ReportRange,
    /// The IANA time zone its periods, intervals and times are in (`Europe/Berlin`); UTC when left out.
    #[serde(default = "utc")]
    pub time_zone: String,
    pub sections: Vec<ReportSection>,
    /// When it runs by itself, as its owner; none: only on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ReportSchedule>,
}

/// A report's schedule: a cron pattern (minute, hour, day of month, month, day of week: `5 6 * * *` is 06:05 every
/// day; or six fields, seconds first), fields separated by spaces, in the report's time zone. Each due time is run once across all instances; after downtime, only the
/// latest missed one is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportSchedule {
    pub cron: String,
}

fn utc() -> String {
    "UTC".into()
}

/// The assets a report covers: those at or below `under`, only those of `template` (or of a template based on
/// it) when one is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportScope {
    pub under: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// The time a report covers, worked out when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ReportRange {
    /// The last complete period before the run, in the report's time zone.
    Last { period: Period },
    /// The hours up to the run.
    Hours { hours: u32 },
    /// A fixed range, `[from, to)` in milliseconds UTC.
    Absolute { from: i64, to: i64 },
}

/// A calendar period in the report's time zone: a shift is eight hours from 06:00, 14:00 or 22:00; a week starts
/// on Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Period {
    Shift,
    Day,
    Week,
    Month,
}

/// One part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ReportSection {
    /// A row per asset (and per interval, when one is named) and a column per attribute and aggregate.
    Table {
        #[serde(default)]
        title: String,
        attributes: Vec<String>,
        aggregates: Vec<Aggregate>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<Interval>,
    },
    /// A trend chart of series (an asset path and an attribute each) over the report's range, with their limit
    /// bands and alarm markers: the picture the Trends page draws.
    Trend {
        #[serde(default)]
        title: String,
        series: Vec<SeriesRef>,
    },
    /// The alarms of the scope raised over the range, summed up as ISA-18.2 does.
    Alarms {
        #[serde(default)]
        title: String,
    },
    /// A heading and a paragraph; `{scope}`, `{from}`, `{to}` and `{generated_at}` are filled in.
    Text {
        heading: String,
        #[serde(default)]
        body: String,
    },
}

/// What a table column computes over its attribute's readings in a row's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Aggregate {
    Average,
    Min,
    Max,
    First,
    Last,
    Sum,
    Count,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Average => "average",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::First => "first",
            Aggregate::Last => "last",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
        }
    }
}

/// A table's rows per hour or per day of the report's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Interval {
    Hour,
    Day,
}

impl ReportSpec {
    /// Its name, scope, range and sections as written; the time zone and the assets it names are checked by
    /// the server. Errors name the field they are about.
    pub fn validate(&self) -> Result<(), AppError> {
        let bad = |field: &str, message: String| Err(AppError::bad_request(message).for_field(field));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name != self.name {
            return bad(
                "name",
                "a report's name is 1 to 100 characters, without leading or trailing spaces".into(),
            );
        }
        if !self.scope.under.starts_with('/') {
            return bad(
                "scope",
                format!("the scope is an asset path such as /Site A, not {:?}", self.scope.under),
            );
        }
        match self.range {
            ReportRange::Hours { hours } if hours == 0 || hours > MAX_REPORT_HOURS => {
                return bad("range", format!("a report covers 1 to {MAX_REPORT_HOURS} hours"));
            }
            ReportRange::Absolute { from, to } => {
                for (ts, name) in [(from, "from"), (to, "to")] {
                    crate::timeseries::check_instant(ts, name)
                        .map_err(|message| AppError::bad_request(message).for_field("range"))?;
                }
                if from >= to {
                    // A rule across fields: 422.
                    return Err(AppError::new(
                        crate::error::ErrorKind::Unprocessable,
                        "the range's `from` must be before its `to`",
                    )
                    .for_field("range"));
                }
            }
            _ => {}
        }
        if let Some(schedule) = &self.schedule {
            let fields = schedule.cron.split(' ').filter(|field| !field.is_empty()).count();
            if !(5..=6).contains(&fields) {
                return bad(
                    "schedule",
                    format!(
                        "a schedule is five cron fields (minute hour day month weekday, such as `5 6 * * *`), or six with seconds first, not {:?}",
                        schedule.cron
                    ),
                );
            }
        }
        if self.sections.is_empty() || self.sections.len() > MAX_SECTIONS {
            return bad("sections", format!("a report has 1 to {MAX_SECTIONS} sections"));
        }
        for (i, section) in self.sections.iter().enumerate() {
            let which = format!("section {}", i + 1);
            match section {
                ReportSection::Table {
                    attributes, aggregates, ..
                } => {
                    if attributes.is_empty() || attributes.len() > MAX_TABLE_ATTRIBUTES {
                        return bad(
                            "sections",
                            format!("{which}: a table names 1 to {MAX_TABLE_ATTRIBUTES} attributes"),
                        );
                    }
                    if attributes.iter().any(|a| !a.chars().any(|c| !c.is_whitespace())) {
                        return bad("sections", format!("{which}: an attribute's name is empty"));
                    }
                    if aggregates.is_empty() {
                        return bad("sections", format!("{which}: a table names at least one aggregate"));
                    }
                }
                ReportSection::Trend { title, series } => {
                    if series.is_empty() || series.len() > MAX_TREND_SERIES {
                        return bad(
                            "sections",
                            format!("{which}: a trend shows 1 to {MAX_TREND_SERIES} series"),
                        );
                    }
                    if let Some(bad_series) = series
                        .iter()
                        .find(|s| !s.asset.starts_with('/') || s.attribute.is_empty())
                    {
                        return bad(
                            "sections",
                            format!(
                                "{which}: a series is an asset path such as /Site A/Pump 1 and an attribute, not {:?}",
                                bad_series.to_string()
                            ),
                        );
                    }
                    check_title(title, &which)?;
                }
                ReportSection::Alarms { title } => check_title(title, &which)?,
                ReportSection::Text { heading, body } => {
                    if heading.chars().count() > 200 || body.chars().count() > 10_000 {
                        return bad(
                            "sections",
                            format!("{which}: a heading is at most 200 characters and a text 10,000"),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_title(title: &str, which: &str) -> Result<(), AppError> {
    if title.chars().count() > 200 {
        return Err(AppError::bad_request(format!("{which}: a title is at most 200 characters")).for_field("sections"));
    }
    Ok(())
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RunStatus {
    /// Waiting for an instance to take it (or for its next attempt).
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Done,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether it will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Done | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// The files a finished run offers.
pub const RUN_FORMATS: [&str; 4] = ["pdf", "xlsx", "csv", "zip"];

/// One run of a report: asked for by someone or due by its schedule, worked out by one instance, its files kept
/// for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportRun {
    pub id: i64,
    pub report_id: i64,
    /// Who asked for it; for a scheduled run, the report's owner it runs as.
    pub requester: String,
    /// The due time, for a scheduled run.
    pub scheduled_for: Option<i64>,
    pub from: i64,
    pub to: i64,
    pub status: RunStatus,
    /// 0 to 100.
    pub progress: u8,
    /// Why it failed, or what it is doing.
    pub message: Option<String>,
    pub attempts: u32,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The files to download (`pdf`, `xlsx`, `csv`, `zip`), once done.
    pub formats: Vec<String>,
}

/// A report as stored, as its readers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportView {
    pub id: i64,
    /// Who made it (it runs as them on a schedule).
    pub owner: String,
    pub spec: ReportSpec,
    /// Bumped by every write: send it back as `If-Match` to refuse a write over someone else's.
    pub version: i64,
    pub updated_at: i64,
    pub can_edit: bool,
}

/// A report worked out for one time range: what every output writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RenderedReport {
    pub name: String,
    /// The scope's path as the runner is shown it.
    pub scope: String,
    pub from: i64,
    pub to: i64,
    pub time_zone: String,
    pub generated_at: i64,
    pub sections: Vec<RenderedSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RenderedSection {
    Table {
        title: String,
        columns: Vec<TableColumn>,
        rows: Vec<TableRow>,
    },
    Trend {
        title: String,
        trend: Trend,
        /// Series of the definition the runner may not see, left out.
        hidden: u32,
    },
    Alarms {
        title: String,
        summary: AlarmSummary,
    },
    Text {
        heading: String,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TableColumn {
    pub attribute: String,
    pub aggregate: Aggregate,
    pub unit: Option<String>,
}

/// One asset over one interval (the whole range when the table has none); a cell per column, none where the
/// asset has no such attribute or no reading in the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TableRow {
    pub asset: String,
    pub from: i64,
    pub to: i64,
    pub cells: Vec<Option<f64>>,
}

/// A table cell as every writer that shows text shows it: two decimals, a dash where there is no value.
pub fn cell_text(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "—".to_string(),
    }
}

/// A duration as people read it: `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`.
pub fn duration_text(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds < 60 {
        format!("{seconds} s")
    } else if minutes < 60 {
        format!("{minutes} min")
    } else if hours < 24 {
        match minutes % 60 {
            0 => format!("{hours} h"),
            rest => format!("{hours} h {rest} min"),
        }
    } else {
        match hours % 24 {
            0 => format!("{days} d"),
            rest => format!("{days} d {rest} h"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(45_000), "45 s");
        assert_eq!(duration_text(12 * 60_000 + 5_000), "12 min");
        assert_eq!(duration_text(3 * 3_600_000), "3 h");
        assert_eq!(duration_text(3 * 3_600_000 + 20 * 60_000), "3 h 20 min");
        assert_eq!(duration_text(52 * 3_600_000), "2 d 4 h");
        assert_eq!(cell_text(Some(1.005e3)), "1005.00");
        assert_eq!(cell_text(None), "—");
        assert_eq!(cell_text(Some(f64::NAN)), "—");
    }
}

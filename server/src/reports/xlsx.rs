//! A rendered report as an Excel workbook (`rust_xlsxwriter`): a `Report` sheet with the title block and the text
//! sections, then a sheet per other section. Tables have real numbers and dates (local time of the report's zone,
//! formatted as dates), units in the header, the header row and the asset column frozen, and columns wide enough
//! to read; a trend's sheet has its readings and a line chart of them; an alarm summary's, its figures and lists.

use app::alarms::AlarmSummary;
use app::charts::Trend;
use app::reports::{RenderedReport, RenderedSection, TableColumn, TableRow};
use jiff::{tz::TimeZone, Timestamp};
use rust_xlsxwriter::{Chart, ChartType, Format, Workbook, Worksheet, XlsxError};

/// Days from Excel's epoch (1899-12-30) to the Unix epoch.
const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
/// Excel's longest sheet name.
const SHEET_NAME_MAX: usize = 31;

/// An instant as an Excel date serial in `zone`'s local time (a workbook's dates carry no zone).
pub fn serial(ms: i64, zone: &TimeZone) -> f64 {
    let offset = Timestamp::from_millisecond(ms)
        .map(|t| zone.to_offset(t).seconds())
        .unwrap_or(0);
    (ms as f64 / 1000.0 + f64::from(offset)) / 86_400.0 + UNIX_EPOCH_SERIAL
}

/// A sheet name Excel takes: no `[]:*?/\`, at most 31 characters, unique in the workbook.
fn sheet_name(title: &str, default_title: &str, index: usize, taken: &mut Vec<String>) -> String {
    let cleaned: String = title
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .collect();
    let cleaned = cleaned.trim().trim_matches('\'');
    let base = if cleaned.is_empty() {
        format!("{default_title} {index}")
    } else {
        cleaned.to_string()
    };
    let mut name: String = base.chars().take(SHEET_NAME_MAX).collect();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) || name.eq_ignore_ascii_case("Report") {
        let suffix = format!(" ({n})");
        name = base
            .chars()
            .take(SHEET_NAME_MAX - suffix.chars().count())
            .collect::<String>()
            + &suffix;
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// The workbook of `report`, as bytes.
pub fn write(report: &RenderedReport, zone: &TimeZone) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    let heading = Format::new().set_bold().set_font_size(14);

    let summary = workbook.add_worksheet();
    summary.set_name("Report")?;
    summary.write_string_with_format(0, 0, &report.name, &heading)?;
    let facts: [(&str, Fact); 5] = [
        ("Scope", Fact::Text(&report.scope)),
        ("From", Fact::When(report.from)),
        ("To", Fact::When(report.to)),
        ("Time zone", Fact::Text(&report.time_zone)),
        ("Generated", Fact::When(report.generated_at)),
    ];
    let mut row = 2;
    for (label, fact) in facts {
        summary.write_string_with_format(row, 0, label, &bold)?;
        match fact {
            Fact::Text(text) => summary.write_string(row, 1, text)?,
            Fact::When(ms) => summary.write_number_with_format(row, 1, serial(ms, zone), &when)?,
        };
        row += 1;
    }
    for section in &report.sections {
        if let RenderedSection::Text { heading: title, body } = section {
            row += 1;
            summary.write_string_with_format(row, 0, title, &bold)?;
            if !body.is_empty() {
                row += 1;
                summary.write_string(row, 0, body)?;
            }
            row += 1;
        }
    }
    summary.set_column_width(0, 14)?;
    summary.set_column_width(1, 40)?;

    let mut taken = Vec::new();
    let mut index = 0;
    for section in &report.sections {
        let (title, default_title) = match section {
            RenderedSection::Text { .. } => continue,
            RenderedSection::Table { title, .. } => (title, "Table"),
            RenderedSection::Trend { title, .. } => (title, "Trend"),
            RenderedSection::Alarms { title, .. } => (title, "Alarms"),
        };
        index += 1;
        let sheet = workbook.add_worksheet();
        let name = sheet_name(title, default_title, index, &mut taken);
        sheet.set_name(&name)?;
        match section {
            RenderedSection::Table { columns, rows, .. } => table_sheet(sheet, columns, rows, zone, &bold, &when)?,
            RenderedSection::Trend { trend, .. } => trend_sheet(sheet, &name, trend, zone, &bold, &when)?,
            RenderedSection::Alarms { summary, .. } => alarms_sheet(sheet, summary, zone, &bold, &when)?,
            RenderedSection::Text { .. } => {}
        }
    }
    workbook.save_to_buffer()
}

fn table_sheet(
    sheet: &mut Worksheet,
    columns: &[TableColumn],
    rows: &[TableRow],
    zone: &TimeZone,
    bold: &Format,
    when: &Format,
) -> Result<(), XlsxError> {
    let mut headers = vec!["Asset".to_string(), "From".to_string(), "To".to_string()];
    headers.extend(columns.iter().map(|c| {
        let unit = c.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        format!("{} {}{unit}", c.attribute, c.aggregate.as_str())
    }));
    for (col, header) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, header, bold)?;
    }
    let mut asset_width = 12;
    for (i, table_row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, &table_row.asset)?;
        asset_width = asset_width.max(table_row.asset.chars().count());
        sheet.write_number_with_format(r, 1, serial(table_row.from, zone), when)?;
        sheet.write_number_with_format(r, 2, serial(table_row.to, zone), when)?;
        for (c, cell) in table_row.cells.iter().enumerate() {
            if let Some(value) = cell.filter(|v| v.is_finite()) {
                sheet.write_number(r, c as u16 + 3, value)?;
            }
        }
    }
    sheet.set_freeze_panes(1, 1)?;
    sheet.set_column_width(0, asset_width.min(60) as f64 + 2.0)?;
    sheet.set_column_width(1, 17)?;
    sheet.set_column_width(2, 17)?;
    for (col, header) in headers.iter().enumerate().skip(3) {
        sheet.set_column_width(col as u16, (header.chars().count().clamp(10, 40) + 2) as f64)?;
    }
    Ok(())
}

/// A trend's readings, a time and a value column per series (raw readings, or each bucket's average), and a
/// line chart of them beside.
fn trend_sheet(
    sheet: &mut Worksheet,
    name: &str,
    trend: &Trend,
    zone: &TimeZone,
    bold: &Format,
    when: &Format,
) -> Result<(), XlsxError> {
    let mut chart = Chart::new(ChartType::ScatterStraight);
    for (i, series) in trend.series.iter().enumerate() {
        let (time_col, value_col) = (2 * i as u16, 2 * i as u16 + 1);
        let unit = series.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        let label = format!("{}{unit}", series.label());
        sheet.write_string_with_format(0, time_col, format!("{} time", series.label()), bold)?;
        sheet.write_string_with_format(0, value_col, &label, bold)?;
        let values: Vec<(i64, f64)> = if series.data.points.is_empty() {
            series
                .data
                .buckets
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| (b.start, b.sum / b.count as f64))
                .collect()
        } else {
            series.data.points.iter().map(|p| (p.ts, p.value)).collect()
        };
        for (n, (ts, value)) in values.iter().enumerate() {
            let r = n as u32 + 1;
            sheet.write_number_with_format(r, time_col, serial(*ts, zone), when)?;
            if value.is_finite() {
                sheet.write_number(r, value_col, *value)?;
            }
        }
        sheet.set_column_width(time_col, 17)?;
        sheet.set_column_width(value_col, (label.chars().count().clamp(10, 40) + 2) as f64)?;
        if !values.is_empty() {
            let last = values.len() as u32;
            chart
                .add_series()
                .set_name(&label)
                .set_categories((name, 1, time_col, last, time_col))
                .set_values((name, 1, value_col, last, value_col));
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    if !trend.series.is_empty() {
        chart.x_axis().set_num_format("yyyy-mm-dd hh:mm");
        chart.set_width(900).set_height(360);
        sheet.insert_chart(1, 2 * trend.series.len() as u16 + 1, &chart)?;
    }
    Ok(())
}

/// The alarm summary: the figures, then the most frequent and the standing alarms as tables.
fn alarms_sheet(
    sheet: &mut Worksheet,
    summary: &AlarmSummary,
    zone: &TimeZone,
    bold: &Format,
    when: &Format,
) -> Result<(), XlsxError> {
    let mut figures: Vec<(String, Option<f64>)> = vec![("Raised".into(), Some(f64::from(summary.raised)))];
    figures.extend(
        summary
            .by_severity
            .iter()
            .map(|s| (format!("Raised, {}", s.severity.as_str()), Some(f64::from(s.count)))),
    );
    let minutes = |ms: Option<i64>| ms.map(|ms| ms as f64 / 60_000.0);
    figures.extend([
        ("Acknowledged".into(), Some(f64::from(summary.acknowledged))),
        (
            "Median time to acknowledge (min)".into(),
            minutes(summary.median_to_acknowledge_ms),
        ),
        (
            "Longest time to acknowledge (min)".into(),
            minutes(summary.longest_to_acknowledge_ms),
        ),
        ("Average per 10 minutes".into(), Some(summary.average_per_period)),
        ("Peak per 10 minutes".into(), Some(f64::from(summary.peak_per_period))),
        (
            "10-minute periods in flood".into(),
            Some(f64::from(summary.flood_periods)),
        ),
        ("10-minute periods".into(), Some(f64::from(summary.periods))),
    ]);
    for (r, (label, value)) in figures.iter().enumerate() {
        sheet.write_string_with_format(r as u32, 0, label, bold)?;
        if let Some(value) = value {
            sheet.write_number(r as u32, 1, *value)?;
        }
    }
    let mut row = figures.len() as u32 + 1;
    sheet.write_string_with_format(row, 0, "Most frequent", bold)?;
    row += 1;
    for (c, header) in ["Asset", "Attribute", "Rule", "Severity", "Raised"].iter().enumerate() {
        sheet.write_string_with_format(row, c as u16, *header, bold)?;
    }
    for alarm in &summary.most_frequent {
        row += 1;
        sheet.write_string(row, 0, &alarm.asset_path)?;
        sheet.write_string(row, 1, &alarm.attribute)?;
        sheet.write_string(row, 2, &alarm.rule)?;
        sheet.write_string(row, 3, alarm.severity.as_str())?;
        sheet.write_number(row, 4, f64::from(alarm.count))?;
    }
    row += 2;
    sheet.write_string_with_format(row, 0, "Standing", bold)?;
    row += 1;
    for (c, header) in ["Asset", "Attribute", "Rule", "Severity", "Since", "Message"]
        .iter()
        .enumerate()
    {
        sheet.write_string_with_format(row, c as u16, *header, bold)?;
    }
    for alarm in &summary.standing {
        row += 1;
        sheet.write_string(row, 0, &alarm.asset_path)?;
        sheet.write_string(row, 1, &alarm.attribute)?;
        sheet.write_string(row, 2, &alarm.rule)?;
        sheet.write_string(row, 3, alarm.severity.as_str())?;
        sheet.write_number_with_format(row, 4, serial(alarm.started_at, zone), when)?;
        sheet.write_string(row, 5, &alarm.message)?;
    }
    sheet.set_column_width(0, 36)?;
    for col in 1..=5 {
        sheet.set_column_width(col, 17)?;
    }
    Ok(())
}

/// A line of the title block.
enum Fact<'a> {
    Text(&'a str),
    When(i64),
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use app::reports::Aggregate;

    use super::*;

    #[test]
    fn a_table_sheet_freezes_its_header_and_asset_column_and_sizes_its_columns() {
        let report = RenderedReport {
            name: "Daily".into(),
            scope: "/Plant".into(),
            from: 0,
            to: 86_400_000,
            time_zone: "UTC".into(),
            generated_at: 86_400_000,
            sections: vec![RenderedSection::Table {
                title: "Flows".into(),
                columns: vec![TableColumn {
                    attribute: "flow".into(),
                    aggregate: Aggregate::Average,
                    unit: Some("m³/h".into()),
                }],
                rows: vec![TableRow {
                    asset: "/Plant/Line 1/A pump with a long name".into(),
                    from: 0,
                    to: 86_400_000,
                    cells: vec![Some(1.5)],
                }],
            }],
        };
        let bytes = write(&report, &TimeZone::UTC).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut xml = String::new();
        archive
            .by_name("xl/worksheets/sheet2.xml")
            .unwrap()
            .read_to_string(&mut xml)
            .unwrap();
        assert!(
            xml.contains(r#"<pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" state="frozen"/>"#),
            "{xml}"
        );
        // The asset column fits its longest path (37 characters, and a margin).
        assert!(
            xml.contains(r#"<col min="1" max="1" width="39.7109375" customWidth="1"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn dates_are_local_serials_and_sheet_names_are_ones_excel_takes() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // 1970-01-01T00:00Z is 01:00 in Berlin: a day and a twenty-fourth after Excel's epoch day count.
        assert_eq!(serial(0, &TimeZone::UTC), 25_569.0);
        assert!((serial(0, &berlin) - (25_569.0 + 1.0 / 24.0)).abs() < 1e-9);
        let mut taken = Vec::new();
        assert_eq!(
            sheet_name("Flow: line 1/2 [m³]", "Table", 1, &mut taken),
            "Flow line 12 m³"
        );
        assert_eq!(sheet_name("", "Table", 2, &mut taken), "Table 2");
        assert_eq!(sheet_name("Report", "Table", 3, &mut taken), "Report (2)");
        let long = "A very long title that goes past thirty-one characters";
        let first = sheet_name(long, "Table", 4, &mut taken);
        let second = sheet_name(long, "Table", 5, &mut taken);
        assert_eq!(first.chars().count(), 31);
        assert!(second.ends_with(" (2)") && second.chars().count() == 31, "{second}");
    }
}

//! A rendered report as CSV (RFC 4180, UTF-8): each table section's rows under a header naming each column's
//! attribute, aggregate and unit, times in ISO 8601 with the report's offset. A text cell that a spreadsheet would
//! take for a formula (`=`, `+`, `-`, `@`, tab, carriage return first) is written with a leading `'`; numbers are
//! written as numbers.

use app::reports::{RenderedReport, RenderedSection};
use jiff::tz::TimeZone;

use super::period::iso;

/// A text cell, neutralised against formula injection.
pub fn text_cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

/// Writes every table of `report` to `out`, each after its title (if any) and its own header line.
pub fn write(report: &RenderedReport, zone: &TimeZone, out: impl std::io::Write) -> csv::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    for section in &report.sections {
        let RenderedSection::Table { title, columns, rows } = section else {
            continue;
        };
        if !title.is_empty() {
            writer.write_record([text_cell(title)])?;
        }
        let mut header = vec!["asset".to_string(), "from".to_string(), "to".to_string()];
        header.extend(columns.iter().map(|column| {
            let unit = column.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
            text_cell(&format!("{} {}{unit}", column.attribute, column.aggregate.as_str()))
        }));
        writer.write_record(&header)?;
        for row in rows {
            let mut record = vec![text_cell(&row.asset), iso(row.from, zone), iso(row.to, zone)];
            record.extend(
                row.cells
                    .iter()
                    .map(|cell| cell.map(|v| v.to_string()).unwrap_or_default()),
            );
            writer.write_record(&record)?;
        }
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use app::reports::{Aggregate, TableColumn, TableRow};

    use super::*;

    #[test]
    fn tables_are_rfc_4180_with_formulas_neutralised() {
        let report = RenderedReport {
            name: "Daily".into(),
            scope: "/Plant".into(),
            from: 0,
            to: 3_600_000,
            time_zone: "Europe/Berlin".into(),
            generated_at: 0,
            sections: vec![RenderedSection::Table {
                title: "Line 1, \"hot\" side".into(),
                columns: vec![TableColumn {
                    attribute: "temperature".into(),
                    aggregate: Aggregate::Average,
                    unit: Some("°C".into()),
                }],
                rows: vec![
                    TableRow {
                        asset: "=HYPERLINK(\"x\")".into(),
                        from: 0,
                        to: 3_600_000,
                        cells: vec![Some(-1.5)],
                    },
                    TableRow {
                        asset: "/Plant/Pump 7".into(),
                        from: 0,
                        to: 3_600_000,
                        cells: vec![None],
                    },
                ],
            }],
        };
        let mut out = Vec::new();
        write(&report, &TimeZone::get("Europe/Berlin").unwrap(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\"Line 1, \"\"hot\"\" side\"\r\n\
             asset,from,to,temperature average (°C)\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",1970-01-01T01:00:00+01:00,1970-01-01T02:00:00+01:00,-1.5\r\n\
             /Plant/Pump 7,1970-01-01T01:00:00+01:00,1970-01-01T02:00:00+01:00,\r\n"
        );
    }
}

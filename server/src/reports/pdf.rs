//! A rendered report as PDF, written with `krilla` (pages, the bundled DejaVu Sans embedded as subsets, vector
//! paths). Pages are A4, landscape when a table has many columns; the first starts with a title block (name,
//! scope, range, time zone, when generated) and every page ends with its number. Tables break across pages with
//! their header repeated; a trend is the same drawing as the charts' SVG and PNG (`app::charts::draw_trend`), drawn
//! through [`PdfBackend`], a plotters backend onto the page, so it stays vector.
//!
//! The document is laid out first (what goes on which page, as [`Item`]s) and written second, so that every page
//! can say how many there are.

use ab_glyph::{Font as _, FontRef};
use app::alarms::AlarmSummary;
use app::charts::{draw_trend, DrawOptions, Trend};
use app::reports::{cell_text, RenderedReport, RenderedSection, TableColumn, TableRow};
use jiff::tz::TimeZone;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Transform};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, LineCap, LineJoin, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use plotters::prelude::IntoDrawingArea;
use plotters_backend::{
    text_anchor::{HPos, VPos},
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use super::period::iso;
use super::service::{TREND_HEIGHT, TREND_WIDTH};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// A4 in points.
const A4: (f32, f32) = (595.28, 841.89);
const MARGIN: f32 = 42.0;
/// The footer's band at the bottom of every page.
const FOOTER: f32 = 24.0;
/// A table with more columns than this is laid out on landscape pages.
const PORTRAIT_COLUMNS: usize = 8;
const CELL_SIZE: f32 = 8.0;
const ROW_HEIGHT: f32 = 13.0;
const TEXT_SIZE: f32 = 10.0;
const HEADING_SIZE: f32 = 12.5;

const INK: (u8, u8, u8) = (0x11, 0x18, 0x27);
const MUTED: (u8, u8, u8) = (0x4b, 0x55, 0x63);
const RULE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);
const HEADER_FILL: (u8, u8, u8) = (0xf3, 0xf4, 0xf6);

/// A face: the font as the PDF embeds it and its metrics for layout.
#[derive(Clone)]
struct Face {
    font: Font,
    metrics: FontRef<'static>,
}

impl Face {
    fn load(data: &'static [u8]) -> Result<Face, PdfError> {
        let font = Font::new(data.into(), 0).ok_or(PdfError("the bundled font could not be read".into()))?;
        let metrics = FontRef::try_from_slice(data).map_err(|e| PdfError(e.to_string()))?;
        Ok(Face { font, metrics })
    }

    fn em(&self) -> f32 {
        self.metrics.units_per_em().unwrap_or(1000.0)
    }

    /// The width of `text` at `size` points.
    fn width(&self, text: &str, size: f32) -> f32 {
        let units: f32 = text
            .chars()
            .map(|c| self.metrics.h_advance_unscaled(self.metrics.glyph_id(c)))
            .sum();
        units * size / self.em()
    }

    fn ascent(&self, size: f32) -> f32 {
        self.metrics.ascent_unscaled() * size / self.em()
    }

    /// Ascent to descent, at `size`.
    fn height(&self, size: f32) -> f32 {
        self.metrics.height_unscaled() * size / self.em()
    }

    /// `text` cut to `width` with an ellipsis; `keep_end` keeps its end (the informative part of a path).
    fn fit(&self, text: &str, size: f32, width: f32, keep_end: bool) -> String {
        if self.width(text, size) <= width {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let room = width - self.width("…", size);
        let mut taken = 0.0;
        let mut n = 0;
        let order: Box<dyn Iterator<Item = &char>> = if keep_end {
            Box::new(chars.iter().rev())
        } else {
            Box::new(chars.iter())
        };
        for c in order {
            taken += self.width(&c.to_string(), size);
            if taken > room {
                break;
            }
            n += 1;
        }
        if keep_end {
            format!("…{}", chars[chars.len() - n..].iter().collect::<String>())
        } else {
            format!("{}…", chars[..n].iter().collect::<String>())
        }
    }

    /// `text` broken into lines no wider than `width` (at spaces; a word wider than a line is cut).
    fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() {
                    word.to_string()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, size) <= width || line.is_empty() {
                    line = candidate;
                } else {
                    lines.push(std::mem::take(&mut line));
                    line = word.to_string();
                }
                if self.width(&line, size) > width {
                    line = self.fit(&line, size, width, false);
                }
            }
            lines.push(line);
        }
        lines
    }
}

#[derive(Debug)]
pub struct PdfError(String);

impl std::fmt::Display for PdfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the PDF could not be written: {}", self.0)
    }
}

impl std::error::Error for PdfError {}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

/// What goes on a page, in page coordinates (points from the top left).
enum Item {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: (u8, u8, u8),
        text: String,
    },
    Fill {
        rect: (f32, f32, f32, f32),
        color: (u8, u8, u8),
    },
    Line {
        from: (f32, f32),
        to: (f32, f32),
        color: (u8, u8, u8),
    },
    Trend {
        x: f32,
        y: f32,
        width: f32,
        section: usize,
    },
}

/// A table as the PDF shows it: text cells, each column's share of the width and alignment.
struct TextTable {
    headers: Vec<String>,
    shares: Vec<f32>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

/// Lays items out on pages, top to bottom, starting a page when one is full.
struct Layout {
    regular: Face,
    bold: Face,
    page: (f32, f32),
    pages: Vec<Vec<Item>>,
    y: f32,
}

impl Layout {
    fn left(&self) -> f32 {
        MARGIN
    }

    fn width(&self) -> f32 {
        self.page.0 - 2.0 * MARGIN
    }

    fn bottom(&self) -> f32 {
        self.page.1 - MARGIN - FOOTER
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Room for `height` more points on this page, or a new page.
    fn room(&mut self, height: f32) {
        if self.y + height > self.bottom() && self.y > MARGIN {
            self.new_page();
        }
    }

    fn push(&mut self, item: Item) {
        if let Some(page) = self.pages.last_mut() {
            page.push(item);
        }
    }

    fn face(&self, bold: bool) -> &Face {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    /// A line of text whose top is at the current position; moves down by `leading`.
    fn line(&mut self, x: f32, text: String, size: f32, bold: bool, color: (u8, u8, u8), leading: f32) {
        self.room(leading);
        let y = self.y + self.face(bold).ascent(size);
        self.push(Item::Text {
            x,
            y,
            size,
            bold,
            color,
            text,
        });
        self.y += leading;
    }

    fn paragraph(&mut self, text: &str, size: f32, bold: bool, color: (u8, u8, u8)) {
        let lines = self.face(bold).wrap(text, size, self.width());
        for line in lines {
            self.line(self.left(), line, size, bold, color, size * 1.4);
        }
    }

    fn heading(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        // Keep a heading with at least three lines of what follows.
        self.room(HEADING_SIZE * 1.6 + 3.0 * ROW_HEIGHT);
        self.y += 6.0;
        self.paragraph(text, HEADING_SIZE, true, INK);
        self.y += 2.0;
    }

    fn header_row(&mut self, table: &TextTable, lefts: &[f32], widths: &[f32], height: f32) {
        let top = self.y;
        self.push(Item::Fill {
            rect: (self.left(), top, self.width(), height),
            color: HEADER_FILL,
        });
        for (i, header) in table.headers.iter().enumerate() {
            let lines = self.bold.wrap(header, CELL_SIZE, widths[i] - 6.0);
            for (n, line) in lines.iter().enumerate().take(3) {
                let x = match table.aligns[i] {
                    Align::Left => lefts[i] + 3.0,
                    Align::Right => lefts[i] + widths[i] - 3.0 - self.bold.width(line, CELL_SIZE),
                };
                self.push(Item::Text {
                    x,
                    y: top + 3.0 + self.bold.ascent(CELL_SIZE) + n as f32 * CELL_SIZE * 1.25,
                    size: CELL_SIZE,
                    bold: true,
                    color: INK,
                    text: line.clone(),
                });
            }
        }
        self.y += height;
        self.push(Item::Line {
            from: (self.left(), self.y),
            to: (self.left() + self.width(), self.y),
            color: MUTED,
        });
    }

    /// A table; on each page it continues on, its header is repeated.
    fn table(&mut self, table: &TextTable) {
        let total: f32 = table.shares.iter().sum();
        let widths: Vec<f32> = table.shares.iter().map(|s| s / total * self.width()).collect();
        let mut lefts = Vec::with_capacity(widths.len());
        let mut x = self.left();
        for w in &widths {
            lefts.push(x);
            x += w;
        }
        let header_lines = table
            .headers
            .iter()
            .zip(&widths)
            .map(|(h, w)| self.bold.wrap(h, CELL_SIZE, w - 6.0).len().min(3))
            .max()
            .unwrap_or(1);
        let header_height = 6.0 + header_lines as f32 * CELL_SIZE * 1.25;
        self.room(header_height + 2.0 * ROW_HEIGHT);
        self.header_row(table, &lefts, &widths, header_height);
        for row in &table.rows {
            if self.y + ROW_HEIGHT > self.bottom() {
                self.new_page();
                self.header_row(table, &lefts, &widths, header_height);
            }
            for (i, cell) in row.iter().enumerate() {
                let room = widths[i] - 6.0;
                let text = self.regular.fit(cell, CELL_SIZE, room, i == 0);
                let x = match table.aligns[i] {
                    Align::Left => lefts[i] + 3.0,
                    Align::Right => lefts[i] + widths[i] - 3.0 - self.regular.width(&text, CELL_SIZE),
                };
                self.push(Item::Text {
                    x,
                    y: self.y + 3.0 + self.regular.ascent(CELL_SIZE),
                    size: CELL_SIZE,
                    bold: false,
                    color: INK,
                    text,
                });
            }
            self.y += ROW_HEIGHT;
            self.push(Item::Line {
                from: (self.left(), self.y),
                to: (self.left() + self.width(), self.y),
                color: RULE,
            });
        }
        if table.rows.is_empty() {
            self.line(
                self.left() + 3.0,
                "No rows.".into(),
                CELL_SIZE,
                false,
                MUTED,
                ROW_HEIGHT,
            );
        }
        self.y += 8.0;
    }
}

fn numbers_table(columns: &[TableColumn], rows: &[TableRow], zone: &TimeZone, with_times: bool) -> TextTable {
    let mut headers = vec!["Asset".to_string()];
    let mut shares = vec![3.0];
    let mut aligns = vec![Align::Left];
    if with_times {
        headers.push("From".into());
        shares.push(1.6);
        aligns.push(Align::Left);
    }
    for c in columns {
        let unit = c.unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
        headers.push(format!("{} {}{unit}", c.attribute, c.aggregate.as_str()));
        shares.push(1.0);
        aligns.push(Align::Right);
    }
    let rows = rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.asset.clone()];
            if with_times {
                cells.push(short_time(row.from, zone));
            }
            cells.extend(row.cells.iter().map(|v| cell_text(*v)));
            cells
        })
        .collect();
    TextTable {
        headers,
        shares,
        aligns,
        rows,
    }
}

/// `2026-12-03 06:00`, in the report's zone.
fn short_time(ms: i64, zone: &TimeZone) -> String {
    let text = iso(ms, zone);
    text.get(..16).map(|t| t.replace('T', " ")).unwrap_or(text)
}

fn frequent_table(summary: &AlarmSummary) -> TextTable {
    TextTable {
        headers: ["Asset", "Attribute", "Rule", "Severity", "Raised"]
            .map(String::from)
            .to_vec(),
        shares: vec![3.0, 1.5, 1.5, 1.0, 0.8],
        aligns: vec![Align::Left, Align::Left, Align::Left, Align::Left, Align::Right],
        rows: summary
            .most_frequent
            .iter()
            .map(|f| {
                vec![
                    f.asset_path.clone(),
                    f.attribute.clone(),
                    f.rule.clone(),
                    f.severity.as_str().to_string(),
                    f.count.to_string(),
                ]
            })
            .collect(),
    }
}

fn standing_table(summary: &AlarmSummary, zone: &TimeZone) -> TextTable {
    TextTable {
        headers: ["Asset", "Attribute", "Severity", "Since", "Message"]
            .map(String::from)
            .to_vec(),
        shares: vec![2.6, 1.3, 0.9, 1.5, 2.5],
        aligns: vec![Align::Left; 5],
        rows: summary
            .standing
            .iter()
            .map(|a| {
                vec![
                    a.asset_path.clone(),
                    a.attribute.clone(),
                    a.severity.as_str().to_string(),
                    short_time(a.started_at, zone),
                    a.message.clone(),
                ]
            })
            .collect(),
    }
}

/// The pages of `report`, laid out.
fn lay_out(report: &RenderedReport, zone: &TimeZone) -> Result<Layout, PdfError> {
    let landscape = report.sections.iter().any(|s| match s {
        RenderedSection::Table { columns, .. } => columns.len() + 1 > PORTRAIT_COLUMNS,
        _ => false,
    });
    let mut layout = Layout {
        regular: Face::load(REGULAR)?,
        bold: Face::load(BOLD)?,
        page: if landscape { (A4.1, A4.0) } else { A4 },
        pages: Vec::new(),
        y: MARGIN,
    };
    layout.new_page();
    // The title block.
    layout.paragraph(&report.name, 18.0, true, INK);
    layout.y += 4.0;
    for (label, value) in [
        ("Scope", report.scope.clone()),
        (
            "Range",
            format!("{} to {}", short_time(report.from, zone), short_time(report.to, zone)),
        ),
        ("Time zone", report.time_zone.clone()),
        ("Generated", short_time(report.generated_at, zone)),
    ] {
        layout.line(MARGIN, label.to_string(), 9.0, true, MUTED, 0.0);
        layout.line(MARGIN + 70.0, value, 9.0, false, INK, 13.0);
    }
    layout.y += 6.0;
    layout.push(Item::Line {
        from: (MARGIN, layout.y),
        to: (MARGIN + layout.width(), layout.y),
        color: MUTED,
    });
    layout.y += 8.0;
    for (index, section) in report.sections.iter().enumerate() {
        match section {
            RenderedSection::Text { heading, body } => {
                layout.heading(heading);
                if !body.is_empty() {
                    layout.paragraph(body, TEXT_SIZE, false, INK);
                }
                layout.y += 6.0;
            }
            RenderedSection::Table { title, columns, rows } => {
                layout.heading(title);
                let with_times = rows.iter().any(|r| r.from != report.from || r.to != report.to);
                layout.table(&numbers_table(columns, rows, zone, with_times));
            }
            RenderedSection::Trend { title, hidden, trend } => {
                layout.heading(title);
                let width = layout.width();
                let height = width * TREND_HEIGHT as f32 / TREND_WIDTH as f32;
                layout.room(height + 4.0);
                layout.push(Item::Trend {
                    x: layout.left(),
                    y: layout.y,
                    width,
                    section: index,
                });
                layout.y += height + 4.0;
                if trend.series.is_empty() {
                    layout.paragraph("No series to show.", TEXT_SIZE, false, MUTED);
                }
                if *hidden > 0 {
                    let text = format!("{hidden} series of this trend are outside your grants and not shown.");
                    layout.paragraph(&text, 9.0, false, MUTED);
                }
                layout.y += 8.0;
            }
            RenderedSection::Alarms { title, summary } => {
                layout.heading(title);
                for (label, fact) in summary.facts() {
                    layout.paragraph(&format!("{label}: {fact}."), TEXT_SIZE, false, INK);
                }
                layout.y += 6.0;
                layout.line(MARGIN, "Most frequent".into(), TEXT_SIZE, true, INK, TEXT_SIZE * 1.5);
                layout.table(&frequent_table(summary));
                layout.line(
                    MARGIN,
                    "Standing (active for more than 24 hours at the end of the range)".into(),
                    TEXT_SIZE,
                    true,
                    INK,
                    TEXT_SIZE * 1.5,
                );
                layout.table(&standing_table(summary, zone));
            }
        }
    }
    Ok(layout)
}

fn color((r, g, b): (u8, u8, u8)) -> rgb::Color {
    rgb::Color::new(r, g, b)
}

fn fill(c: (u8, u8, u8), alpha: f64) -> Fill {
    Fill {
        paint: color(c).into(),
        opacity: NormalizedF32::new(alpha.clamp(0.0, 1.0) as f32).unwrap_or(NormalizedF32::ONE),
        rule: Default::default(),
    }
}

fn stroke(c: (u8, u8, u8), alpha: f64, width: f32) -> Stroke {
    Stroke {
        paint: color(c).into(),
        width,
        opacity: NormalizedF32::new(alpha.clamp(0.0, 1.0) as f32).unwrap_or(NormalizedF32::ONE),
        line_cap: LineCap::Butt,
        line_join: LineJoin::Round,
        ..Stroke::default()
    }
}

fn rect_path(x: f32, y: f32, w: f32, h: f32) -> Option<krilla::geom::Path> {
    let mut builder = PathBuilder::new();
    builder.push_rect(Rect::from_xywh(x, y, w.max(0.01), h.max(0.01))?);
    builder.finish()
}

/// The report as PDF bytes.
pub fn write(report: &RenderedReport, zone: &TimeZone) -> Result<Vec<u8>, PdfError> {
    let layout = lay_out(report, zone)?;
    let mut document = Document::new();
    document.set_metadata(
        krilla::metadata::Metadata::new()
            .title(report.name.clone())
            .creator("Gantry".into()),
    );
    let count = layout.pages.len();
    let (page_width, page_height) = layout.page;
    for (number, items) in layout.pages.iter().enumerate() {
        let settings =
            PageSettings::from_wh(page_width, page_height).ok_or_else(|| PdfError("a page has no size".into()))?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for item in items {
            draw_item(&mut surface, &layout, report, zone, item)?;
        }
        let footer = format!("{} · page {} of {count}", report.name, number + 1);
        let footer = layout.regular.fit(&footer, 8.0, layout.width(), false);
        let x = page_width - MARGIN - layout.regular.width(&footer, 8.0);
        draw_text(
            &mut surface,
            &layout.regular,
            x,
            page_height - MARGIN + 4.0,
            8.0,
            MUTED,
            &footer,
        );
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| PdfError(format!("{e:?}")))
}

fn draw_text(surface: &mut Surface<'_>, face: &Face, x: f32, baseline: f32, size: f32, c: (u8, u8, u8), text: &str) {
    surface.set_fill(Some(fill(c, 1.0)));
    surface.set_stroke(None);
    surface.draw_text(
        Point::from_xy(x, baseline),
        face.font.clone(),
        size,
        text,
        false,
        TextDirection::Auto,
    );
}

fn draw_item(
    surface: &mut Surface<'_>,
    layout: &Layout,
    report: &RenderedReport,
    zone: &TimeZone,
    item: &Item,
) -> Result<(), PdfError> {
    match item {
        Item::Text {
            x,
            y,
            size,
            bold,
            color,
            text,
        } => draw_text(surface, layout.face(*bold), *x, *y, *size, *color, text),
        Item::Fill { rect, color } => {
            if let Some(path) = rect_path(rect.0, rect.1, rect.2, rect.3) {
                surface.set_stroke(None);
                surface.set_fill(Some(fill(*color, 1.0)));
                surface.draw_path(&path);
            }
        }
        Item::Line { from, to, color } => {
            let mut builder = PathBuilder::new();
            builder.move_to(from.0, from.1);
            builder.line_to(to.0, to.1);
            if let Some(path) = builder.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(stroke(*color, 1.0, 0.5)));
                surface.draw_path(&path);
            }
        }
        Item::Trend { x, y, width, section } => {
            if let Some(RenderedSection::Trend { trend, .. }) = report.sections.get(*section) {
                if !trend.series.is_empty() {
                    let scale = width / TREND_WIDTH as f32;
                    surface.push_transform(&Transform::from_row(scale, 0.0, 0.0, scale, *x, *y));
                    let drawn = draw_picture(surface, &layout.regular, trend, zone);
                    surface.pop();
                    drawn?;
                }
            }
        }
    }
    Ok(())
}

fn draw_picture(surface: &mut Surface<'_>, face: &Face, trend: &Trend, zone: &TimeZone) -> Result<(), PdfError> {
    let options = DrawOptions {
        offsets: super::period::offsets(zone, trend.from, trend.to),
    };
    let backend = PdfBackend {
        surface,
        face,
        size: (TREND_WIDTH, TREND_HEIGHT),
    };
    draw_trend(&backend.into_drawing_area(), trend, &options).map_err(PdfError)
}

/// A plotters backend that draws onto a PDF surface in vector form, one pixel of the chart being one unit of the
/// surface's current transform.
pub struct PdfBackend<'a, 'p> {
    surface: &'a mut Surface<'p>,
    face: &'a Face,
    size: (u32, u32),
}

#[derive(Debug)]
pub struct NoError;

impl std::fmt::Display for NoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for NoError {}

type Drawn = Result<(), DrawingErrorKind<NoError>>;

impl PdfBackend<'_, '_> {
    fn paint(&mut self, path: Option<krilla::geom::Path>, color: BackendColor, stroke_width: Option<u32>) {
        let Some(path) = path else { return };
        if color.alpha <= 0.0 {
            return;
        }
        match stroke_width {
            Some(width) => {
                self.surface.set_fill(None);
                self.surface
                    .set_stroke(Some(stroke(color.rgb, color.alpha, width.max(1) as f32)));
            }
            None => {
                self.surface.set_stroke(None);
                self.surface.set_fill(Some(fill(color.rgb, color.alpha)));
            }
        }
        self.surface.draw_path(&path);
    }
}

fn polyline(points: impl IntoIterator<Item = BackendCoord>, close: bool) -> Option<krilla::geom::Path> {
    let mut builder = PathBuilder::new();
    let mut first = true;
    for (x, y) in points {
        if first {
            builder.move_to(x as f32, y as f32);
            first = false;
        } else {
            builder.line_to(x as f32, y as f32);
        }
    }
    if close {
        builder.close();
    }
    builder.finish()
}

impl DrawingBackend for PdfBackend<'_, '_> {
    type ErrorType = NoError;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Drawn {
        Ok(())
    }

    fn present(&mut self) -> Drawn {
        Ok(())
    }

    fn draw_pixel(&mut self, (x, y): BackendCoord, color: BackendColor) -> Drawn {
        self.paint(rect_path(x as f32, y as f32, 1.0, 1.0), color, None);
        Ok(())
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Drawn {
        self.paint(polyline([from, to], false), style.color(), Some(style.stroke_width()));
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        (x0, y0): BackendCoord,
        (x1, y1): BackendCoord,
        style: &S,
        filled: bool,
    ) -> Drawn {
        let (x, y) = (x0.min(x1) as f32, y0.min(y1) as f32);
        let (w, h) = ((x1 - x0).abs() as f32, (y1 - y0).abs() as f32);
        let width = (!filled).then(|| style.stroke_width());
        self.paint(rect_path(x, y, w, h), style.color(), width);
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Drawn {
        self.paint(polyline(path, false), style.color(), Some(style.stroke_width()));
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Drawn {
        self.paint(polyline(vert, true), style.color(), None);
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(&mut self, (cx, cy): BackendCoord, radius: u32, style: &S, filled: bool) -> Drawn {
        // Four cubic Béziers, the usual circle approximation.
        const K: f32 = 0.552_284_8;
        let (cx, cy, r) = (cx as f32, cy as f32, radius as f32);
        let k = K * r;
        let mut builder = PathBuilder::new();
        builder.move_to(cx + r, cy);
        builder.cubic_to(cx + r, cy + k, cx + k, cy + r, cx, cy + r);
        builder.cubic_to(cx - k, cy + r, cx - r, cy + k, cx - r, cy);
        builder.cubic_to(cx - r, cy - k, cx - k, cy - r, cx, cy - r);
        builder.cubic_to(cx + k, cy - r, cx + r, cy - k, cx + r, cy);
        builder.close();
        let width = (!filled).then(|| style.stroke_width());
        self.paint(builder.finish(), style.color(), width);
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, (x, y): BackendCoord) -> Drawn {
        let color = style.color();
        if color.alpha <= 0.0 || text.is_empty() {
            return Ok(());
        }
        // plotters sizes a font by its height (ascent to descent); the PDF by its em.
        let px = style.size() as f32;
        let size = px * self.face.em() / self.face.metrics.height_unscaled();
        let width = self.face.width(text, size);
        let height = self.face.height(size);
        let anchor = style.anchor();
        let left = match anchor.h_pos {
            HPos::Left => x as f32,
            HPos::Center => x as f32 - width / 2.0,
            HPos::Right => x as f32 - width,
        };
        let top = match anchor.v_pos {
            VPos::Top => y as f32,
            VPos::Center => y as f32 - height / 2.0,
            VPos::Bottom => y as f32 - height,
        };
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(fill(color.rgb, color.alpha)));
        self.surface.draw_text(
            Point::from_xy(left, top + self.face.ascent(size)),
            self.face.font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<NoError>> {
        let px = style.size() as f32;
        let size = px * self.face.em() / self.face.metrics.height_unscaled();
        Ok((self.face.width(text, size).ceil() as u32, px.ceil() as u32))
    }
}

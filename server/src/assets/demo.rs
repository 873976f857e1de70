//! `--demo`: a plausible plant built from templates with real units and limits: two sites with production lines
//! of pumps and motors, a tank farm and compressed-air utilities. Seeding is idempotent: what exists is kept.

use app::alarms::{AlarmRule, LimitLevel, RuleKind, Severity};
use app::assets::{AttributeTemplate, Limits, NewAsset, TemplateSpec, ValueType};
use app::auth::Actor;
use app::charts::{DashboardSpec, Panel, PanelContent, SeriesRef};
use app::error::AppError;
use app::services::ModelService;

use super::Model;

/// An attribute with the usual alarm rules on each of its limits: HiHi and LoLo critical, Hi and Lo high, with a
/// deadband of 1 % of the display range and a short on-delay, so that one noisy reading raises nothing.
fn attribute(name: &str, unit: &str, limits: [Option<f64>; 4], display: (f64, f64)) -> AttributeTemplate {
    let levels = [
        (LimitLevel::LoLo, "Low low", Severity::Critical),
        (LimitLevel::Lo, "Low", Severity::High),
        (LimitLevel::Hi, "High", Severity::High),
        (LimitLevel::HiHi, "High high", Severity::Critical),
    ];
    let alarms = levels
        .into_iter()
        .zip(limits)
        .filter(|(_, limit)| limit.is_some())
        .map(|((level, rule, severity), _)| AlarmRule {
            name: rule.into(),
            condition: RuleKind::Limit {
                level,
                deadband: (display.1 - display.0) / 100.0,
            },
            severity,
            on_delay_seconds: 2,
            off_delay_seconds: 0,
            message: None,
            renotify_minutes: None,
        })
        .collect();
    AttributeTemplate {
        name: name.into(),
        value_type: ValueType::Float,
        unit: Some(unit.into()),
        description: String::new(),
        limits: Limits {
            lolo: limits[0],
            lo: limits[1],
            hi: limits[2],
            hihi: limits[3],
        },
        display_min: Some(display.0),
        display_max: Some(display.1),
        is_series: true,
        retention_tier: None,
        alarms,
    }
}

fn template(
    name: &str,
    base: Option<&str>,
    category: &str,
    pattern: &str,
    attributes: Vec<AttributeTemplate>,
) -> TemplateSpec {
    TemplateSpec {
        name: name.into(),
        base: base.map(Into::into),
        description: String::new(),
        naming_pattern: Some(pattern.into()),
        categories: vec![category.into()],
        attributes,
    }
}

fn templates() -> Vec<TemplateSpec> {
    let none = None;
    let mut running = attribute("running", "", [none; 4], (0.0, 1.0));
    running.value_type = ValueType::Boolean;
    running.unit = None;
    running.display_min = None;
    running.display_max = None;
    let mut volume = attribute("capacity", "m³", [none; 4], (0.0, 500.0));
    volume.is_series = false;
    vec![
        template(
            "Rotating equipment",
            None,
            "mechanical",
            "Machine {n}",
            vec![
                attribute("speed", "rpm", [None, None, Some(3000.0), Some(3300.0)], (0.0, 3600.0)),
                attribute("vibration", "mm/s", [None, None, Some(4.5), Some(7.1)], (0.0, 15.0)),
                attribute(
                    "bearing temperature",
                    "°C",
                    [None, None, Some(80.0), Some(95.0)],
                    (0.0, 120.0),
                ),
            ],
        ),
        template(
            "Centrifugal pump",
            Some("Rotating equipment"),
            "process",
            "Pump {n}",
            vec![
                attribute("flow", "m³/h", [None, Some(10.0), Some(110.0), None], (0.0, 150.0)),
                attribute(
                    "discharge pressure",
                    "bar",
                    [None, Some(2.0), Some(9.0), Some(10.5)],
                    (0.0, 12.0),
                ),
                // Pumps tolerate more vibration than the generic machine (ISO 10816 class II).
                attribute("vibration", "mm/s", [None, None, Some(7.1), Some(11.0)], (0.0, 15.0)),
            ],
        ),
        template(
            "Electric motor",
            Some("Rotating equipment"),
            "electrical",
            "Motor {n}",
            vec![
                attribute("current", "A", [None, None, Some(45.0), Some(52.0)], (0.0, 60.0)),
                attribute("power", "kW", [None, None, None, None], (0.0, 30.0)),
                attribute(
                    "winding temperature",
                    "°C",
                    [None, None, Some(120.0), Some(140.0)],
                    (0.0, 160.0),
                ),
            ],
        ),
        template(
            "Storage tank",
            None,
            "storage",
            "Tank {n}",
            vec![
                attribute(
                    "level",
                    "%",
                    [Some(5.0), Some(10.0), Some(90.0), Some(95.0)],
                    (0.0, 100.0),
                ),
                attribute("temperature", "°C", [None, Some(5.0), Some(60.0), None], (-10.0, 80.0)),
                volume,
            ],
        ),
        template(
            "Air compressor",
            Some("Rotating equipment"),
            "utilities",
            "Compressor {n}",
            vec![
                attribute(
                    "discharge pressure",
                    "bar",
                    [None, Some(6.0), Some(8.5), Some(9.5)],
                    (0.0, 12.0),
                ),
                attribute(
                    "outlet temperature",
                    "°C",
                    [None, None, Some(105.0), Some(115.0)],
                    (0.0, 130.0),
                ),
                running,
            ],
        ),
    ]
}

/// Which templates, how many of each.
type Equipment = &'static [(&'static str, usize)];

/// (site, area, equipment)
const LAYOUT: &[(&str, &str, Equipment)] = &[
    (
        "North Plant",
        "Line 1",
        &[("Centrifugal pump", 3), ("Electric motor", 3)],
    ),
    (
        "North Plant",
        "Line 2",
        &[("Centrifugal pump", 2), ("Electric motor", 2)],
    ),
    ("North Plant", "Utilities", &[("Air compressor", 2)]),
    (
        "South Plant",
        "Line 1",
        &[("Centrifugal pump", 4), ("Electric motor", 4)],
    ),
    ("South Plant", "Tank Farm", &[("Storage tank", 4)]),
    ("South Plant", "Utilities", &[("Air compressor", 1)]),
];

/// A shared dashboard over North Plant's first line: a trend of two pumps' flow, current values, the site's active
/// alarms and a table of the line's motor currents.
fn dashboard() -> DashboardSpec {
    let line = "/North Plant/Line 1";
    let series = |asset: &str, attribute: &str| SeriesRef::new(format!("{line}/{asset}"), attribute);
    let panel = |title: &str, (x, y, w, h): (u8, u8, u8, u8), content| Panel {
        title: title.into(),
        x,
        y,
        w,
        h,
        content,
    };
    let value = |title: &str, x: u8, series: SeriesRef| panel(title, (x, 4, 3, 1), PanelContent::Value { series });
    DashboardSpec {
        name: "North Plant, Line 1".into(),
        shared: true,
        panels: vec![
            panel(
                "Pump flow",
                (0, 0, 12, 4),
                PanelContent::Trend {
                    series: vec![series("Pump 1", "flow"), series("Pump 2", "flow")],
                    range: Some("8h".into()),
                },
            ),
            value("Pump 1 flow", 0, series("Pump 1", "flow")),
            value("Pump 1 discharge", 3, series("Pump 1", "discharge pressure")),
            value("Pump 2 flow", 6, series("Pump 2", "flow")),
            value("Pump 3 flow", 9, series("Pump 3", "flow")),
            panel(
                "North Plant alarms",
                (0, 5, 6, 3),
                PanelContent::Alarms {
                    subtree: "/North Plant".into(),
                },
            ),
            panel(
                "Motor currents",
                (6, 5, 6, 3),
                PanelContent::Table {
                    series: (1..=3).map(|n| series(&format!("Motor {n}"), "current")).collect(),
                },
            ),
        ],
    }
}

impl Model {
    /// Seeds the demo plant as `actor` (an admin); returns how many assets it created.
    pub async fn seed_demo(&self, actor: &Actor) -> Result<usize, AppError> {
        let existing: Vec<String> = self
            .list_templates(actor)
            .await?
            .into_iter()
            .map(|t| t.spec.name)
            .collect();
        for spec in templates() {
            if !existing.contains(&spec.name) {
                self.create_template(actor, spec).await?;
            }
        }
        let mut created = 0;
        for (site, area, equipment) in LAYOUT {
            let site_id = self.ensure_asset(actor, None, site, None, &mut created).await?;
            let area_id = self
                .ensure_asset(actor, Some(site_id), area, None, &mut created)
                .await?;
            for (template, count) in *equipment {
                let pattern = templates()
                    .into_iter()
                    .find(|t| t.name == *template)
                    .and_then(|t| t.naming_pattern)
                    .unwrap_or_else(|| "{n}".into());
                for n in 1..=*count {
                    let name = pattern.replace("{n}", &n.to_string());
                    self.ensure_asset(actor, Some(area_id), &name, Some(template), &mut created)
                        .await?;
                }
            }
        }
        let demo = dashboard();
        if !self
            .dashboards
            .shared_specs(actor)
            .await?
            .iter()
            .any(|d| d.name == demo.name)
        {
            self.dashboards.import_shared(actor, &demo, false).await?;
        }
        Ok(created)
    }

    async fn ensure_asset(
        &self,
        actor: &Actor,
        parent: Option<i64>,
        name: &str,
        template: Option<&str>,
        created: &mut usize,
    ) -> Result<i64, AppError> {
        if let Some(existing) = self.children(actor, parent).await?.into_iter().find(|a| a.name == name) {
            return Ok(existing.id);
        }
        let asset = NewAsset {
            parent_id: parent,
            name: name.into(),
            template: template.map(Into::into),
            description: String::new(),
            labels: vec!["demo".into()],
        };
        *created += 1;
        Ok(self.create_asset(actor, asset).await?.summary.id)
    }
}

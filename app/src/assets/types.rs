//! The plant model's shared types: templates with attribute templates (single inheritance, overrides by name) and
//! the asset tree.

use serde::{Deserialize, Serialize};

use crate::alarms::{AlarmRule, LimitLevel, RuleKind};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ValueType {
    Float,
    Integer,
    Boolean,
    String,
}

impl ValueType {
    /// `float`, `integer`, `boolean` or `string`, as every form and file writes it.
    pub fn parse(text: &str) -> Result<ValueType, AppError> {
        match text.trim() {
            "float" => Ok(ValueType::Float),
            "integer" => Ok(ValueType::Integer),
            "boolean" => Ok(ValueType::Boolean),
            "string" => Ok(ValueType::String),
            other => Err(AppError::bad_request(format!(
                "unknown value type {other:?}: use float, integer, boolean or string"
            ))),
        }
    }
}

/// Alarm limits, from low-low to high-high; any may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lolo: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lo: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hi: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hihi: Option<f64>,
}

impl Limits {
    /// The limit a level refers to, if set.
    pub fn at(&self, level: LimitLevel) -> Option<f64> {
        match level {
            LimitLevel::LoLo => self.lolo,
            LimitLevel::Lo => self.lo,
            LimitLevel::Hi => self.hi,
            LimitLevel::HiHi => self.hihi,
        }
    }

    /// Which band a value is in: `hihi`, `hi`, `lo`, `lolo` (the most severe limit it reached) or `normal`.
    pub fn band(&self, value: f64) -> &'static str {
        let reached =
            |limit: Option<f64>, above: bool| limit.is_some_and(|l| if above { value >= l } else { value <= l });
        if reached(self.hihi, true) {
            "hihi"
        } else if reached(self.lolo, false) {
            "lolo"
        } else if reached(self.hi, true) {
            "hi"
        } else if reached(self.lo, false) {
            "lo"
        } else {
            "normal"
        }
    }

    /// LoLo ≤ Lo ≤ Hi ≤ HiHi for the limits that are set.
    pub fn validate(&self) -> Result<(), String> {
        let set: Vec<(&str, f64)> = [
            ("lolo", self.lolo),
            ("lo", self.lo),
            ("hi", self.hi),
            ("hihi", self.hihi),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        if let Some((name, _)) = set.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("limit {name} must be a finite number"));
        }
        for pair in set.windows(2) {
            if pair[0].1 > pair[1].1 {
                return Err(format!(
                    "limit {} ({}) is above {} ({})",
                    pair[0].0, pair[0].1, pair[1].0, pair[1].1
                ));
            }
        }
        Ok(())
    }
}

/// An attribute every asset built from a template gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AttributeTemplate {
    pub name: String,
    pub value_type: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_max: Option<f64>,
    /// A time series (readings arrive over time) or a static value.
    #[serde(default = "default_true")]
    pub is_series: bool,
    /// How long readings are kept: a tier name from the configuration (`raw`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_tier: Option<String>,
    /// Alarm rules every asset with this attribute gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmRule>,
}

impl AttributeTemplate {
    /// Checks rules against this attribute: valid and uniquely named, on a time series, numeric where they compare
    /// numbers, and limit rules only on limits the attribute has.
    pub fn check_rules(&self, rules: &[AlarmRule]) -> Result<(), AppError> {
        crate::alarms::validate_rules(&self.name, rules)?;
        for rule in rules {
            // Rules meeting their attribute: a rule across fields, which no schema states.
            let refuse = |why: &str| {
                Err(AppError::new(
                    crate::error::ErrorKind::Unprocessable,
                    format!("attribute {:?}, rule {:?}: {why}", self.name, rule.name),
                ))
            };
            if !self.is_series {
                return refuse("alarm rules watch time series, and this attribute is a static value");
            }
            let numeric = matches!(self.value_type, ValueType::Float | ValueType::Integer);
            match &rule.condition {
                RuleKind::Limit { level, .. } => {
                    if !numeric {
                        return refuse("limit rules need a float or integer attribute");
                    }
                    if self.limits.at(*level).is_none() {
                        return refuse(&format!("the attribute has no {} limit", level.as_str()));
                    }
                }
                RuleKind::RateOfChange { .. } if !numeric => return refuse("rate-of-change rules need a number"),
                RuleKind::State { .. } if matches!(self.value_type, ValueType::Float | ValueType::String) => {
                    return refuse("state rules need a boolean or integer attribute");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

/// What the attribute form of the templates page sets: the attribute's type, unit, limits and kind (series or
/// static); its description, display range, retention and rules stay as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub name: String,
    pub value_type: ValueType,
    pub unit: Option<String>,
    pub limits: Limits,
    pub is_series: bool,
}

/// One change to a template, made by the template service on the template as stored (so that two people
/// editing different attributes lose nothing, and a change based on an old version is refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TemplateEdit {
    /// Adds the attribute, or changes the template's own one; naming an inherited attribute overrides it.
    SetAttribute(AttributeChange),
    /// Removes one of the template's own attributes (an override goes back to the inherited one).
    RemoveAttribute { name: String },
    /// Adds a rule to an attribute; a rule on an inherited attribute makes the template override it.
    AddRule { attribute: String, rule: AlarmRule },
    /// Removes a rule from one of the template's own attributes.
    RemoveRule { attribute: String, rule: String },
}

/// What creating or replacing a template takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TemplateSpec {
    pub name: String,
    /// The name of the base template, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How new assets from this template are named, such as `Pump {n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The template's own attribute templates; they override inherited ones of the same name.
    #[serde(default)]
    pub attributes: Vec<AttributeTemplate>,
}

/// An attribute as an asset or template has it after inheritance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EffectiveAttribute {
    #[serde(flatten)]
    pub attribute: AttributeTemplate,
    /// The template that declared this version of the attribute.
    pub defined_in: String,
    /// True when the declaring template is not the one asked about (or, for an asset, always true).
    pub inherited: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TemplateView {
    pub id: i64,
    /// Bumped by every change; a write that names it is refused (409) if another came first.
    pub version: i64,
    #[serde(flatten)]
    pub spec: TemplateSpec,
    /// Own and inherited attributes, base first, overrides applied.
    pub effective_attributes: Vec<EffectiveAttribute>,
    /// How many assets are built from this template.
    pub asset_count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewAsset {
    /// The parent asset's id; none makes a root (a site, say).
    #[serde(default)]
    pub parent_id: Option<i64>,
    pub name: String,
    /// The template's name; none makes a free-form asset.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A partial update: rename, move (a new parent; `Some(None)` moves to the root), describe, label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<i64>))]
    pub parent_id: Option<Option<i64>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// `absent` → `None`, `null` → `Some(None)`, a value → `Some(Some(value))`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Option<i64>>, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(deserializer).map(Some)
    }
}

/// A node of the tree as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetSummary {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub path: String,
    pub template: Option<String>,
    pub child_count: i64,
}

/// An asset named by id, for links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssetView {
    #[serde(flatten)]
    pub summary: AssetSummary,
    /// The ancestors the caller may open, root first (breadcrumbs).
    pub ancestors: Vec<AssetRef>,
    pub description: String,
    pub labels: Vec<String>,
    /// From the template chain; every one inherited.
    pub attributes: Vec<EffectiveAttribute>,
    /// Bumped by every change; a write that names it is refused (409) if another came first.
    pub version: i64,
}

/// What an import did, or with `dry_run`, would do: one line per change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub dry_run: bool,
    pub changes: Vec<String>,
}

/// Names of assets, templates and attributes: any Unicode text up to 200 characters, without `/`, control
/// characters or bidirectional overrides, and not blank.
pub fn validate_model_name(what: &str, name: &str) -> Result<(), AppError> {
    let bad = |c: char| c == '/' || c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    // `…` alone stands for a hidden ancestor in the paths restricted users are shown.
    if name.trim().is_empty()
        || name != name.trim()
        || name.chars().count() > 200
        || name.chars().any(bad)
        || name == crate::auth::HIDDEN_ANCESTOR
    {
        return Err(AppError::bad_request(format!(
            "{what} names are 1 to 200 characters without '/', control or bidirectional-override characters, \
             without leading or trailing spaces, and not `…` alone"
        ))
        .with_details(leptos::serde_json::json!({ "field": "name", "value": name })));
    }
    Ok(())
}

/// `/Site A/Line 2/Pump 7` → `["Site A", "Line 2", "Pump 7"]`.
pub fn split_path(path: &str) -> Result<Vec<&str>, AppError> {
    let trimmed = path
        .strip_prefix('/')
        .ok_or_else(|| AppError::bad_request("an asset path starts with '/'"))?;
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(AppError::bad_request("an asset path has no empty segments"));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_fall_in_the_band_of_the_limit_they_reach() {
        let limits = Limits {
            lolo: Some(0.0),
            lo: Some(10.0),
            hi: Some(90.0),
            hihi: None,
        };
        assert_eq!(limits.band(50.0), "normal");
        assert_eq!(limits.band(90.0), "hi");
        assert_eq!(limits.band(1e9), "hi", "no HiHi set: Hi is the most severe");
        assert_eq!(limits.band(10.0), "lo");
        assert_eq!(limits.band(-1.0), "lolo");
        assert_eq!(Limits::default().band(1.0), "normal");
    }

    use super::*;

    #[test]
    fn limits_must_be_ordered() {
        let ok = Limits {
            lolo: Some(0.0),
            lo: Some(1.0),
            hi: Some(9.0),
            hihi: Some(10.0),
        };
        assert!(ok.validate().is_ok());
        let partial = Limits {
            lo: Some(1.0),
            hihi: Some(10.0),
            ..Limits::default()
        };
        assert!(partial.validate().is_ok());
        let bad = Limits {
            lo: Some(5.0),
            hi: Some(4.0),
            ..Limits::default()
        };
        assert!(bad.validate().unwrap_err().contains("lo"));
        let nan = Limits {
            hi: Some(f64::NAN),
            ..Limits::default()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn names_allow_unicode_but_not_slashes_or_overrides() {
        assert!(validate_model_name("asset", "Pumpe 7 – Kühlwasser 冷却").is_ok());
        for bad in ["", " ", "a/b", " lead", "trail ", "x\u{202E}y", "tab\t"] {
            assert!(validate_model_name("asset", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_split_into_names() {
        assert_eq!(split_path("/Site A/Line 2").unwrap(), vec!["Site A", "Line 2"]);
        assert!(split_path("Site A").is_err());
        assert!(split_path("/Site A//Line").is_err());
    }

    #[test]
    fn a_patch_tells_absent_from_null_parent() {
        let absent: AssetPatch = leptos::serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(absent.parent_id, None);
        let root: AssetPatch = leptos::serde_json::from_str(r#"{"parent_id":null}"#).unwrap();
        assert_eq!(root.parent_id, Some(None));
        let moved: AssetPatch = leptos::serde_json::from_str(r#"{"parent_id":4}"#).unwrap();
        assert_eq!(moved.parent_id, Some(Some(4)));
    }
}

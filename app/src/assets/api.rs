//! The model's server functions: what the asset and template pages call, each one service call after parsing
//! the form into domain types.

use super::*;
use crate::client::CsrfClient;
use crate::error::AppError;
use leptos::prelude::*;

/// The children of `parent`, or the top of the caller's tree.
#[server(prefix = "/_fn", endpoint = "assets/children", client = CsrfClient)]
pub async fn asset_children(parent: Option<i64>) -> Result<Vec<AssetSummary>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.children(&actor, parent).await
}

#[server(prefix = "/_fn", endpoint = "assets/get", client = CsrfClient)]
pub async fn asset_detail(id: i64) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.get_asset(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "assets/templates", client = CsrfClient)]
pub async fn list_templates() -> Result<Vec<TemplateView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.list_templates(&actor).await
}

/// Creates a template with at most one attribute, as the form on the templates page sends it.
#[server(prefix = "/_fn", endpoint = "assets/create_template", client = CsrfClient)]
pub async fn create_template(
    name: String,
    base: String,
    attribute: String,
    value_type: String,
    unit: String,
    lo: String,
    hi: String,
) -> Result<TemplateView, AppError> {
    let actor = crate::services::current_actor()?;
    let attributes = match attribute.trim() {
        "" => Vec::new(),
        name => vec![AttributeTemplate {
            name: name.to_string(),
            value_type: ValueType::parse(&value_type)?,
            unit: Some(unit.trim().to_string()).filter(|u| !u.is_empty()),
            description: String::new(),
            limits: Limits {
                lo: optional_number("Lo", &lo)?,
                hi: optional_number("Hi", &hi)?,
                ..Limits::default()
            },
            display_min: None,
            display_max: None,
            is_series: true,
            retention_tier: None,
            alarms: Vec::new(),
        }],
    };
    let spec = TemplateSpec {
        name: name.trim().to_string(),
        base: Some(base.trim().to_string()).filter(|b| !b.is_empty()),
        description: String::new(),
        naming_pattern: None,
        categories: Vec::new(),
        attributes,
    };
    crate::services::services()?.model.create_template(&actor, spec).await
}

/// An attribute as the templates page's attribute form sends it (`attribute[template]`, …).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttributeForm {
    /// The template's name.
    pub template: String,
    /// The template's version the form showed, if it showed one.
    #[serde(default)]
    pub version: Option<i64>,
    pub name: String,
    /// float, integer, boolean or string.
    pub value_type: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub lolo: String,
    #[serde(default)]
    pub lo: String,
    #[serde(default)]
    pub hi: String,
    #[serde(default)]
    pub hihi: String,
    /// "static" for a static value; anything else is a time series.
    #[serde(default)]
    pub kind: String,
}

/// Adds an attribute to a template, or changes the template's own attribute of that name (its alarm rules stay);
/// naming an inherited attribute overrides it in this template.
#[server(prefix = "/_fn", endpoint = "assets/set_attribute", client = CsrfClient)]
pub async fn set_template_attribute(attribute: AttributeForm) -> Result<TemplateView, AppError> {
    let actor = crate::services::current_actor()?;
    let change = AttributeChange {
        name: attribute.name.trim().to_string(),
        value_type: ValueType::parse(&attribute.value_type)?,
        unit: Some(attribute.unit),
        limits: Limits {
            lolo: optional_number("LoLo", &attribute.lolo).map_err(|e| e.for_field("lolo"))?,
            lo: optional_number("Lo", &attribute.lo).map_err(|e| e.for_field("lo"))?,
            hi: optional_number("Hi", &attribute.hi).map_err(|e| e.for_field("hi"))?,
            hihi: optional_number("HiHi", &attribute.hihi).map_err(|e| e.for_field("hihi"))?,
        },
        is_series: attribute.kind != "static",
    };
    let template = template_named(&actor, &attribute.template).await?;
    crate::services::services()?
        .model
        .edit_template(&actor, template, attribute.version, TemplateEdit::SetAttribute(change))
        .await
}

/// The id of the template named `name`.
#[cfg(feature = "ssr")]
async fn template_named(actor: &crate::auth::Actor, name: &str) -> Result<i64, AppError> {
    crate::services::services()?
        .model
        .list_templates(actor)
        .await?
        .into_iter()
        .find(|t| t.spec.name == name.trim())
        .map(|t| t.id)
        .ok_or_else(|| AppError::not_found(format!("there is no template named {:?}", name.trim())))
}

/// Removes one of the template's own attributes (an override goes back to the inherited one).
#[server(prefix = "/_fn", endpoint = "assets/remove_attribute", client = CsrfClient)]
pub async fn remove_template_attribute(template_id: i64, version: i64, name: String) -> Result<TemplateView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .model
        .edit_template(
            &actor,
            template_id,
            Some(version),
            TemplateEdit::RemoveAttribute { name },
        )
        .await
}

/// A number typed in a form: none when left empty.
#[cfg(feature = "ssr")]
fn optional_number(label: &str, text: &str) -> Result<Option<f64>, AppError> {
    match text.trim() {
        "" => Ok(None),
        value => value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| AppError::bad_request(format!("{label} must be a number"))),
    }
}

/// A rule as the templates page's form sends it (`form[template]`, …): text as typed, checked on the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleForm {
    /// The template's name.
    pub template: String,
    /// The template's version the form showed, if it showed one.
    #[serde(default)]
    pub version: Option<i64>,
    pub attribute: String,
    pub name: String,
    /// hi, hihi, lo, lolo, rate, no_data or state.
    pub kind: String,
    /// The deadband, the largest change per minute, the seconds of silence or the state, by kind.
    #[serde(default)]
    pub parameter: String,
    pub severity: String,
    #[serde(default)]
    pub on_delay: String,
    #[serde(default)]
    pub off_delay: String,
    #[serde(default)]
    pub message: String,
}

/// Adds an alarm rule to an attribute of a template, as the rule form of the templates page sends it. A rule on
/// an inherited attribute makes the template override that attribute (with the base's rules kept).
#[server(prefix = "/_fn", endpoint = "assets/add_rule", client = CsrfClient)]
pub async fn add_template_rule(form: RuleForm) -> Result<TemplateView, AppError> {
    let RuleForm {
        template,
        version,
        attribute,
        name,
        kind,
        parameter,
        severity,
        on_delay,
        off_delay,
        message,
    } = form;
    use crate::alarms::{AlarmRule, LimitLevel, RuleKind, Severity};
    let actor = crate::services::current_actor()?;
    // Errors name the form's input (`parameter`, `on_delay`, …), so the page shows them beside it.
    let number = |label: &str, text: &str| -> Result<f64, AppError> {
        optional_number(label, text)?
            .ok_or_else(|| AppError::bad_request(format!("{label} must be a number")))
            .map_err(|e| e.for_field("parameter"))
    };
    let seconds = |label: &str, field: &str, text: &str| -> Result<u32, AppError> {
        match text.trim() {
            "" => Ok(0),
            text => text
                .parse()
                .map_err(|_| AppError::bad_request(format!("{label} is a whole number of seconds")).for_field(field)),
        }
    };
    let limit = |level| -> Result<RuleKind, AppError> {
        let deadband = if parameter.trim().is_empty() {
            0.0
        } else {
            number("The deadband", &parameter)?
        };
        Ok(RuleKind::Limit { level, deadband })
    };
    let condition = match kind.as_str() {
        "hihi" => limit(LimitLevel::HiHi)?,
        "hi" => limit(LimitLevel::Hi)?,
        "lo" => limit(LimitLevel::Lo)?,
        "lolo" => limit(LimitLevel::LoLo)?,
        "rate" => RuleKind::RateOfChange {
            max_per_minute: number("The largest change per minute", &parameter)?,
        },
        "no_data" => RuleKind::NoData {
            after_seconds: seconds("The silence", "parameter", &parameter)?,
        },
        "state" => RuleKind::State {
            equals: match parameter.trim() {
                "true" => 1.0,
                "false" => 0.0,
                text => number("The state", text)?,
            },
        },
        other => return Err(AppError::bad_request(format!("unknown kind of rule {other:?}"))),
    };
    let rule = AlarmRule {
        name: name.trim().to_string(),
        condition,
        severity: Severity::parse(&severity)?,
        on_delay_seconds: seconds("The on-delay", "on_delay", &on_delay)?,
        off_delay_seconds: seconds("The off-delay", "off_delay", &off_delay)?,
        message: Some(message.trim().to_string()).filter(|m| !m.is_empty()),
        renotify_minutes: None,
    };
    let edit = TemplateEdit::AddRule {
        attribute: attribute.trim().to_string(),
        rule,
    };
    let template = template_named(&actor, &template).await?;
    crate::services::services()?
        .model
        .edit_template(&actor, template, version, edit)
        .await
}

/// Removes a rule from one of the template's own attributes.
#[server(prefix = "/_fn", endpoint = "assets/remove_rule", client = CsrfClient)]
pub async fn remove_template_rule(
    template_id: i64,
    version: i64,
    attribute: String,
    rule: String,
) -> Result<TemplateView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .model
        .edit_template(
            &actor,
            template_id,
            Some(version),
            TemplateEdit::RemoveRule { attribute, rule },
        )
        .await
}

/// Creates an asset under `parent_id` (empty: at the top) from `template` (empty: free-form).
#[server(prefix = "/_fn", endpoint = "assets/create", client = CsrfClient)]
pub async fn create_asset(parent_id: String, name: String, template: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    let parent_id = match parent_id.trim() {
        "" => None,
        id => Some(
            id.parse()
                .map_err(|_| AppError::bad_request("the parent is not an asset id"))?,
        ),
    };
    let asset = NewAsset {
        parent_id,
        name: name.trim().to_string(),
        template: Some(template.trim().to_string()).filter(|t| !t.is_empty()),
        description: String::new(),
        labels: Vec::new(),
    };
    crate::services::services()?.model.create_asset(&actor, asset).await
}

#[server(prefix = "/_fn", endpoint = "assets/move", client = CsrfClient)]
pub async fn move_asset(id: i64, version: i64, parent_path: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .model
        .move_asset(&actor, id, &parent_path, Some(version))
        .await
}

#[server(prefix = "/_fn", endpoint = "assets/rename", client = CsrfClient)]
pub async fn rename_asset(id: i64, version: i64, name: String) -> Result<AssetView, AppError> {
    let actor = crate::services::current_actor()?;
    let patch = AssetPatch {
        name: Some(name.trim().to_string()),
        ..AssetPatch::default()
    };
    crate::services::services()?
        .model
        .update_asset(&actor, id, patch, Some(version))
        .await
}

#[server(prefix = "/_fn", endpoint = "assets/delete", client = CsrfClient)]
pub async fn delete_asset(id: i64) -> Result<usize, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.model.delete_asset(&actor, id, true).await
}

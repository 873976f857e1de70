//! One change to a template ([`TemplateEdit`]), applied to the template as stored: the rules the templates page's
//! forms follow (what an attribute change keeps, that a rule on an inherited attribute overrides it, that names
//! are unique), in the service rather than in the UI's server functions, so every caller gets the same.

use app::assets::{AttributeTemplate, Limits, TemplateEdit, TemplateSpec, TemplateView};
use app::error::{AppError, ErrorKind};

/// The template's new spec after `edit`.
pub fn apply(view: &TemplateView, edit: TemplateEdit) -> Result<TemplateSpec, AppError> {
    let mut spec = view.spec.clone();
    match edit {
        TemplateEdit::SetAttribute(change) => {
            let name = change.name.trim().to_string();
            let existing = spec
                .attributes
                .iter()
                .position(|a| a.name == name)
                .map(|i| spec.attributes.remove(i))
                .or_else(|| inherited(view, &name));
            let kept = existing.unwrap_or_else(|| AttributeTemplate {
                name: String::new(),
                value_type: change.value_type,
                unit: None,
                description: String::new(),
                limits: Limits::default(),
                display_min: None,
                display_max: None,
                is_series: true,
                retention_tier: None,
                alarms: Vec::new(),
            });
            spec.attributes.push(AttributeTemplate {
                name,
                value_type: change.value_type,
                unit: change
                    .unit
                    .map(|unit| unit.trim().to_string())
                    .filter(|unit| !unit.is_empty()),
                limits: change.limits,
                is_series: change.is_series,
                ..kept
            });
        }
        TemplateEdit::RemoveAttribute { name } => {
            let before = spec.attributes.len();
            spec.attributes.retain(|a| a.name != name);
            if spec.attributes.len() == before {
                return Err(AppError::new(
                    ErrorKind::Unprocessable,
                    format!("{name:?} is not the template's own attribute: remove it in the template that declares it"),
                ));
            }
        }
        TemplateEdit::AddRule { attribute, rule } => {
            let attribute = attribute.trim();
            if !spec.attributes.iter().any(|a| a.name == attribute) {
                let inherited = inherited(view, attribute).ok_or_else(|| {
                    AppError::new(
                        ErrorKind::Unprocessable,
                        format!("the template has no attribute {attribute:?}"),
                    )
                })?;
                spec.attributes.push(inherited);
            }
            let Some(own) = spec.attributes.iter_mut().find(|a| a.name == attribute) else {
                return Err(AppError::not_found(format!(
                    "the template has no attribute {attribute:?}"
                )));
            };
            if own.alarms.iter().any(|r| r.name == rule.name) {
                return Err(AppError::new(
                    ErrorKind::Conflict,
                    format!("{attribute} already has a rule named {:?}", rule.name),
                ));
            }
            own.alarms.push(rule);
        }
        TemplateEdit::RemoveRule { attribute, rule } => {
            let Some(own) = spec.attributes.iter_mut().find(|a| a.name == attribute) else {
                return Err(AppError::new(
                    ErrorKind::Unprocessable,
                    format!("{attribute} is inherited: remove the rule in the template that declares it"),
                ));
            };
            let before = own.alarms.len();
            own.alarms.retain(|r| r.name != rule);
            if own.alarms.len() == before {
                return Err(AppError::not_found(format!("{attribute} has no rule named {rule:?}")));
            }
        }
    }
    Ok(spec)
}

fn inherited(view: &TemplateView, name: &str) -> Option<AttributeTemplate> {
    view.effective_attributes
        .iter()
        .find(|a| a.attribute.name == name)
        .map(|a| a.attribute.clone())
}

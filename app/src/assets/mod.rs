//! The plant model in the UI: the asset explorer (the caller's tree, one level at a time) and the asset page
//! (breadcrumbs, template, attributes with units and limits, children); and the server functions behind them.

mod types;

pub use types::*;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::alarms::{count_alarms, live_version, AlarmBadges};
use crate::auth::CsrfClient;
use crate::charts::{trend_href, ChartRange, RangePreset, SeriesRef, TrendChart};
use crate::error::AppError;
use crate::shell::{failure, percent_encode, EmptyState, FormError, Page};
use crate::timeseries::read_latest_values;

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
            lolo: optional_number("LoLo", &attribute.lolo)?,
            lo: optional_number("Lo", &attribute.lo)?,
            hi: optional_number("Hi", &attribute.hi)?,
            hihi: optional_number("HiHi", &attribute.hihi)?,
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
fn optional_number(field: &str, text: &str) -> Result<Option<f64>, AppError> {
    match text.trim() {
        "" => Ok(None),
        value => value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| AppError::bad_request(format!("{field} must be a number"))),
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
    let number = |field: &str, text: &str| -> Result<f64, AppError> {
        optional_number(field, text)?.ok_or_else(|| AppError::bad_request(format!("{field} must be a number")))
    };
    let seconds = |field: &str, text: &str| -> Result<u32, AppError> {
        match text.trim() {
            "" => Ok(0),
            text => text
                .parse()
                .map_err(|_| AppError::bad_request(format!("{field} is a whole number of seconds"))),
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
            after_seconds: seconds("The silence", &parameter)?,
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
        on_delay_seconds: seconds("The on-delay", &on_delay)?,
        off_delay_seconds: seconds("The off-delay", &off_delay)?,
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

/// Renames the asset; on success reloads it (its path and breadcrumbs change).
#[component]
fn RenameForm(id: i64, version: i64, name: String) -> impl IntoView {
    let action = ServerAction::<RenameAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(asset)) = action.value().get() {
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&format!("/assets/{}", asset.summary.id));
            #[cfg(not(feature = "hydrate"))]
            let _ = asset;
        }
    });
    view! {
        <ActionForm action attr:class="form inline-form" attr:id="rename-asset">
            <input type="hidden" name="id" value=id/>
            <input type="hidden" name="version" value=version/>
            <label>"New name" <input name="name" required value=name/></label>
            <button type="submit" class="button">"Rename"</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// Deletes the asset and its subtree after the browser's confirmation; then opens the parent (or the explorer).
#[component]
fn DeleteAsset(id: i64, below: i64, parent: Option<i64>) -> impl IntoView {
    let action = ServerAction::<DeleteAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            let target = parent.map_or("/assets".to_string(), |p| format!("/assets/{p}"));
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&target);
            #[cfg(not(feature = "hydrate"))]
            let _ = target;
        }
    });
    let question = if below > 0 {
        format!(
            "Delete this asset and everything below it ({below} directly below)? Their readings become unreachable."
        )
    } else {
        "Delete this asset? Its readings become unreachable.".to_string()
    };
    view! {
        <button class="button danger" id="delete-asset" on:click=move |_| {
            #[cfg(feature = "hydrate")]
            let confirmed = window().confirm_with_message(&question).unwrap_or(false);
            #[cfg(not(feature = "hydrate"))]
            let confirmed = { let _ = &question; false };
            if confirmed {
                action.dispatch(DeleteAsset { id });
            }
        }>"Delete asset"</button>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// Adds an asset under `parent` (or at the top); on success opens it.
#[component]
fn NewAssetForm(parent: Option<i64>) -> impl IntoView {
    let create = ServerAction::<CreateAsset>::new();
    let templates = Resource::new(|| (), |_| list_templates());
    Effect::new(move |_| {
        if let Some(Ok(asset)) = create.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/assets/{}", asset.summary.id), Default::default());
        }
    });
    view! {
        <ActionForm action=create attr:class="form inline-form" attr:id="new-asset">
            <input type="hidden" name="parent_id" value=parent.map(|p| p.to_string()).unwrap_or_default()/>
            <label>"Name" <input name="name" required/></label>
            <label>
                "Template"
                <select name="template">
                    <option value="">"none (free-form)"</option>
                    <Suspense>
                        {move || Suspend::new(async move {
                            templates.await.unwrap_or_default().into_iter().map(|t| view! {
                                <option value=t.spec.name.clone()>{t.spec.name.clone()}</option>
                            }).collect_view()
                        })}
                    </Suspense>
                </select>
            </label>
            <button type="submit" class="button">{if parent.is_some() { "Add below" } else { "Add at the top" }}</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(create.value().get()))/>
    }
}

/// The value types an attribute may have, as a form's select.
#[component]
fn ValueTypeSelect(name: &'static str) -> impl IntoView {
    view! {
        <select name=name>
            <option value="float">"float"</option>
            <option value="integer">"integer"</option>
            <option value="boolean">"boolean"</option>
            <option value="string">"string"</option>
        </select>
    }
}

#[component]
pub fn TemplatesPage() -> impl IntoView {
    let create = ServerAction::<CreateTemplate>::new();
    let add_rule = ServerAction::<AddTemplateRule>::new();
    let remove_rule = ServerAction::<RemoveTemplateRule>::new();
    let set_attribute = ServerAction::<SetTemplateAttribute>::new();
    let remove_attribute = ServerAction::<RemoveTemplateAttribute>::new();
    let templates = Resource::new(
        move || {
            (
                create.version().get(),
                add_rule.version().get(),
                remove_rule.version().get(),
                set_attribute.version().get(),
                remove_attribute.version().get(),
            )
        },
        |_| list_templates(),
    );
    view! {
        <Page title="Templates">
            <ActionForm action=create attr:class="form inline-form" attr:id="new-template">
                <label>"Name" <input name="name" required/></label>
                <label>"Base template" <input name="base" placeholder="none"/></label>
                <label>"Attribute" <input name="attribute"/></label>
                <label>
                    "Type"
                    <ValueTypeSelect name="value_type"/>
                </label>
                <label>"Unit" <input name="unit"/></label>
                <label>"Lo" <input name="lo" inputmode="decimal"/></label>
                <label>"Hi" <input name="hi" inputmode="decimal"/></label>
                <button type="submit" class="button">"Create template"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure(create.value().get()))/>
            <h2>"Add or change an attribute"</h2>
            <p class="muted">"An attribute of the template's own is changed (its alarm rules stay); an inherited one is overridden in this template."</p>
            <ActionForm action=set_attribute attr:class="form inline-form" attr:id="set-attribute">
                <label>"Template" <input name="attribute[template]" required/></label>
                <label>"Attribute" <input name="attribute[name]" required/></label>
                <label>
                    "Type"
                    <ValueTypeSelect name="attribute[value_type]"/>
                </label>
                <label>
                    "Kind"
                    <select name="attribute[kind]">
                        <option value="series">"time series"</option>
                        <option value="static">"static value"</option>
                    </select>
                </label>
                <label>"Unit" <input name="attribute[unit]" size="6"/></label>
                <label>"LoLo" <input name="attribute[lolo]" inputmode="decimal" size="6"/></label>
                <label>"Lo" <input name="attribute[lo]" inputmode="decimal" size="6"/></label>
                <label>"Hi" <input name="attribute[hi]" inputmode="decimal" size="6"/></label>
                <label>"HiHi" <input name="attribute[hihi]" inputmode="decimal" size="6"/></label>
                <button type="submit" class="button">"Save attribute"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure(set_attribute.value().get()))/>
            <FormError error=Signal::derive(move || failure(remove_attribute.value().get()))/>
            <h2>"Add an alarm rule"</h2>
            <p class="muted">
                "Every asset built from the template (or from one based on it) gets the rule. Limit rules use the "
                "attribute's limits; the extra value is the deadband. Rate of change: the largest change per minute. "
                "No data: the seconds of silence. State: the value (true, false or a number). A message may use "
                <code>"{asset} {attribute} {value} {unit} {limit} {rule}"</code>"."
            </p>
            <ActionForm action=add_rule attr:class="form inline-form" attr:id="new-rule">
                <label>"Template" <input name="form[template]" required/></label>
                <label>"Attribute" <input name="form[attribute]" required/></label>
                <label>"Rule name" <input name="form[name]" required placeholder="High"/></label>
                <label>
                    "Kind"
                    <select name="form[kind]">
                        <option value="hi">"Above Hi"</option>
                        <option value="hihi">"Above HiHi"</option>
                        <option value="lo">"Below Lo"</option>
                        <option value="lolo">"Below LoLo"</option>
                        <option value="rate">"Rate of change"</option>
                        <option value="no_data">"No data"</option>
                        <option value="state">"State"</option>
                    </select>
                </label>
                <label>"Value" <input name="form[parameter]" size="6"/></label>
                <label>
                    "Severity"
                    <select name="form[severity]">
                        <option value="critical">"Critical"</option>
                        <option value="high" selected>"High"</option>
                        <option value="medium">"Medium"</option>
                        <option value="low">"Low"</option>
                    </select>
                </label>
                <label>"On-delay (s)" <input name="form[on_delay]" inputmode="numeric" size="4"/></label>
                <label>"Off-delay (s)" <input name="form[off_delay]" inputmode="numeric" size="4"/></label>
                <label>"Message" <input name="form[message]" size="30"/></label>
                <button type="submit" class="button">"Add rule"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure(add_rule.value().get()))/>
            <FormError error=Signal::derive(move || failure(remove_rule.value().get()))/>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let templates = templates.await.unwrap_or_default();
                    if templates.is_empty() {
                        return view! { <EmptyState>"No templates yet. A template gives every asset built from it the same attributes, units and limits."</EmptyState> }.into_any();
                    }
                    view! {
                        <table id="templates">
                            <thead><tr><th>"Template"</th><th>"Based on"</th><th>"Attributes (inherited in italics)"</th><th>"Alarm rules"</th><th>"Assets"</th></tr></thead>
                            <tbody>
                                {templates.into_iter().map(|t| {
                                    let template_id = t.id;
                                    let version = t.version;
                                    let rules: Vec<(String, crate::alarms::AlarmRule, bool)> = t
                                        .effective_attributes
                                        .iter()
                                        .flat_map(|a| a.attribute.alarms.iter().map(move |r| (a.attribute.name.clone(), r.clone(), a.inherited)))
                                        .collect();
                                    view! {
                                    <tr>
                                        <td>{t.spec.name}</td>
                                        <td>{t.spec.base.unwrap_or_default()}</td>
                                        <td>
                                            {t.effective_attributes.into_iter().map(|a| {
                                                let label = format!("{} {}", a.attribute.name, a.attribute.unit.unwrap_or_default());
                                                if a.inherited {
                                                    view! { <em class="attr" title=format!("inherited from {}", a.defined_in)>{label}</em> }.into_any()
                                                } else {
                                                    let name = a.attribute.name;
                                                    view! {
                                                        <span class="attr">{label}
                                                            <button type="button" class="link-button" aria-label=format!("Remove attribute {name}")
                                                                on:click=move |_| { remove_attribute.dispatch(RemoveTemplateAttribute { template_id, version, name: name.clone() }); }>
                                                                "×"
                                                            </button>
                                                        </span>
                                                    }.into_any()
                                                }
                                            }).collect_view()}
                                        </td>
                                        <td class="rules">
                                            {rules.into_iter().map(|(attribute, rule, inherited)| {
                                                let label = format!("{attribute}: {} ({})", rule.name, rule.severity.as_str());
                                                let name = rule.name.clone();
                                                view! {
                                                    <span class="rule">
                                                        {if inherited { view! { <em>{label}</em> }.into_any() } else { view! { <span>{label}</span> }.into_any() }}
                                                        {(!inherited).then(|| view! {
                                                            <button type="button" class="link-button" aria-label=format!("Remove rule {name} of {attribute}")
                                                                on:click=move |_| { remove_rule.dispatch(RemoveTemplateRule { template_id, version, attribute: attribute.clone(), rule: name.clone() }); }>
                                                                "×"
                                                            </button>
                                                        })}
                                                    </span>
                                                }
                                            }).collect_view()}
                                        </td>
                                        <td>{t.asset_count}</td>
                                    </tr>
                                }}).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </Page>
    }
}

/// Live alarm counts of each listed asset's subtree. Fetched by the browser after hydration and again on every
/// alarm change, so a page listing a thousand assets renders on the server without waiting for them.
type SubtreeCounts = LocalResource<Result<Vec<(i64, crate::alarms::AlarmCounts)>, AppError>>;

/// None on the server, which renders the lists without counts (a local resource there only logs warnings).
fn subtree_counts(ids: Vec<i64>) -> Option<SubtreeCounts> {
    #[cfg(feature = "hydrate")]
    return Some(LocalResource::new(move || {
        live_version();
        crate::alarms::count_alarms_of(ids.clone())
    }));
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ids;
        None
    }
}

/// The active alarms of one listed asset's subtree, once they are known.
#[component]
fn SubtreeBadges(counts: Option<SubtreeCounts>, id: i64) -> impl IntoView {
    move || {
        let found = counts?
            .read()
            .as_ref()
            .and_then(|answer| answer.as_ref().ok())
            .and_then(|all| all.iter().find(|(of, _)| *of == id).map(|(_, counts)| *counts));
        found.map(|counts| view! { <AlarmBadges counts/> })
    }
}

/// A level of the tree, each asset with the active alarms of its subtree (kept live).
#[component]
fn AssetList(assets: Vec<AssetSummary>) -> AnyView {
    let counts = subtree_counts(assets.iter().map(|a| a.id).collect());
    let badges = move |id: i64| view! { <SubtreeBadges counts id/> };
    view! {
        <ul class="asset-list">
            {assets.into_iter().map(|asset| view! {
                <li>
                    <a href=format!("/assets/{}", asset.id)>{asset.name}</a>
                    " "{badges(asset.id)}
                    {asset.template.map(|t| view! { <span class="muted">" · "{t}</span> })}
                    {(asset.child_count > 0).then(|| view! { <span class="muted">" · "{asset.child_count}" below"</span> })}
                </li>
            }).collect_view()}
        </ul>
    }
    // Erased: nested in the asset page's view, the full type is too deep for the compiler's layout queries.
    .into_any()
}

#[component]
pub fn AssetsPage() -> impl IntoView {
    let top = Resource::new(|| (), |_| asset_children(None));
    view! {
        <Page title="Asset explorer">
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match top.await {
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                        Ok(assets) if assets.is_empty() => view! {
                            <EmptyState>
                                "No assets yet. Your plant will appear here as a tree of sites, lines and equipment "
                                "built from templates; engineers create them through the API, and "
                                <code>"gantry serve --demo"</code>" seeds a demonstration plant."
                            </EmptyState>
                        }.into_any(),
                        Ok(assets) => view! { <AssetTree roots=assets/> }.into_any(),
                    }
                })}
            </Suspense>
            <p><a href="/templates">"Templates"</a></p>
            <NewAssetForm parent=None/>
        </Page>
    }
}

/// The explorer's tree: the top level rendered with the page, each branch loaded when first expanded (so 100k
/// assets cost what is open). Keyboard as in WAI-ARIA's tree pattern: ↑/↓ move, → expands or enters, ← collapses
/// or goes to the parent, Home/End, Enter opens the asset.
#[component]
fn AssetTree(roots: Vec<AssetSummary>) -> impl IntoView {
    let counts = subtree_counts(roots.iter().map(|a| a.id).collect());
    view! {
        <ul role="tree" id="asset-tree" class="tree" aria-label="Assets" on:keydown=tree_keys>
            {roots.into_iter().enumerate().map(|(i, asset)| view! { <TreeNode asset level=1 focusable=i == 0 counts/> }).collect_view()}
        </ul>
    }
}

#[component]
fn TreeNode(asset: AssetSummary, level: u32, focusable: bool, counts: Option<SubtreeCounts>) -> AnyView {
    let id = asset.id;
    let has_children = asset.child_count > 0;
    let expanded = RwSignal::new(false);
    let children = RwSignal::new(None::<Result<Vec<AssetSummary>, AppError>>);
    let toggle = move || {
        expanded.update(|open| *open = !*open);
        if expanded.get_untracked() && children.get_untracked().is_none() {
            leptos::task::spawn_local(async move { children.set(Some(asset_children(Some(id)).await)) });
        }
    };
    let badges = view! { <SubtreeBadges counts id/> };
    view! {
        <li role="treeitem" attr:aria-level=level data-id=id tabindex=if focusable { "0" } else { "-1" }
            aria-expanded=move || has_children.then(|| expanded.get().to_string())>
            <span class="node">
                {if has_children {
                    view! {
                        <button type="button" class="toggle" tabindex="-1" aria-hidden="true" on:click=move |_| toggle()>
                            {move || if expanded.get() { "▾" } else { "▸" }}
                        </button>
                    }.into_any()
                } else {
                    view! { <span class="toggle" aria-hidden="true"></span> }.into_any()
                }}
                <a href=format!("/assets/{id}") tabindex="-1">{asset.name}</a>
                {asset.template.map(|t| view! { <span class="muted">" · "{t}</span> })}
                " "{badges}
            </span>
            {move || expanded.get().then(|| view! {
                <ul role="group">
                    {move || match children.get() {
                        None => view! { <li class="muted">"Loading…"</li> }.into_any(),
                        Some(Err(err)) => view! { <li class="error">{err.message}</li> }.into_any(),
                        Some(Ok(below)) => below
                            .into_iter()
                            .map(|asset| view! { <TreeNode asset level=level + 1 focusable=false counts=None/> })
                            .collect_view()
                            .into_any(),
                    }}
                </ul>
            })}
        </li>
    }
    .into_any()
}

/// Keyboard navigation of [`AssetTree`] (browser only).
fn tree_keys(event: leptos::ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    tree_keyboard::handle(event);
    #[cfg(not(feature = "hydrate"))]
    let _ = event;
}

#[cfg(feature = "hydrate")]
mod tree_keyboard {
    use wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement, KeyboardEvent};

    /// The tree items now shown (collapsed branches are not in the page), in document order.
    fn items(tree: &Element) -> Vec<HtmlElement> {
        let Ok(list) = tree.query_selector_all("[role=treeitem]") else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.item(i)?.dyn_into::<HtmlElement>().ok())
            .collect()
    }

    fn focus(from: &HtmlElement, to: &HtmlElement) {
        from.set_tab_index(-1);
        to.set_tab_index(0);
        let _ = to.focus();
    }

    fn click(item: &HtmlElement, selector: &str) {
        if let Some(target) = item
            .query_selector(selector)
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        {
            target.click();
        }
    }

    pub fn handle(event: KeyboardEvent) {
        let (Some(tree), Some(item)) = (
            event.current_target().and_then(|t| t.dyn_into::<Element>().ok()),
            event.target().and_then(|t| t.dyn_into::<HtmlElement>().ok()),
        ) else {
            return;
        };
        if item.get_attribute("role").as_deref() != Some("treeitem") {
            return;
        }
        let items = items(&tree);
        let Some(at) = items.iter().position(|i| *i == item) else {
            return;
        };
        let expanded = item.get_attribute("aria-expanded");
        match event.key().as_str() {
            "ArrowDown" => items.get(at + 1).into_iter().for_each(|next| focus(&item, next)),
            "ArrowUp" => items
                .get(at.wrapping_sub(1))
                .into_iter()
                .for_each(|prev| focus(&item, prev)),
            "Home" => items.first().into_iter().for_each(|first| focus(&item, first)),
            "End" => items.last().into_iter().for_each(|last| focus(&item, last)),
            "ArrowRight" => match expanded.as_deref() {
                Some("false") => click(&item, ":scope > .node > .toggle"),
                Some("true") => items.get(at + 1).into_iter().for_each(|child| focus(&item, child)),
                _ => return,
            },
            "ArrowLeft" => match expanded.as_deref() {
                Some("true") => click(&item, ":scope > .node > .toggle"),
                _ => {
                    let parent = item
                        .parent_element()
                        .and_then(|group| group.closest("[role=treeitem]").ok().flatten())
                        .and_then(|e| e.dyn_into::<HtmlElement>().ok());
                    match parent {
                        Some(parent) => focus(&item, &parent),
                        None => return,
                    }
                }
            },
            "Enter" => click(&item, ":scope > .node > a"),
            _ => return,
        }
        event.prevent_default();
    }
}

/// Moves the asset under another one, named by path; the page follows it.
#[component]
fn MoveForm(id: i64, version: i64) -> impl IntoView {
    let action = ServerAction::<MoveAsset>::new();
    Effect::new(move |_| {
        if let Some(Ok(asset)) = action.value().get() {
            // A full load, so the breadcrumbs and the tree show the new place.
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&format!("/assets/{}", asset.summary.id));
            #[cfg(not(feature = "hydrate"))]
            let _ = asset;
        }
    });
    view! {
        <ActionForm action attr:class="form inline-form" attr:id="move-asset">
            <input type="hidden" name="id" value=id/>
            <input type="hidden" name="version" value=version/>
            <label>"New parent (path, or / for the top)" <input name="parent_path" required/></label>
            <button type="submit" class="button">"Move"</button>
        </ActionForm>
        <FormError error=Signal::derive(move || failure(action.value().get()))/>
    }
}

/// How often the asset page refreshes its current values.
const CURRENT_VALUES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// An attribute's latest reading, coloured by the band of its limits it is in, with its time as a tooltip.
#[component]
fn CurrentValue(
    latest: Resource<Result<Vec<crate::timeseries::LatestValue>, AppError>>,
    name: String,
    limits: Limits,
    unit: Option<String>,
) -> impl IntoView {
    view! {
        <Transition>
            {move || {
                let (name, limits, unit) = (name.clone(), limits.clone(), unit.clone());
                Suspend::new(async move {
                    let found = latest.await.ok().and_then(|values| values.into_iter().find(|v| v.attribute == name));
                    match found.and_then(|v| Some((v.value?, v.ts?))) {
                        Some((value, ts)) => {
                            let band = limits.band(value);
                            view! {
                                <span class=format!("value {band}") title=crate::auth::format_utc(ts) data-band=band>
                                    {crate::alarms::value_with_unit(Some(value), unit.as_deref())}
                                </span>
                            }.into_any()
                        }
                        None => view! { <span class="muted">"no reading yet"</span> }.into_any(),
                    }
                })
            }}
        </Transition>
    }
}

/// What an asset page shows first: a trend of its time-series attributes over the last hour, live.
const ASSET_TREND_RANGE: ChartRange = ChartRange::Last(RangePreset::Hour);

/// The trend of an asset's time-series attributes, with a link to the same trend on the Trends page.
#[component]
fn AssetTrend(series: Vec<SeriesRef>) -> impl IntoView {
    let range = RwSignal::new(ASSET_TREND_RANGE);
    let href = {
        let series = series.clone();
        move || trend_href(&series, range.get())
    };
    view! {
        <h2>"Trend"</h2>
        <TrendChart series=Signal::stored(series) range=range on_range=move |r| range.set(r) reset_to=ASSET_TREND_RANGE/>
        <p><a href=href id="open-in-trends">"Open in Trends"</a>" (the address keeps the series and the range)"</p>
    }
}

fn limit(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[component]
pub fn AssetPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let asset = Resource::new(id, |id| async move {
        match id {
            Some(id) => asset_detail(id).await,
            None => Err(AppError::not_found("there is no such asset")),
        }
    });
    let alarms = Resource::new(
        move || (id(), live_version()),
        |(id, _)| async move {
            match id {
                Some(id) => count_alarms(Some(id)).await,
                None => Ok(Default::default()),
            }
        },
    );
    // Current values: fetched with the page, then every few seconds and whenever an alarm changes.
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), CURRENT_VALUES_EVERY) {
            on_cleanup(move || handle.clear());
        }
    });
    let latest = Resource::new(
        move || (id(), tick.get(), live_version()),
        |(id, ..)| async move {
            match id {
                Some(id) => read_latest_values(id).await.map(|l| l.values),
                None => Ok(Vec::new()),
            }
        },
    );
    let children = Resource::new(id, |id| async move {
        match id {
            Some(id) => asset_children(Some(id)).await,
            None => Ok(Vec::new()),
        }
    });
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let asset = match asset.await {
                    Ok(asset) => asset,
                    Err(err) => return view! {
                        <Page title="Asset"><p class="error" role="alert">{err.message}</p></Page>
                    }.into_any(),
                };
                let children = children.await.unwrap_or_default();
                let title = asset.summary.name.clone();
                let export_path = asset.summary.path.clone();
                let trend_series: Vec<SeriesRef> = asset
                    .attributes
                    .iter()
                    .filter(|a| a.attribute.is_series)
                    .map(|a| SeriesRef::new(export_path.clone(), a.attribute.name.clone()))
                    .collect();
                view! {
                    <nav aria-label="Breadcrumbs" class="breadcrumbs">
                        <a href="/assets">"Assets"</a>
                        {asset.ancestors.into_iter().map(|a| view! {
                            " / " <a href=format!("/assets/{}", a.id)>{a.name}</a>
                        }).collect_view()}
                        " / " <span aria-current="page">{title.clone()}</span>
                    </nav>
                    <section class="page" aria-labelledby="page-title">
                        <h1 id="page-title">{title}</h1>
                        <dl class="status">
                            <dt>"Path"</dt><dd>{asset.summary.path}</dd>
                            <dt>"Template"</dt><dd>{asset.summary.template.unwrap_or_else(|| "none (free-form)".into())}</dd>
                        </dl>
                        {(!asset.description.is_empty()).then(|| view! { <p>{asset.description}</p> })}
                        <p class="alarm-rollup" id="asset-alarms">
                            <a href=format!("/alarms?subtree={}", percent_encode(&export_path))>"Alarms in this subtree"</a>": "
                            <Transition>
                                {move || Suspend::new(async move {
                                    match alarms.await {
                                        Ok(counts) if counts.active() == 0 => view! { <span class="muted">"none active"</span> }.into_any(),
                                        Ok(counts) => view! { <AlarmBadges counts/> }.into_any(),
                                        Err(err) => view! { <span class="error">{err.message}</span> }.into_any(),
                                    }
                                })}
                            </Transition>
                        </p>
                        <crate::devices::AssetDevices asset_id=asset.summary.id/>
                        <h2>"Attributes"</h2>
                        {if asset.attributes.is_empty() {
                            view! { <p class="empty">"This asset has no attributes."</p> }.into_any()
                        } else {
                            view! {
                                <table id="attributes">
                                    <thead><tr>
                                        <th>"Name"</th><th>"Unit"</th><th>"LoLo"</th><th>"Lo"</th><th>"Hi"</th>
                                        <th>"HiHi"</th><th>"Current"</th><th>"Kind"</th><th>"From template"</th>
                                    </tr></thead>
                                    <tbody>
                                        {asset.attributes.into_iter().map(|a| view! {
                                            <tr data-attribute=a.attribute.name.clone()>
                                                <td>{a.attribute.name.clone()}</td>
                                                <td>{a.attribute.unit.clone().unwrap_or_default()}</td>
                                                <td>{limit(a.attribute.limits.lolo)}</td>
                                                <td>{limit(a.attribute.limits.lo)}</td>
                                                <td>{limit(a.attribute.limits.hi)}</td>
                                                <td>{limit(a.attribute.limits.hihi)}</td>
                                                <td class="current">
                                                    {a.attribute.is_series.then(|| {
                                                        let (name, limits, unit) = (a.attribute.name.clone(), a.attribute.limits.clone(), a.attribute.unit.clone());
                                                        view! { <CurrentValue latest name limits unit/> }
                                                    })}
                                                </td>
                                                <td>{if a.attribute.is_series { "time series" } else { "static" }}</td>
                                                <td>{a.defined_in}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        {(!trend_series.is_empty()).then(|| view! { <AssetTrend series=trend_series/> })}
                        {(!children.is_empty()).then(|| view! {
                            <h2>"Below this asset"</h2>
                            <AssetList assets=children/>
                        })}
                        <h2>"Add an asset below"</h2>
                        <NewAssetForm parent=Some(asset.summary.id)/>
                        <h2>"Move"</h2>
                        <MoveForm id=asset.summary.id version=asset.version/>
                        <h2>"Rename or delete"</h2>
                        <RenameForm id=asset.summary.id version=asset.version name=asset.summary.name.clone()/>
                        <DeleteAsset id=asset.summary.id below=asset.summary.child_count parent=asset.summary.parent_id/>
                        <p>
                            <a href=format!("/api/v1/model/export?subtree={}", percent_encode(&export_path)) download="model.yaml">
                                "Export this subtree as a model file"
                            </a>
                        </p>
                    </section>
                }.into_any()
            })}
        </Suspense>
    }
}

//! The templates page: each template's attributes and rules, and the forms that create and edit them.

use super::*;
use crate::shell::{
    described_by, failure, failure_at, failure_besides, invalid, EmptyState, FieldError, FormError, Page,
};
use leptos::prelude::*;

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
    let attribute_error = move |field| Signal::derive(move || failure_at(set_attribute.value().get(), field));
    let (lolo_error, lo_error, hi_error, hihi_error) = (
        attribute_error("lolo"),
        attribute_error("lo"),
        attribute_error("hi"),
        attribute_error("hihi"),
    );
    let rule_error = move |field| Signal::derive(move || failure_at(add_rule.value().get(), field));
    let (parameter_error, on_delay_error, off_delay_error) =
        (rule_error("parameter"), rule_error("on_delay"), rule_error("off_delay"));
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
                <ShortField label="LoLo" name="attribute[lolo]" error_id="attribute-lolo-error" error=lolo_error size=6 inputmode="decimal"/>
                <ShortField label="Lo" name="attribute[lo]" error_id="attribute-lo-error" error=lo_error size=6 inputmode="decimal"/>
                <ShortField label="Hi" name="attribute[hi]" error_id="attribute-hi-error" error=hi_error size=6 inputmode="decimal"/>
                <ShortField label="HiHi" name="attribute[hihi]" error_id="attribute-hihi-error" error=hihi_error size=6 inputmode="decimal"/>
                <button type="submit" class="button">"Save attribute"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure_besides(set_attribute.value().get(), &["lolo", "lo", "hi", "hihi"]))/>
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
                <ShortField label="Value" name="form[parameter]" error_id="rule-parameter-error" error=parameter_error size=6/>
                <label>
                    "Severity"
                    <select name="form[severity]">
                        <option value="critical">"Critical"</option>
                        <option value="high" selected>"High"</option>
                        <option value="medium">"Medium"</option>
                        <option value="low">"Low"</option>
                    </select>
                </label>
                <ShortField label="On-delay (s)" name="form[on_delay]" error_id="rule-on-delay-error" error=on_delay_error size=4 inputmode="numeric"/>
                <ShortField label="Off-delay (s)" name="form[off_delay]" error_id="rule-off-delay-error" error=off_delay_error size=4 inputmode="numeric"/>
                <label>"Message" <input name="form[message]" size="30"/></label>
                <button type="submit" class="button">"Add rule"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure_besides(add_rule.value().get(), &["parameter", "on_delay", "off_delay"]))/>
            <FormError error=Signal::derive(move || failure(remove_rule.value().get()))/>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let templates = templates.await.unwrap_or_default();
                    if templates.is_empty() {
                        return view! { <EmptyState>"No templates yet. A template gives every asset built from it the same attributes, units, limits and alarm rules: name one in the first form above, then give it attributes."</EmptyState> }.into_any();
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

/// A short input of the attribute and rule forms (a limit, a value, a delay), with the error that names it beside it.
#[component]
fn ShortField(
    label: &'static str,
    name: &'static str,
    /// The id of the error shown beside the input.
    error_id: &'static str,
    error: Signal<Option<String>>,
    size: u32,
    #[prop(optional)] inputmode: Option<&'static str>,
) -> impl IntoView {
    view! {
        <label>{label} <input name=name inputmode=inputmode size=size
            aria-invalid=invalid(error) aria-describedby=described_by(error, error_id)/></label>
        <FieldError id=error_id error/>
    }
}

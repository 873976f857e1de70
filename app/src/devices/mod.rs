//! Devices: the identities that send readings. Shared types of the REST API and the devices page.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::client::CsrfClient;
use crate::error::AppError;
use crate::shell::{
    described_by, failure, failure_at, failure_besides, invalid, EmptyState, FieldError, FormError, Page,
};

/// A device is shown online when it sent readings within this many milliseconds.
pub const ONLINE_WINDOW_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeviceView {
    pub id: i64,
    pub name: String,
    pub asset_id: i64,
    /// The bound asset's path, such as `/North Plant/Line 1/Pump 2`.
    pub asset_path: String,
    pub description: String,
    /// Field name → attribute name; fields not listed go to the attribute of the same name.
    pub field_map: BTreeMap<String, String>,
    pub last_seen_at: Option<i64>,
    pub online: bool,
    /// Tokens that may write for this device and are not revoked.
    pub active_tokens: i64,
}

/// What creating a device takes: a name, the asset (by id or path) and optionally a field map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewDevice {
    pub name: String,
    #[serde(default)]
    pub asset_id: Option<i64>,
    #[serde(default)]
    pub asset_path: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub field_map: BTreeMap<String, String>,
}

/// A partial update; absent keys are left alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DevicePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub asset_id: Option<i64>,
    /// Rebinds the device to the asset at this path (instead of `asset_id`).
    #[serde(default)]
    pub asset_path: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub field_map: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeviceTokenView {
    pub id: i64,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    /// The devices it may write for (one, or several for a gateway token) that the caller may see.
    pub devices: Vec<String>,
    /// How many more devices it writes for, outside the caller's grants (their names are not shown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other_devices: usize,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewDeviceToken {
    #[serde(default = "default_token_name")]
    pub name: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_token_name() -> String {
    "token".into()
}

/// A token for a gateway that writes for several devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewGatewayToken {
    pub name: String,
    /// Device names.
    pub devices: Vec<String>,
}

/// A new token: the secret is shown here once and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedDeviceToken {
    pub token: DeviceTokenView,
    pub secret: String,
}

/// Checks a device name: 1–100 characters, letters, digits and `-_.:`, so it can stand in an MQTT topic and a
/// line-protocol tag unescaped.
pub fn validate_device_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("a device name has 1 to 100 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "{name:?}: a device name may hold letters, digits and - _ . : only"
        ));
    }
    Ok(())
}

#[server(prefix = "/_fn", endpoint = "devices/list", client = CsrfClient)]
pub async fn list_devices() -> Result<Vec<DeviceView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.devices.list(&actor).await
}

#[server(prefix = "/_fn", endpoint = "devices/of_asset", client = CsrfClient)]
pub async fn devices_of_asset(asset_id: i64) -> Result<Vec<DeviceView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.devices.of_asset(&actor, asset_id).await
}

#[server(prefix = "/_fn", endpoint = "devices/create", client = CsrfClient)]
pub async fn create_device(name: String, asset_path: String) -> Result<DeviceView, AppError> {
    let actor = crate::services::current_actor()?;
    let device = NewDevice {
        name: name.trim().to_string(),
        asset_id: None,
        asset_path: Some(asset_path.trim().to_string()),
        description: String::new(),
        field_map: BTreeMap::new(),
    };
    crate::services::services()?.devices.create(&actor, device).await
}

/// Parses a field map typed as `field=attribute, field=attribute`.
pub fn parse_field_map(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, attribute) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: write each mapping as field=attribute"))?;
        map.insert(field.trim().to_string(), attribute.trim().to_string());
    }
    Ok(map)
}

#[server(prefix = "/_fn", endpoint = "devices/update", client = CsrfClient)]
pub async fn update_device(id: i64, asset_path: String, field_map: String) -> Result<DeviceView, AppError> {
    let actor = crate::services::current_actor()?;
    let patch = DevicePatch {
        asset_path: Some(asset_path.trim().to_string()).filter(|p| !p.is_empty()),
        field_map: Some(parse_field_map(&field_map).map_err(|err| AppError::bad_request(err).for_field("field_map"))?),
        ..DevicePatch::default()
    };
    crate::services::services()?.devices.update(&actor, id, patch).await
}

#[server(prefix = "/_fn", endpoint = "devices/tokens", client = CsrfClient)]
pub async fn device_tokens(id: i64) -> Result<Vec<DeviceTokenView>, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.devices.tokens(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "devices/revoke_token", client = CsrfClient)]
pub async fn revoke_device_token(token_id: i64) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .devices
        .revoke_token(&actor, token_id)
        .await
}

#[server(prefix = "/_fn", endpoint = "devices/delete", client = CsrfClient)]
pub async fn delete_device(id: i64) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?.devices.delete(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "devices/create_token", client = CsrfClient)]
pub async fn create_device_token(id: i64, name: String) -> Result<CreatedDeviceToken, AppError> {
    let actor = crate::services::current_actor()?;
    crate::services::services()?
        .devices
        .create_token(&actor, id, NewDeviceToken { name })
        .await
}

/// A device's status as a badge: online (sent within the last five minutes), offline, or never seen.
#[component]
pub fn DeviceStatus(device: DeviceView) -> impl IntoView {
    let (class, label) = match (device.online, device.last_seen_at) {
        (true, _) => ("badge online", "online"),
        (false, Some(_)) => ("badge offline", "offline"),
        (false, None) => ("badge offline", "never seen"),
    };
    view! { <span class=class>{label}</span> }
}

/// The devices page: every device the caller may see, a form to add one, and per device a button that issues a
/// token (shown once) and one that deletes it.
#[component]
pub fn DevicesPage() -> impl IntoView {
    let create = ServerAction::<CreateDevice>::new();
    let name_error = Signal::derive(move || failure_at(create.value().get(), "name"));
    let path_error = Signal::derive(move || failure_at(create.value().get(), "asset_path"));
    let remove = ServerAction::<DeleteDevice>::new();
    let issue = ServerAction::<CreateDeviceToken>::new();
    // Bumped by a row's edit form once its change is saved (each row keeps its own errors).
    let saved = RwSignal::new(0u32);
    let revoke = ServerAction::<RevokeDeviceToken>::new();
    let devices = Resource::new(
        move || {
            (
                create.version().get(),
                remove.version().get(),
                issue.version().get(),
                saved.get(),
                revoke.version().get(),
            )
        },
        |_| list_devices(),
    );
    let secret = move || issue.value().get().and_then(Result::ok);
    view! {
        <Page title="Devices">
            <ActionForm action=create attr:class="form inline-form" attr:id="new-device">
                <label>"Name" <input name="name" required placeholder="pump-7"
                    aria-invalid=invalid(name_error) aria-describedby=described_by(name_error, "new-device-name-error")/></label>
                <FieldError id="new-device-name-error" error=name_error/>
                <label>"Asset path" <input name="asset_path" required placeholder="/North Plant/Line 1/Pump 7"
                    aria-invalid=invalid(path_error) aria-describedby=described_by(path_error, "new-device-path-error")/></label>
                <FieldError id="new-device-path-error" error=path_error/>
                <button type="submit" class="button">"Add device"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure_besides(create.value().get(), &["name", "asset_path"]))/>
            <FormError error=Signal::derive(move || failure(remove.value().get()))/>
            <FormError error=Signal::derive(move || failure(issue.value().get()))/>
            <FormError error=Signal::derive(move || failure(revoke.value().get()))/>
            {move || secret().map(|created| view! {
                <div class="notice" id="new-device-token" role="status">
                    <p>"Token for " {created.token.devices.join(", ")} " (shown once; copy it now):"</p>
                    <code>{created.secret}</code>
                </div>
            })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let list = devices.await.unwrap_or_default();
                    if list.is_empty() {
                        return view! { <EmptyState>"No devices yet. A device sends readings for one asset over HTTP, line protocol or MQTT, with a token of its own: add one above with its asset's path, then issue its token."</EmptyState> }.into_any();
                    }
                    view! {
                        <table id="devices">
                            <thead><tr><th>"Device"</th><th>"Asset"</th><th>"Status"</th><th>"Tokens"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|d| {
                                    let id = d.id;
                                    let field_map = d.field_map.iter().map(|(f, a)| format!("{f}={a}")).collect::<Vec<_>>().join(", ");
                                    view! {
                                        <tr data-device=d.name.clone()>
                                            <td>{d.name.clone()}</td>
                                            <td><a href=format!("/assets/{}", d.asset_id)>{d.asset_path.clone()}</a></td>
                                            <td><DeviceStatus device=d.clone()/></td>
                                            <td>{d.active_tokens}</td>
                                            <td>
                                                <button class="button" on:click=move |_| { issue.dispatch(CreateDeviceToken { id, name: "ui".into() }); }>"New token"</button>
                                                " "
                                                <button class="button danger" on:click=move |_| { remove.dispatch(DeleteDevice { id }); }>"Delete"</button>
                                                <details class="device-edit">
                                                    <summary>"Edit"</summary>
                                                    <DeviceEdit id=id asset_path=d.asset_path.clone() field_map=field_map saved=saved/>
                                                    <DeviceTokens id=id revoke=revoke/>
                                                </details>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </Page>
    }
}

/// A device's asset and field map, edited in its row; errors show beside the field they name, in the row.
#[component]
fn DeviceEdit(id: i64, asset_path: String, field_map: String, saved: RwSignal<u32>) -> impl IntoView {
    let update = ServerAction::<UpdateDevice>::new();
    let path_error = Signal::derive(move || failure_at(update.value().get(), "asset_path"));
    let map_error = Signal::derive(move || failure_at(update.value().get(), "field_map"));
    Effect::new(move |_| {
        if matches!(update.value().get(), Some(Ok(_))) {
            saved.update(|n| *n += 1);
        }
    });
    let path_id: std::sync::Arc<str> = format!("device-{id}-path-error").into();
    let map_id: std::sync::Arc<str> = format!("device-{id}-map-error").into();
    view! {
        <ActionForm action=update attr:class="form">
            <input type="hidden" name="id" value=id/>
            <label>"Asset path" <input name="asset_path" value=asset_path
                aria-invalid=invalid(path_error) aria-describedby=described_by(path_error, path_id.clone())/></label>
            <FieldError id=path_id.clone() error=path_error/>
            <label>"Field map" <input name="field_map" placeholder="q=flow, p=pressure" value=field_map
                aria-invalid=invalid(map_error) aria-describedby=described_by(map_error, map_id.clone())/></label>
            <FieldError id=map_id.clone() error=map_error/>
            <button type="submit" class="button">"Save"</button>
            <FormError error=Signal::derive(move || failure_besides(update.value().get(), &["asset_path", "field_map"]))/>
        </ActionForm>
    }
}

/// A device's tokens, with a button to revoke each one still active.
#[component]
fn DeviceTokens(id: i64, revoke: ServerAction<RevokeDeviceToken>) -> impl IntoView {
    let tokens = Resource::new(move || revoke.version().get(), move |_| device_tokens(id));
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let list = tokens.await.unwrap_or_default();
                view! {
                    <ul class="device-tokens">
                        {list.into_iter().map(|t| {
                            let token_id = t.id;
                            let used = t.last_used_at.map_or("never used".to_string(), |_| "used".to_string());
                            view! {
                                <li data-token=t.prefix.clone()>
                                    <code>{t.prefix.clone()}"…"</code>" "{t.name.clone()}" · "{used}" "
                                    {match t.revoked_at {
                                        Some(_) => view! { <span class="badge offline">"revoked"</span> }.into_any(),
                                        None => view! { <button class="button danger" on:click=move |_| { revoke.dispatch(RevokeDeviceToken { token_id }); }>"Revoke"</button> }.into_any(),
                                    }}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }
            })}
        </Suspense>
    }
}

/// The devices bound to an asset, with their status (on the asset page).
#[component]
pub fn AssetDevices(asset_id: i64) -> impl IntoView {
    let devices = Resource::new(move || asset_id, devices_of_asset);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let list = devices.await.unwrap_or_default();
                (!list.is_empty()).then(|| view! {
                    <h2>"Devices"</h2>
                    <ul id="asset-devices">
                        {list.into_iter().map(|d| view! { <li>{d.name.clone()} " " <DeviceStatus device=d/></li> }).collect_view()}
                    </ul>
                })
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_maps_are_typed_as_pairs() {
        let map = super::parse_field_map(" q=flow , p = pressure,").unwrap();
        assert_eq!(map.get("q").map(String::as_str), Some("flow"));
        assert_eq!(map.get("p").map(String::as_str), Some("pressure"));
        assert!(super::parse_field_map("").unwrap().is_empty());
        assert!(super::parse_field_map("q").is_err());
    }

    #[test]
    fn device_names_fit_topics_and_tags() {
        assert!(super::validate_device_name("pump-7.line_2:a").is_ok());
        for bad in ["", "a b", "a/b", "a+b", "a#", "é", &"x".repeat(101)] {
            assert!(super::validate_device_name(bad).is_err(), "{bad:?}");
        }
    }
}

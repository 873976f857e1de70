//! Devices: the identities that send readings. Shared types of the REST API and the devices page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// The devices it may write for (one, or several for a gateway token).
    pub devices: Vec<String>,
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

#[cfg(test)]
mod tests {
    #[test]
    fn device_names_fit_topics_and_tags() {
        assert!(super::validate_device_name("pump-7.line_2:a").is_ok());
        for bad in ["", "a b", "a/b", "a+b", "a#", "é", &"x".repeat(101)] {
            assert!(super::validate_device_name(bad).is_err(), "{bad:?}");
        }
    }
}

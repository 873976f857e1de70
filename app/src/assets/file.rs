//! The model file's format: templates, assets and the shared dashboards, matched by name and path. Its own
//! module because it spans areas (it carries charts' dashboards), while the model's types stay below charts'.

use serde::{Deserialize, Serialize};

use super::TemplateSpec;
use crate::charts::DashboardSpec;

/// The model as a file: templates and assets, matched by name and path, without ids or times, so that the same
/// model always gives the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub schema_version: u32,
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
    #[serde(default)]
    pub assets: Vec<AssetEntry>,
    /// The shared dashboards (whole-model files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dashboards: Vec<DashboardSpec>,
}

/// The version of the model file this build writes and reads.
pub const MODEL_FILE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetEntry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

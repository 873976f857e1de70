//! The plant model in the UI and the types the REST API shares with it: `types` (templates, assets), `file` (the
//! model file), `api` (the server functions, forms parsed into those types), `explorer` (the tree), `asset_page` (one
//! asset) and `templates_page`.

mod api;
mod asset_page;
mod explorer;
mod file;
mod templates_page;
mod types;

pub use api::*;
pub use asset_page::AssetPage;
pub use explorer::AssetsPage;
pub use file::{AssetEntry, ModelFile, MODEL_FILE_VERSION};
pub use templates_page::TemplatesPage;
pub use types::*;

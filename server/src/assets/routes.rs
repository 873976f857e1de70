//! `/api/v1/templates` and `/api/v1/assets`: thin handlers over [`Model`].

use std::sync::Arc;

use app::assets::{AssetPatch, NewAsset, TemplateSpec};
use app::auth::Permission;
use app::services::ModelService;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{delete, get, patch, post, put},
    Json,
};
use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::service::Model;
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, IfMatch, JsonBody, QueryParams};
use crate::error::ApiError;

type ModelState = Arc<Model>;
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<ModelState>> {
    use Access::Requires;
    use Permission::{EditModel, View};
    vec![
        Endpoint::new(Method::GET, "/templates", Requires(View), get(list_templates))
            .answers_list::<app::assets::TemplateView>("templates"),
        Endpoint::new(Method::POST, "/templates", Requires(EditModel), post(create_template))
            .body::<TemplateSpec>()
            .answers::<app::assets::TemplateView>("template"),
        Endpoint::new(Method::GET, "/templates/{id}", Requires(View), get(get_template))
            .answers::<app::assets::TemplateView>("template"),
        Endpoint::new(
            Method::PUT,
            "/templates/{id}",
            Requires(EditModel),
            put(replace_template),
        )
        .body::<TemplateSpec>()
        .answers::<app::assets::TemplateView>("template"),
        Endpoint::new(
            Method::DELETE,
            "/templates/{id}",
            Requires(EditModel),
            delete(delete_template),
        )
        .answer(Answer::Nothing),
        Endpoint::new(Method::GET, "/assets", Requires(View), get(list_assets)).answers_json::<AssetsAnswer>(),
        Endpoint::new(Method::POST, "/assets", Requires(EditModel), post(create_asset))
            .body::<NewAsset>()
            .answers::<app::assets::AssetView>("asset"),
        Endpoint::new(Method::GET, "/assets/{id}", Requires(View), get(get_asset))
            .answers::<app::assets::AssetView>("asset"),
        Endpoint::new(Method::PATCH, "/assets/{id}", Requires(EditModel), patch(update_asset))
            .body::<AssetPatch>()
            .answers::<app::assets::AssetView>("asset"),
        Endpoint::new(
            Method::DELETE,
            "/assets/{id}",
            Requires(EditModel),
            delete(delete_asset),
        )
        .answers::<u64>("deleted"),
        Endpoint::new(Method::GET, "/assets/{id}/subtree", Requires(View), get(subtree))
            .answers_list::<app::assets::AssetSummary>("assets"),
        Endpoint::new(Method::GET, "/model/export", Requires(View), get(export_model))
            .answer(Answer::Media("application/yaml")),
        Endpoint::new(Method::POST, "/model/import", Requires(EditModel), post(import_model))
            .answers_json::<app::assets::ImportReport>(),
        Endpoint::new(Method::GET, "/assets/{id}/attributes", Requires(View), get(attributes))
            .answers_list::<app::assets::EffectiveAttribute>("attributes"),
    ]
}

async fn list_templates(State(model): State<ModelState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "templates": model.list_templates(&actor).await? })))
}

async fn create_template(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    JsonBody(spec): JsonBody<TemplateSpec>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(json!({ "template": model.create_template(&actor, spec).await? })),
    ))
}

async fn get_template(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "template": model.get_template(&actor, id).await? })))
}

async fn replace_template(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    IfMatch(expected): IfMatch,
    JsonBody(spec): JsonBody<TemplateSpec>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "template": model.replace_template(&actor, id, spec, expected).await? }),
    ))
}

async fn delete_template(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    model.delete_template(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetQuery {
    /// Children of this asset; absent: the top of the caller's tree.
    parent: Option<i64>,
    /// Look one asset up by its path instead.
    path: Option<String>,
}

async fn list_assets(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    QueryParams(query): QueryParams<AssetQuery>,
) -> Result<Json<AssetsAnswer>> {
    Ok(Json(match query.path {
        Some(path) => AssetsAnswer::One {
            asset: model.asset_by_path(&actor, &path).await?,
        },
        None => AssetsAnswer::Many {
            assets: model.children(&actor, query.parent).await?,
        },
    }))
}

/// `GET /assets`: the asset at `path=`, or the children of `parent=` (the top of the caller's tree without).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum AssetsAnswer {
    One { asset: app::assets::AssetView },
    Many { assets: Vec<app::assets::AssetSummary> },
}

async fn create_asset(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    JsonBody(asset): JsonBody<NewAsset>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(json!({ "asset": model.create_asset(&actor, asset).await? })),
    ))
}

async fn get_asset(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "asset": model.get_asset(&actor, id).await? })))
}

async fn update_asset(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    IfMatch(expected): IfMatch,
    JsonBody(patch): JsonBody<AssetPatch>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "asset": model.update_asset(&actor, id, patch, expected).await? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    confirm: bool,
}

async fn delete_asset(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    QueryParams(query): QueryParams<DeleteQuery>,
) -> Result<Json<serde_json::Value>> {
    let deleted = model.delete_asset(&actor, id, query.confirm).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

async fn subtree(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "assets": model.subtree(&actor, id).await? })))
}

async fn attributes(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "attributes": model.get_asset(&actor, id).await?.attributes }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Export only the subtree at this path.
    subtree: Option<String>,
}

async fn export_model(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<impl axum::response::IntoResponse> {
    let yaml = model.export(&actor, query.subtree.as_deref()).await?;
    Ok(([(http::header::CONTENT_TYPE, "application/yaml; charset=utf-8")], yaml))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
}

/// The body is the YAML file itself.
async fn import_model(
    State(model): State<ModelState>,
    Caller(actor): Caller,
    QueryParams(query): QueryParams<ImportQuery>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>> {
    // The file's content is YAML the OpenAPI document does not describe, so what is wrong with it is 422, never
    // 400 (which names a constraint the document states).
    let content_refused = |mut err: app::error::AppError| {
        if err.code == app::error::ErrorKind::BadRequest {
            err.code = app::error::ErrorKind::Unprocessable;
        }
        err
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| app::error::AppError::bad_request("the model file is not UTF-8 text"))
        .map_err(content_refused)?;
    let report = model
        .import(&actor, text, query.dry_run, &|_, _| {})
        .await
        .map_err(content_refused)?;
    Ok(Json(json!(report)))
}

//! `/api/v1/devices`, their tokens, and gateway tokens: thin handlers over [`Devices`].

use std::sync::Arc;

use app::auth::Permission;
use app::devices::{DevicePatch, NewDevice, NewDeviceToken, NewGatewayToken};
use app::services::DevicesService;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{delete, get, patch, post},
    Json,
};
use http::Method;
use serde_json::json;

use super::service::Devices;
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, JsonBody};
use crate::error::ApiError;

type DevicesState = Arc<Devices>;
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<DevicesState>> {
    use Access::Requires;
    use Permission::{EditModel, View};
    vec![
        Endpoint::new(Method::GET, "/devices", Requires(View), get(list))
            .answers_list::<app::devices::DeviceView>("devices"),
        Endpoint::new(Method::POST, "/devices", Requires(EditModel), post(create))
            .body::<NewDevice>()
            .answers::<app::devices::DeviceView>("device"),
        Endpoint::new(Method::GET, "/devices/{id}", Requires(View), get(show))
            .answers::<app::devices::DeviceView>("device"),
        Endpoint::new(Method::PATCH, "/devices/{id}", Requires(EditModel), patch(update))
            .body::<DevicePatch>()
            .answers::<app::devices::DeviceView>("device"),
        Endpoint::new(Method::DELETE, "/devices/{id}", Requires(EditModel), delete(remove)).answer(Answer::Nothing),
        Endpoint::new(Method::GET, "/devices/{id}/tokens", Requires(EditModel), get(tokens))
            .answers_list::<app::devices::DeviceTokenView>("tokens"),
        Endpoint::new(
            Method::POST,
            "/devices/{id}/tokens",
            Requires(EditModel),
            post(create_token),
        )
        .body::<NewDeviceToken>()
        .answers_json::<app::devices::CreatedDeviceToken>(),
        Endpoint::new(
            Method::DELETE,
            "/device-tokens/{id}",
            Requires(EditModel),
            delete(revoke_token),
        )
        .answer(Answer::Nothing),
        Endpoint::new(
            Method::POST,
            "/gateway-tokens",
            Requires(EditModel),
            post(create_gateway_token),
        )
        .body::<NewGatewayToken>()
        .answers_json::<app::devices::CreatedDeviceToken>(),
        Endpoint::new(Method::GET, "/assets/{id}/devices", Requires(View), get(of_asset))
            .answers_list::<app::devices::DeviceView>("devices"),
    ]
}

pub fn router(devices: DevicesState) -> axum::Router {
    crate::api::router_from(endpoints(), devices)
}

async fn list(State(devices): State<DevicesState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "devices": devices.list(&actor).await? })))
}

async fn of_asset(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "devices": devices.of_asset(&actor, id).await? })))
}

async fn create(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    JsonBody(new): JsonBody<NewDevice>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(json!({ "device": devices.create(&actor, new).await? })),
    ))
}

async fn show(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "device": devices.get(&actor, id).await? })))
}

async fn update(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(patch): JsonBody<DevicePatch>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "device": devices.update(&actor, id, patch).await? })))
}

async fn remove(State(devices): State<DevicesState>, Caller(actor): Caller, IdPath(id): IdPath) -> Result<StatusCode> {
    devices.delete(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn tokens(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "tokens": devices.tokens(&actor, id).await? })))
}

async fn create_token(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(new): JsonBody<NewDeviceToken>,
) -> Result<(StatusCode, Json<app::devices::CreatedDeviceToken>)> {
    Ok((StatusCode::CREATED, Json(devices.create_token(&actor, id, new).await?)))
}

async fn create_gateway_token(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    JsonBody(new): JsonBody<NewGatewayToken>,
) -> Result<(StatusCode, Json<app::devices::CreatedDeviceToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(devices.create_gateway_token(&actor, new).await?),
    ))
}

async fn revoke_token(
    State(devices): State<DevicesState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    devices.revoke_token(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

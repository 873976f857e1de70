//! `/api/v1/auth`, `/api/v1/users`, `/api/v1/tokens` and `/api/v1/audit`: thin handlers over [`Accounts`].

use std::sync::Arc;

use app::auth::{
    AuditFilter, LoginRequest, NewToken, NewUser, PasswordChange, PasswordReset, Permission, SetupRequest,
    TimeZoneChange, UserPatch,
};
use app::services::AuthService;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{delete, get, patch, post, put},
    Json,
};
use http::{request::Parts, Method};
use serde_json::json;

use super::service::Accounts;
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, JsonBody, QueryParams};
use crate::error::ApiError;

type AuthState = Arc<Accounts>;
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<AuthState>> {
    use Access::{Public, Requires};
    use Permission::{Administer, ManageOwnAccount, View};
    vec![
        Endpoint::new(Method::POST, "/auth/login", Public, post(login))
            .body::<LoginRequest>()
            .answers::<app::auth::UserView>("user"),
        Endpoint::new(Method::POST, "/auth/logout", Public, post(logout)).answer(Answer::Nothing),
        Endpoint::new(Method::GET, "/auth/me", Requires(View), get(me)).answers_json::<Me>(),
        Endpoint::new(
            Method::PUT,
            "/auth/password",
            Requires(ManageOwnAccount),
            put(change_password),
        )
        .body::<PasswordChange>()
        .answer(Answer::Nothing),
        Endpoint::new(
            Method::PUT,
            "/auth/time_zone",
            Requires(ManageOwnAccount),
            put(set_time_zone),
        )
        .body::<TimeZoneChange>()
        .answers::<app::auth::UserView>("user"),
        Endpoint::new(Method::GET, "/auth/setup", Public, get(setup_required)).answers::<bool>("setup_required"),
        Endpoint::new(Method::POST, "/auth/setup", Public, post(setup))
            .body::<SetupRequest>()
            .answers::<app::auth::UserView>("user"),
        Endpoint::new(Method::GET, "/users", Requires(Administer), get(list_users))
            .answers_list::<app::auth::UserView>("users"),
        Endpoint::new(Method::POST, "/users", Requires(Administer), post(create_user))
            .body::<NewUser>()
            .answers::<app::auth::UserView>("user"),
        Endpoint::new(Method::GET, "/users/{id}", Requires(Administer), get(get_user))
            .answers::<app::auth::UserView>("user"),
        Endpoint::new(Method::PATCH, "/users/{id}", Requires(Administer), patch(update_user))
            .body::<UserPatch>()
            .answers::<app::auth::UserView>("user"),
        Endpoint::new(
            Method::POST,
            "/users/{id}/password",
            Requires(Administer),
            post(reset_password),
        )
        .body::<PasswordReset>()
        .answer(Answer::Nothing),
        Endpoint::new(
            Method::GET,
            "/users/{id}/tokens",
            Requires(ManageOwnAccount),
            get(list_user_tokens),
        )
        .answers_list::<app::auth::TokenView>("tokens"),
        Endpoint::new(
            Method::POST,
            "/users/{id}/tokens",
            Requires(ManageOwnAccount),
            post(create_user_token),
        )
        .body::<NewToken>()
        .answers_json::<app::auth::CreatedToken>(),
        Endpoint::new(Method::GET, "/tokens", Requires(ManageOwnAccount), get(list_my_tokens))
            .answers_list::<app::auth::TokenView>("tokens"),
        Endpoint::new(
            Method::POST,
            "/tokens",
            Requires(ManageOwnAccount),
            post(create_my_token),
        )
        .body::<NewToken>()
        .answers_json::<app::auth::CreatedToken>(),
        Endpoint::new(
            Method::DELETE,
            "/tokens/{id}",
            Requires(ManageOwnAccount),
            delete(revoke_token),
        )
        .answer(Answer::Nothing),
        Endpoint::new(Method::GET, "/audit", Requires(Administer), get(audit_log))
            .answers_list::<app::auth::AuditEntry>("entries"),
    ]
}

async fn login(
    State(accounts): State<AuthState>,
    parts: Parts,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<serde_json::Value>> {
    let user = accounts.login(&parts, body).await?;
    Ok(Json(json!({ "user": user })))
}

async fn logout(State(accounts): State<AuthState>, parts: Parts) -> Result<StatusCode> {
    accounts.logout(&parts).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/me`: the caller, and how they proved who they are.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Me {
    user: app::auth::UserView,
    auth_method: app::auth::AuthMethod,
}

async fn me(State(accounts): State<AuthState>, Caller(actor): Caller) -> Result<Json<Me>> {
    let user = accounts.me(&actor).await?;
    Ok(Json(Me {
        user,
        auth_method: actor.method,
    }))
}

async fn change_password(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode> {
    accounts.change_password(&actor, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_time_zone(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<TimeZoneChange>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "user": accounts.set_time_zone(&actor, body).await? })))
}

async fn setup_required(State(accounts): State<AuthState>) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "setup_required": accounts.setup_required().await? })))
}

async fn setup(
    State(accounts): State<AuthState>,
    parts: Parts,
    JsonBody(body): JsonBody<SetupRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let user = accounts.setup(&parts, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

async fn list_users(State(accounts): State<AuthState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "users": accounts.list_users(&actor).await? })))
}

async fn create_user(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let user = accounts.create_user(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

async fn get_user(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "user": accounts.get_user(&actor, id).await? })))
}

async fn update_user(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UserPatch>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "user": accounts.update_user(&actor, id, body).await? })))
}

async fn reset_password(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<PasswordReset>,
) -> Result<StatusCode> {
    accounts.reset_password(&actor, id, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_user_tokens(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "tokens": accounts.list_tokens(&actor, id).await? })))
}

async fn create_user_token(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let created = accounts.create_token(&actor, id, body).await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn list_my_tokens(State(accounts): State<AuthState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "tokens": accounts.list_tokens(&actor, actor.user_id).await? }),
    ))
}

async fn create_my_token(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let created = accounts.create_token(&actor, actor.user_id, body).await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn revoke_token(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    accounts.revoke_token(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit_log(
    State(accounts): State<AuthState>,
    Caller(actor): Caller,
    QueryParams(filter): QueryParams<AuditFilter>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "entries": accounts.audit_log(&actor, filter).await? })))
}

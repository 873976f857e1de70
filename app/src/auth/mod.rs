//! Accounts in the UI: who is signed in, the sign-in and setup pages, the account page (password, API tokens),
//! user administration and the audit log; and the server functions behind them, which all go through
//! [`crate::services::AuthService`] with the request's [`Actor`].

mod pages;
mod types;

pub use crate::client::{CsrfClient, CSRF_HEADER};
pub use pages::{AccountPage, AdminPage, AuditPage, LoginPage, SetupPage, UserMenu};
pub use types::*;

use leptos::prelude::*;

use crate::error::AppError;

#[cfg(feature = "ssr")]
fn auth() -> Result<std::sync::Arc<dyn crate::services::AuthService>, AppError> {
    Ok(crate::services::services()?.auth)
}

/// The signed-in user, or `None`.
#[server(prefix = "/_fn", endpoint = "auth/current_user", client = CsrfClient)]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    match crate::services::current_actor() {
        Ok(actor) => auth()?.me(&actor).await.map(Some),
        Err(_) => Ok(None),
    }
}

#[server(prefix = "/_fn", endpoint = "auth/login", client = CsrfClient)]
pub async fn login(username: String, password: String) -> Result<UserView, AppError> {
    let parts = crate::services::request_parts()?;
    auth()?.login(&parts, LoginRequest { username, password }).await
}

#[server(prefix = "/_fn", endpoint = "auth/logout", client = CsrfClient)]
pub async fn logout() -> Result<(), AppError> {
    let parts = crate::services::request_parts()?;
    auth()?.logout(&parts).await
}

#[server(prefix = "/_fn", endpoint = "auth/setup_required", client = CsrfClient)]
pub async fn setup_required() -> Result<bool, AppError> {
    auth()?.setup_required().await
}

#[server(prefix = "/_fn", endpoint = "auth/setup", client = CsrfClient)]
pub async fn setup(
    setup_token: String,
    username: String,
    display_name: String,
    password: String,
) -> Result<UserView, AppError> {
    let parts = crate::services::request_parts()?;
    let request = SetupRequest {
        setup_token,
        username,
        display_name,
        password,
    };
    auth()?.setup(&parts, request).await
}

#[server(prefix = "/_fn", endpoint = "auth/change_password", client = CsrfClient)]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    auth()?
        .change_password(
            &actor,
            PasswordChange {
                current_password,
                new_password,
            },
        )
        .await
}

/// Sets the zone the caller reads times in (empty: the browser's own).
#[server(prefix = "/_fn", endpoint = "auth/set_time_zone", client = CsrfClient)]
pub async fn set_time_zone(time_zone: String) -> Result<UserView, AppError> {
    let actor = crate::services::current_actor()?;
    let time_zone = Some(time_zone.trim().to_string()).filter(|zone| !zone.is_empty());
    auth()?.set_time_zone(&actor, TimeZoneChange { time_zone }).await
}

#[server(prefix = "/_fn", endpoint = "auth/my_tokens", client = CsrfClient)]
pub async fn my_tokens() -> Result<Vec<TokenView>, AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.list_tokens(&actor, actor.user_id).await
}

#[server(prefix = "/_fn", endpoint = "auth/create_my_token", client = CsrfClient)]
pub async fn create_my_token(name: String, expires_in_days: String) -> Result<CreatedToken, AppError> {
    let actor = crate::services::current_actor()?;
    let expires_at_ms = match expires_in_days.trim() {
        "" => None,
        days => {
            let days: u32 = days.parse().map_err(|_| {
                AppError::bad_request("the expiry is a whole number of days, or empty for never")
                    .for_field("expires_in_days")
            })?;
            Some(now_ms() + i64::from(days) * 86_400_000)
        }
    };
    auth()?
        .create_token(&actor, actor.user_id, NewToken { name, expires_at_ms })
        .await
        // The form asks for days; the service speaks of the instant they lead to.
        .map_err(|err| match err.field() {
            Some("expires_at_ms") => err.for_field("expires_in_days"),
            _ => err,
        })
}

#[server(prefix = "/_fn", endpoint = "auth/revoke_token", client = CsrfClient)]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.revoke_token(&actor, id).await
}

#[server(prefix = "/_fn", endpoint = "auth/users", client = CsrfClient)]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.list_users(&actor).await
}

#[server(prefix = "/_fn", endpoint = "auth/create_user", client = CsrfClient)]
pub async fn create_user(
    username: String,
    display_name: String,
    password: String,
    role: String,
) -> Result<UserView, AppError> {
    let actor = crate::services::current_actor()?;
    let user = NewUser {
        username,
        display_name,
        password,
        role: Role::parse(&role)?,
        grants: Vec::new(),
        whole_plant: None,
    };
    auth()?.create_user(&actor, user).await
}

#[server(prefix = "/_fn", endpoint = "auth/update_user", client = CsrfClient)]
pub async fn update_user(id: i64, patch: UserPatch) -> Result<UserView, AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.update_user(&actor, id, patch).await
}

#[server(prefix = "/_fn", endpoint = "auth/reset_password", client = CsrfClient)]
pub async fn reset_password(id: i64, new_password: String) -> Result<(), AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.reset_password(&actor, id, PasswordReset { new_password }).await
}

#[server(prefix = "/_fn", endpoint = "auth/audit_log", client = CsrfClient)]
pub async fn audit_log(filter: AuditFilter) -> Result<Vec<AuditEntry>, AppError> {
    let actor = crate::services::current_actor()?;
    auth()?.audit_log(&actor, filter).await
}

/// Milliseconds since the Unix epoch (on the server).
#[cfg(feature = "ssr")]
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

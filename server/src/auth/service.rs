//! The accounts service: sign-in and sessions, users, API tokens and the audit log, behind the
//! [`AuthService`] trait that REST handlers and server functions share. Every method that is not sign-in or
//! setup takes the [`Actor`] and checks its permission here, in one place.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use app::auth::{
    validate_display_name, validate_password, validate_username, Actor, AuditEntry, AuditFilter, AuthMethod,
    CreatedToken, LoginRequest, NewToken, NewUser, PasswordChange, PasswordReset, Permission, Role, Scope,
    SetupRequest, TimeZoneChange, TokenView, UserPatch, UserView,
};
use app::error::{AppError, ErrorKind};
use app::services::AuthService;
use axum::extract::ConnectInfo;
use http::request::Parts;
use serde_json::json;
use tower_sessions::Session;

use super::secrets;
use super::store::{AuthStore, NewAuditEntry, NewTokenRecord, NewUserRecord, UserRecord, UserUpdate};
use super::throttle::LoginThrottle;
use crate::error::ApiError;
use crate::metadata::now_ms;

/// Session keys.
const SESSION_USER: &str = "user_id";
const SESSION_EPOCH: &str = "epoch";
const SESSION_LOGIN_AT: &str = "login_at_ms";

const WRONG_CREDENTIALS: &str = "the username or password is incorrect";

/// What a request proved who it is with, kept so that a long-lived stream can check it again
/// ([`Accounts::recheck`]).
#[derive(Debug, Clone)]
pub enum Credential {
    /// An API token, by its hash.
    Token(String),
    /// A session, by its id in the session store.
    Session(tower_sessions::session::Id),
}

pub struct Accounts {
    store: Arc<dyn AuthStore>,
    /// Where sessions live, for re-checking a live stream's session; none in the command line's service.
    sessions: Option<super::SessionBackend>,
    live_streams: Arc<super::live::LiveStreams>,
    audit: AuditLog,
    throttle: LoginThrottle,
    absolute_timeout: Duration,
}

fn to_app(err: ApiError) -> AppError {
    err.into_app_error()
}

/// The client's address as the audit log and throttle see it: the one [`super::client::client_address`] found
/// (behind a trusted gateway, from `X-Forwarded-For`), else the TCP peer.
pub fn client_address(parts: &Parts) -> String {
    match parts.extensions.get::<super::client::ClientAddress>() {
        Some(client) => client.0.to_string(),
        None => parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string()),
    }
}

fn session_of(parts: &Parts) -> Result<Session, AppError> {
    parts.extensions.get::<Session>().cloned().ok_or_else(|| {
        tracing::error!("A request reached the accounts service without a session layer.");
        AppError::internal()
    })
}

fn session_error(err: tower_sessions::session::Error) -> AppError {
    ApiError::Internal(anyhow::Error::new(err).context("session store failed")).into_app_error()
}

fn both_grants_and_whole_plant() -> AppError {
    AppError::new(
        ErrorKind::Unprocessable,
        "give either asset grants or the whole plant, not both",
    )
    .for_field("grants")
}

fn not_found_user() -> AppError {
    AppError::not_found("there is no such user")
}

impl Accounts {
    pub fn new(store: Arc<dyn AuthStore>, max_failures_per_minute: u32, absolute_timeout: Duration) -> Self {
        Accounts {
            audit: AuditLog { store: store.clone() },
            throttle: LoginThrottle::new(store.clone(), max_failures_per_minute),
            store,
            sessions: None,
            live_streams: Default::default(),
            absolute_timeout,
        }
    }

    /// Counts live streams across instances through `leases` (held in `instance`'s name).
    pub fn with_shared_stream_count(mut self, leases: Arc<dyn crate::leases::LeaseStore>, instance: String) -> Self {
        self.live_streams = Arc::new(super::live::LiveStreams::shared(leases, instance));
        self
    }

    /// Lets live streams re-check sessions in `sessions`.
    pub fn with_sessions(mut self, sessions: super::SessionBackend) -> Self {
        self.sessions = Some(sessions);
        self
    }

    pub(super) fn live_streams(&self) -> &Arc<super::live::LiveStreams> {
        &self.live_streams
    }

    /// When no user exists, opens the setup page with a fresh token and returns it (for the log). The token is
    /// kept hashed in the metadata database, so it opens setup on every instance.
    pub async fn open_setup_if_empty(&self) -> Result<Option<String>, ApiError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let token = secrets::random_hex(16);
        self.store
            .add_setup_token(&secrets::token_hash(&token), crate::metadata::now_ms())
            .await?;
        Ok(Some(token))
    }

    /// Whether setup is still open: it closes for good once any account exists, however that account was made
    /// (the setup page, `gantry user create`, another instance).
    async fn setup_open(&self, hash: Option<&str>) -> Result<bool, AppError> {
        Ok(self.store.count_users().await.map_err(to_app)? == 0
            && self.store.setup_token_open(hash).await.map_err(to_app)?)
    }

    /// A user as work done on their behalf acts (a scheduled report runs as its owner): refused once the account
    /// is gone or disabled, with their grants as they are now.
    pub async fn actor_of_user(&self, user_id: i64, source: &str) -> Result<Actor, AppError> {
        let user = self.user(user_id).await?;
        if !user.view.enabled {
            return Err(AppError::forbidden(format!(
                "the account {:?} is disabled",
                user.view.username
            )));
        }
        Ok(actor_for(&user, AuthMethod::Cli, Some(source.into())))
    }

    /// Creates a user without an actor: the command line on the server (`gantry user create`) and `--demo`.
    pub async fn create_user_from_cli(&self, user: NewUser) -> Result<UserView, AppError> {
        self.insert_user(&Actor::command_line(), user).await
    }

    pub async fn list_users_from_cli(&self) -> Result<Vec<UserView>, AppError> {
        self.store.list_users().await.map_err(to_app)
    }

    /// `--demo`: an admin named `demo` with a fresh random password, returned to be shown once, with the actor
    /// that seeds the demo plant.
    pub async fn ensure_demo_admin(&self) -> Result<(String, String, Actor), AppError> {
        let username = "demo".to_string();
        let password = secrets::random_hex(12);
        match self.store.user_by_username(&username).await.map_err(to_app)? {
            None => {
                let user = NewUser {
                    username: username.clone(),
                    display_name: "Demo administrator".into(),
                    password: password.clone(),
                    role: Role::Admin,
                    grants: Vec::new(),
                    whole_plant: Some(true),
                };
                self.create_user_from_cli(user).await?;
            }
            Some(existing) => {
                let hash = secrets::hash_password(password.clone()).await.map_err(to_app)?;
                let update = UserUpdate {
                    password_hash: Some(hash),
                    enabled: Some(true),
                    role: Some(Role::Admin),
                    end_sessions: true,
                    ..UserUpdate::default()
                };
                self.store
                    .update_user(existing.view.id, update, now_ms())
                    .await
                    .map_err(to_app)?;
            }
        }
        let actor = self.cli_actor(&username).await?;
        Ok((username, password, actor))
    }

    /// The actor of commands run on the server itself as the named user (`gantry token create`, `--demo`).
    pub async fn cli_actor(&self, username: &str) -> Result<Actor, AppError> {
        let user = self
            .store
            .user_by_username(username)
            .await
            .map_err(to_app)?
            .ok_or_else(not_found_user)?;
        Ok(actor_for(&user, AuthMethod::Cli, Some("command line".into())))
    }

    /// Creates a token for a user by name, from the command line.
    pub async fn create_token_from_cli(&self, username: &str, token: NewToken) -> Result<CreatedToken, AppError> {
        let actor = self.cli_actor(username).await?;
        self.create_token(&actor, actor.user_id, token).await
    }

    /// Who a request comes from: an API token (`Authorization: Bearer …`) or a session. `Ok(None)` is an
    /// anonymous request; a bad token is an error (401), not anonymity.
    pub async fn identify(&self, parts: &Parts) -> Result<Option<Actor>, AppError> {
        let source = Some(client_address(parts));
        if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
            let secret = header
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    AppError::new(
                        ErrorKind::Unauthorized,
                        "the Authorization header must be `Bearer <token>`",
                    )
                })?;
            return self.identify_token(secret.trim(), source).await.map(Some);
        }
        let Some(session) = parts.extensions.get::<Session>() else {
            return Ok(None);
        };
        let Some(user_id) = session.get::<i64>(SESSION_USER).await.map_err(session_error)? else {
            return Ok(None);
        };
        let epoch = session.get::<i64>(SESSION_EPOCH).await.map_err(session_error)?;
        let login_at = session.get::<i64>(SESSION_LOGIN_AT).await.map_err(session_error)?;
        match self.session_actor(user_id, epoch, login_at, source).await? {
            Some(actor) => Ok(Some(actor)),
            None => {
                // Disabled, password changed, or past the absolute timeout: the session ends here.
                session.flush().await.map_err(session_error)?;
                Ok(None)
            }
        }
    }

    /// The actor a session's values admit, if they still do.
    async fn session_actor(
        &self,
        user_id: i64,
        epoch: Option<i64>,
        login_at: Option<i64>,
        source: Option<String>,
    ) -> Result<Option<Actor>, AppError> {
        let user = self.store.user_by_id(user_id).await.map_err(to_app)?;
        let expired = login_at.is_none_or(|at| now_ms() - at > self.absolute_timeout.as_millis() as i64);
        Ok(match user {
            Some(user) if user.view.enabled && Some(user.session_epoch) == epoch && !expired => {
                Some(actor_for(&user, AuthMethod::Session, source))
            }
            _ => None,
        })
    }

    /// The credential a request was identified by (after [`Accounts::identify`] admitted it).
    pub async fn credential(&self, parts: &Parts) -> Result<Option<Credential>, AppError> {
        if let Some(secret) = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        {
            return Ok(Some(Credential::Token(secrets::token_hash(secret.trim()))));
        }
        Ok(parts
            .extensions
            .get::<Session>()
            .and_then(Session::id)
            .map(Credential::Session))
    }

    /// Who `credential` admits now: none once the token is revoked or expired, the session ended (signed out,
    /// expired, password changed), or the user disabled.
    pub async fn recheck(&self, credential: &Credential, source: Option<String>) -> Result<Option<Actor>, AppError> {
        match credential {
            Credential::Token(hash) => Ok(self.token_actor(hash, source).await?.map(|(actor, _)| actor)),
            Credential::Session(id) => {
                use tower_sessions::SessionStore;
                let Some(sessions) = &self.sessions else {
                    return Ok(None);
                };
                let record = sessions
                    .load(id)
                    .await
                    .map_err(|err| ApiError::Internal(anyhow::anyhow!("session store failed: {err}")))?;
                let Some(record) = record.filter(|r| r.expiry_date > time::OffsetDateTime::now_utc()) else {
                    return Ok(None);
                };
                let value = |key: &str| record.data.get(key).and_then(serde_json::Value::as_i64);
                let Some(user_id) = value(SESSION_USER) else {
                    return Ok(None);
                };
                self.session_actor(user_id, value(SESSION_EPOCH), value(SESSION_LOGIN_AT), source)
                    .await
            }
        }
    }

    async fn identify_token(&self, secret: &str, source: Option<String>) -> Result<Actor, AppError> {
        let (actor, token) = self
            .token_actor(&secrets::token_hash(secret), source)
            .await?
            .ok_or_else(|| AppError::new(ErrorKind::Unauthorized, "the API token is invalid, expired or revoked"))?;
        // Last use to the minute is enough, and spares a write per request.
        let now = now_ms();
        if token.last_used_at_ms.is_none_or(|at| now - at > 60_000) {
            self.store.touch_token(token.id, now).await.map_err(to_app)?;
        }
        Ok(actor)
    }

    /// The actor an API token (by its hash) admits, with the token: none when it is unknown, revoked or expired,
    /// or its user is disabled.
    async fn token_actor(&self, hash: &str, source: Option<String>) -> Result<Option<(Actor, TokenView)>, AppError> {
        let Some(token) = self.store.token_by_hash(hash).await.map_err(to_app)? else {
            return Ok(None);
        };
        if token.revoked_at_ms.is_some() || token.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Ok(None);
        }
        let user = self.store.user_by_id(token.user_id).await.map_err(to_app)?;
        Ok(user
            .filter(|user| user.view.enabled)
            .map(|user| (actor_for(&user, AuthMethod::ApiToken, source), token)))
    }

    /// The audit log, for other areas to record their changes in.
    pub fn audit_handle(&self) -> AuditLog {
        AuditLog {
            store: self.store.clone(),
        }
    }

    async fn user(&self, id: i64) -> Result<UserRecord, AppError> {
        self.store
            .user_by_id(id)
            .await
            .map_err(to_app)?
            .ok_or_else(not_found_user)
    }

    async fn insert_user(&self, actor: &Actor, user: NewUser) -> Result<UserView, AppError> {
        validate_username(&user.username)?;
        validate_display_name(&user.display_name)?;
        validate_password(&user.password)?;
        let whole_plant = user.whole_plant.unwrap_or(user.grants.is_empty());
        if whole_plant && !user.grants.is_empty() {
            return Err(both_grants_and_whole_plant());
        }
        let password_hash = secrets::hash_password(user.password).await.map_err(to_app)?;
        let record = NewUserRecord {
            username: user.username,
            display_name: user.display_name.trim().to_string(),
            password_hash,
            role: user.role,
            whole_plant,
            grants: user.grants,
        };
        let id = self.store.insert_user(record, now_ms()).await.map_err(to_app)?;
        let created = self.user(id).await?.view;
        self.audit
            .record(
                Some(actor),
                "user.create",
                "user",
                Some(id.to_string()),
                json!({
                    "username": { "to": created.username },
                    "display_name": { "to": created.display_name },
                    "role": { "to": created.role },
                    "whole_plant": { "to": created.whole_plant },
                    "grants": { "to": created.grants },
                    "password": { "to": "[REDACTED]" },
                }),
            )
            .await?;
        Ok(created)
    }

    /// Starts an authenticated session: a new session id (no fixation), then the user's keys.
    async fn start_session(&self, parts: &Parts, user: &UserRecord) -> Result<(), AppError> {
        let session = session_of(parts)?;
        session.cycle_id().await.map_err(session_error)?;
        session
            .insert(SESSION_USER, user.view.id)
            .await
            .map_err(session_error)?;
        session
            .insert(SESSION_EPOCH, user.session_epoch)
            .await
            .map_err(session_error)?;
        session
            .insert(SESSION_LOGIN_AT, now_ms())
            .await
            .map_err(session_error)?;
        self.store.record_login(user.view.id, now_ms()).await.map_err(to_app)
    }

    /// Tokens of `user_id` are the caller's own, or the caller is an admin; otherwise they do not exist for them.
    fn check_token_owner(actor: &Actor, user_id: i64) -> Result<(), AppError> {
        actor.require(Permission::ManageOwnAccount)?;
        if actor.user_id == user_id || actor.role.allows(Permission::Administer) {
            Ok(())
        } else {
            Err(not_found_user())
        }
    }
}

/// Records who changed what, from where, with a JSON diff. Every area's writes go through one of these.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuthStore>,
}

impl AuditLog {
    pub async fn record(
        &self,
        actor: Option<&Actor>,
        action: &str,
        target_type: &str,
        target_id: Option<String>,
        diff: serde_json::Value,
    ) -> Result<(), AppError> {
        let entry = NewAuditEntry {
            actor_id: actor.map(|a| a.user_id).filter(|id| *id > 0),
            actor_name: actor.map(|a| a.username.clone()),
            source: actor.and_then(|a| a.source.clone()),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id,
            diff,
        };
        self.store.append_audit(entry, now_ms()).await.map_err(to_app)?;
        crate::changes::committed_here();
        Ok(())
    }
}

/// An IANA time zone name as the time-zone database spells it (`europe/berlin` → `Europe/Berlin`), or 400.
fn checked_time_zone(name: &str) -> Result<String, AppError> {
    let refused = || {
        AppError::bad_request(format!(
            "{name:?} is not a time zone Gantry knows; use an IANA name such as Europe/Berlin or America/New_York"
        ))
        .for_field("time_zone")
    };
    if name.len() > 64 {
        return Err(refused());
    }
    let zone = jiff::tz::TimeZone::get(name).map_err(|_| refused())?;
    Ok(zone.iana_name().unwrap_or(name).to_string())
}

pub fn actor_for(user: &UserRecord, method: AuthMethod, source: Option<String>) -> Actor {
    Actor {
        user_id: user.view.id,
        username: user.view.username.clone(),
        role: user.view.role,
        scope: Scope::of(user.view.whole_plant, &user.view.grants),
        method,
        source,
    }
}

/// `{ field: { from, to } }` for the fields that differ.
fn diff_users(before: &UserView, after: &UserView) -> serde_json::Value {
    let mut diff = serde_json::Map::new();
    let mut field = |name: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            diff.insert(name.to_string(), json!({ "from": from, "to": to }));
        }
    };
    field("display_name", json!(before.display_name), json!(after.display_name));
    field("role", json!(before.role), json!(after.role));
    field("enabled", json!(before.enabled), json!(after.enabled));
    field("whole_plant", json!(before.whole_plant), json!(after.whole_plant));
    field("grants", json!(before.grants), json!(after.grants));
    serde_json::Value::Object(diff)
}

#[async_trait::async_trait]
impl AuthService for Accounts {
    async fn login(&self, parts: &Parts, credentials: LoginRequest) -> Result<UserView, AppError> {
        let client = client_address(parts);
        // What cannot be an account is refused before it costs a throttle entry, a query or a hash.
        app::auth::validate_username(&credentials.username)?;
        if credentials.password.chars().count() > app::auth::MAX_PASSWORD_CHARS {
            return Err(AppError::new(ErrorKind::Unauthorized, WRONG_CREDENTIALS));
        }
        let attempt = self.throttle.begin(&credentials.username, &client).await?;
        let user = self
            .store
            .user_by_username(&credentials.username)
            .await
            .map_err(to_app)?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_ok = secrets::verify_password(credentials.password, stored_hash)
            .await
            .map_err(to_app)?;
        let user = match user {
            Some(user) if password_ok && user.view.enabled => user,
            _ => {
                tracing::info!(client, "A sign-in failed.");
                return Err(AppError::new(ErrorKind::Unauthorized, WRONG_CREDENTIALS));
            }
        };
        attempt.succeeded().await;
        self.start_session(parts, &user).await?;
        let actor = actor_for(&user, AuthMethod::Session, Some(client));
        self.audit
            .record(
                Some(&actor),
                "auth.login",
                "user",
                Some(user.view.id.to_string()),
                json!({}),
            )
            .await?;
        Ok(user.view)
    }

    async fn logout(&self, parts: &Parts) -> Result<(), AppError> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            self.audit
                .record(
                    Some(actor),
                    "auth.logout",
                    "user",
                    Some(actor.user_id.to_string()),
                    json!({}),
                )
                .await?;
        }
        if let Some(session) = parts.extensions.get::<Session>() {
            session.flush().await.map_err(session_error)?;
        }
        Ok(())
    }

    async fn setup_required(&self) -> Result<bool, AppError> {
        self.setup_open(None).await
    }

    async fn setup(&self, parts: &Parts, setup: SetupRequest) -> Result<UserView, AppError> {
        let client = client_address(parts);
        // The setup token is a password too: failures count against the same throttle.
        let attempt = self.throttle.begin("[setup]", &client).await?;
        if !self.setup_open(None).await? {
            return Err(AppError::not_found("setup is complete; sign in instead"));
        }
        // Only hashes are stored; comparing hashes of a random token leaks nothing through timing.
        let hash = secrets::token_hash(setup.setup_token.trim());
        if !self.setup_open(Some(&hash)).await? {
            return Err(
                AppError::forbidden("the setup token does not match the one in the server log")
                    .for_field("setup_token"),
            );
        }
        let new_user = NewUser {
            username: setup.username,
            display_name: setup.display_name,
            password: setup.password,
            role: Role::Admin,
            grants: Vec::new(),
            whole_plant: Some(true),
        };
        let setup_actor = Actor {
            user_id: 0,
            username: "setup".into(),
            role: Role::Admin,
            scope: Scope::Everything,
            method: AuthMethod::Session,
            source: Some(client),
        };
        // Consumed before the account is made, so that of two setups racing on two instances only one proceeds;
        // put back if the account is refused (a weak password), so the same token can be tried again.
        if !self.store.take_setup_tokens(&hash).await.map_err(to_app)? {
            return Err(AppError::not_found("setup is complete; sign in instead"));
        }
        let view = match self.insert_user(&setup_actor, new_user).await {
            Ok(view) => view,
            Err(error) => {
                let now = crate::metadata::now_ms();
                self.store.add_setup_token(&hash, now).await.map_err(to_app)?;
                return Err(error);
            }
        };
        attempt.succeeded().await;
        let record = self.user(view.id).await?;
        self.start_session(parts, &record).await?;
        Ok(view)
    }

    async fn me(&self, actor: &Actor) -> Result<UserView, AppError> {
        actor.require(Permission::View)?;
        Ok(self.user(actor.user_id).await?.view)
    }

    async fn change_password(&self, actor: &Actor, change: PasswordChange) -> Result<(), AppError> {
        actor.require(Permission::ManageOwnAccount)?;
        validate_password(&change.new_password).map_err(|err| err.for_field("new_password"))?;
        let user = self.user(actor.user_id).await?;
        let client = actor.source.clone().unwrap_or_default();
        let attempt = self.throttle.begin(&actor.username, &client).await?;
        if !secrets::verify_password(change.current_password, Some(user.password_hash))
            .await
            .map_err(to_app)?
        {
            return Err(AppError::forbidden("the current password is incorrect").for_field("current_password"));
        }
        attempt.succeeded().await;
        let hash = secrets::hash_password(change.new_password).await.map_err(to_app)?;
        let update = UserUpdate {
            password_hash: Some(hash),
            end_sessions: true,
            ..UserUpdate::default()
        };
        self.store
            .update_user(actor.user_id, update, now_ms())
            .await
            .map_err(to_app)?;
        self.audit
            .record(
                Some(actor),
                "user.password_change",
                "user",
                Some(actor.user_id.to_string()),
                json!({ "password": { "to": "[REDACTED]" } }),
            )
            .await
    }

    async fn set_time_zone(&self, actor: &Actor, change: TimeZoneChange) -> Result<UserView, AppError> {
        actor.require(Permission::ManageOwnAccount)?;
        let zone = match change.time_zone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(checked_time_zone(name)?),
        };
        let before = self.user(actor.user_id).await?.view.time_zone;
        self.store
            .set_time_zone(actor.user_id, zone.as_deref(), now_ms())
            .await
            .map_err(to_app)?;
        self.audit
            .record(
                Some(actor),
                "user.time_zone",
                "user",
                Some(actor.user_id.to_string()),
                json!({ "time_zone": { "from": before, "to": zone } }),
            )
            .await?;
        Ok(self.user(actor.user_id).await?.view)
    }

    async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>, AppError> {
        actor.require(Permission::Administer)?;
        self.store.list_users().await.map_err(to_app)
    }

    async fn get_user(&self, actor: &Actor, id: i64) -> Result<UserView, AppError> {
        actor.require(Permission::Administer)?;
        Ok(self.user(id).await?.view)
    }

    async fn create_user(&self, actor: &Actor, user: NewUser) -> Result<UserView, AppError> {
        actor.require(Permission::Administer)?;
        self.insert_user(actor, user).await
    }

    async fn update_user(&self, actor: &Actor, id: i64, patch: UserPatch) -> Result<UserView, AppError> {
        actor.require(Permission::Administer)?;
        let before = self.user(id).await?.view;
        if let Some(name) = &patch.display_name {
            validate_display_name(name)?;
        }
        if id == actor.user_id && (patch.enabled == Some(false) || patch.role.is_some_and(|r| r != Role::Admin)) {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "you cannot disable your own account or take away your own admin role",
            ));
        }
        // Grants replace the whole plant unless it is asked for; the whole plant drops the grants. Nothing here
        // reads an empty list as "everything".
        let gives_grants = patch.grants.as_ref().is_some_and(|grants| !grants.is_empty());
        if patch.whole_plant == Some(true) && gives_grants {
            return Err(both_grants_and_whole_plant());
        }
        let whole_plant = patch.whole_plant.unwrap_or(before.whole_plant && !gives_grants);
        let grants = if whole_plant {
            Vec::new()
        } else {
            patch.grants.unwrap_or_else(|| before.grants.clone())
        };
        // Sessions end when an account is disabled or loses rights, so nothing keeps access it no longer has.
        let narrowed = !whole_plant && (before.whole_plant || before.grants.iter().any(|g| !grants.contains(g)));
        let end_sessions =
            patch.enabled == Some(false) || patch.role.is_some_and(|role| role < before.role) || narrowed;
        let update = UserUpdate {
            display_name: patch.display_name.map(|n| n.trim().to_string()),
            role: patch.role,
            enabled: patch.enabled,
            whole_plant: Some(whole_plant),
            grants: Some(grants),
            password_hash: None,
            end_sessions,
        };
        self.store.update_user(id, update, now_ms()).await.map_err(to_app)?;
        let after = self.user(id).await?.view;
        self.audit
            .record(
                Some(actor),
                "user.update",
                "user",
                Some(id.to_string()),
                diff_users(&before, &after),
            )
            .await?;
        Ok(after)
    }

    async fn reset_password(&self, actor: &Actor, id: i64, reset: PasswordReset) -> Result<(), AppError> {
        actor.require(Permission::Administer)?;
        validate_password(&reset.new_password)?;
        self.user(id).await?;
        let hash = secrets::hash_password(reset.new_password).await.map_err(to_app)?;
        let update = UserUpdate {
            password_hash: Some(hash),
            end_sessions: true,
            ..UserUpdate::default()
        };
        self.store.update_user(id, update, now_ms()).await.map_err(to_app)?;
        self.audit
            .record(
                Some(actor),
                "user.password_reset",
                "user",
                Some(id.to_string()),
                json!({ "password": { "to": "[REDACTED]" } }),
            )
            .await
    }

    async fn list_tokens(&self, actor: &Actor, user_id: i64) -> Result<Vec<TokenView>, AppError> {
        Self::check_token_owner(actor, user_id)?;
        self.user(user_id).await?;
        self.store.list_tokens(user_id).await.map_err(to_app)
    }

    async fn create_token(&self, actor: &Actor, user_id: i64, token: NewToken) -> Result<CreatedToken, AppError> {
        Self::check_token_owner(actor, user_id)?;
        self.user(user_id).await?;
        let name = token.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(
                AppError::bad_request("a token name is 1 to 100 characters without control characters")
                    .for_field("name"),
            );
        }
        if token.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Err(
                AppError::new(ErrorKind::Unprocessable, "the expiry must lie in the future").for_field("expires_at_ms"),
            );
        }
        let secret = secrets::new_token_secret();
        let record = NewTokenRecord {
            user_id,
            name: name.to_string(),
            token_hash: secrets::token_hash(&secret),
            prefix: secrets::token_display_prefix(&secret),
            expires_at_ms: token.expires_at_ms,
        };
        let view = self.store.insert_token(record, now_ms()).await.map_err(to_app)?;
        self.audit.record(
            Some(actor),
            "token.create",
            "api_token",
            Some(view.id.to_string()),
            json!({ "user_id": { "to": user_id }, "name": { "to": view.name }, "expires_at_ms": { "to": view.expires_at_ms } }),
        )
        .await?;
        Ok(CreatedToken { token: view, secret })
    }

    async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<(), AppError> {
        let token = self
            .store
            .token_by_id(token_id)
            .await
            .map_err(to_app)?
            .ok_or_else(|| AppError::not_found("there is no such token"))?;
        Self::check_token_owner(actor, token.user_id).map_err(|_| AppError::not_found("there is no such token"))?;
        self.store.revoke_token(token_id, now_ms()).await.map_err(to_app)?;
        self.audit
            .record(
                Some(actor),
                "token.revoke",
                "api_token",
                Some(token_id.to_string()),
                json!({ "revoked": { "from": token.revoked_at_ms.is_some(), "to": true } }),
            )
            .await
    }

    async fn audit_log(&self, actor: &Actor, filter: AuditFilter) -> Result<Vec<AuditEntry>, AppError> {
        actor.require(Permission::Administer)?;
        self.store.list_audit(&filter).await.map_err(to_app)
    }
}

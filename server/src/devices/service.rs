//! [`Devices`]: devices and their tokens for people (grants apply through the bound asset), and token
//! authentication for the ingest pipeline (cached for a few seconds, so revocation takes effect that fast).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::services::DevicesService;
use app::services::ModelService;
use app::{
    auth::{Actor, Permission, Scope},
    devices::{
        validate_device_name, CreatedDeviceToken, DevicePatch, DeviceTokenView, DeviceView, NewDevice, NewDeviceToken,
        NewGatewayToken, ONLINE_WINDOW_MS,
    },
    error::{AppError, ErrorKind},
};
use serde_json::json;

use super::store::{DeviceRow, DeviceStore, TokenRow};
use crate::locks::MutexExt;
use crate::{
    assets::Model,
    auth::{secrets, AuditLog},
    metadata::now_ms,
};

/// Device tokens look like `gdev_` + 64 hex digits.
pub const DEVICE_TOKEN_PREFIX: &str = "gdev_";
/// How long an authentication is reused before the database is asked again (and so how long a revoked token may
/// still write).
const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// What a token may write for: its devices by name.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token_id: i64,
    pub devices: HashMap<String, DeviceRow>,
}

impl TokenGrant {
    /// The token's only device, when it has exactly one (a device token rather than a gateway's).
    pub fn sole_device(&self) -> Option<&DeviceRow> {
        if self.devices.len() == 1 {
            self.devices.values().next()
        } else {
            None
        }
    }
}

/// When a token hash was last looked up, and what it grants (none: unknown or revoked).
type CachedAuth = (Instant, Option<Arc<TokenGrant>>);

pub struct Devices {
    store: Arc<dyn DeviceStore>,
    model: Arc<Model>,
    audit: AuditLog,
    auth_cache: Mutex<HashMap<String, CachedAuth>>,
    /// Last-seen times of devices, as this instance saw them (views read these; the database may lag).
    seen: Mutex<HashMap<i64, i64>>,
    /// Last-seen times and token uses not yet written to the database.
    unwritten: Mutex<(HashMap<i64, i64>, HashMap<i64, i64>)>,
}

fn no_device() -> AppError {
    AppError::not_found("there is no such device")
}

fn token_view(row: TokenRow) -> DeviceTokenView {
    DeviceTokenView {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        devices: row.devices,
        other_devices: 0,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    }
}

fn unauthorized() -> AppError {
    AppError::new(
        ErrorKind::Unauthorized,
        "the device token is missing, unknown or revoked",
    )
}

impl Devices {
    pub fn new(store: Arc<dyn DeviceStore>, model: Arc<Model>, audit: AuditLog) -> Self {
        Devices {
            store,
            model,
            audit,
            auth_cache: Mutex::new(HashMap::new()),
            seen: Mutex::new(Default::default()),
            unwritten: Mutex::new(Default::default()),
        }
    }

    async fn view(&self, actor: &Actor, row: DeviceRow) -> Result<DeviceView, AppError> {
        let asset = self.model.get_asset(actor, row.asset_id).await?;
        let last_seen_at = {
            let seen = self.seen.lock_unpoisoned();
            match (seen.get(&row.id).copied(), row.last_seen_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        };
        Ok(DeviceView {
            id: row.id,
            name: row.name,
            asset_id: row.asset_id,
            asset_path: asset.summary.path,
            description: row.description,
            field_map: row.field_map,
            last_seen_at,
            online: last_seen_at.is_some_and(|at| now_ms() - at <= ONLINE_WINDOW_MS),
            active_tokens: row.active_tokens,
        })
    }

    /// A device the caller may see (its asset within their grants), or 404.
    async fn visible(&self, actor: &Actor, id: i64) -> Result<DeviceRow, AppError> {
        actor.require(Permission::View)?;
        let row = self.store.device_by_id(id).await?.ok_or_else(no_device)?;
        match self.model.get_asset(actor, row.asset_id).await {
            Ok(_) => Ok(row),
            Err(err) if err.code == ErrorKind::NotFound => Err(no_device()),
            Err(err) => Err(err),
        }
    }

    /// The id of the asset at `path`; a refusal names the `asset_path` input.
    async fn asset_at(&self, actor: &Actor, path: &str) -> Result<i64, AppError> {
        match self.model.asset_by_path(actor, path).await {
            Ok(asset) => Ok(asset.summary.id),
            Err(err) => Err(err.for_field("asset_path")),
        }
    }

    /// Checks that every mapped attribute is a time-series attribute of the asset; a refusal names the `field_map`
    /// input.
    async fn check_field_map(&self, actor: &Actor, asset_id: i64, row: &DeviceRow) -> Result<(), AppError> {
        let asset = self.model.get_asset(actor, asset_id).await?;
        for (field, attribute) in &row.field_map {
            let problem = match asset.attributes.iter().find(|a| &a.attribute.name == attribute) {
                _ if field.is_empty() => AppError::bad_request("a field map has an empty field name"),
                Some(a) if a.attribute.is_series => continue,
                Some(_) => AppError::new(
                    ErrorKind::Unprocessable,
                    format!("field {field:?} maps to {attribute:?}, a static value, not a time series"),
                ),
                None => AppError::new(
                    ErrorKind::Unprocessable,
                    format!("field {field:?} maps to {attribute:?}, which the asset does not have"),
                ),
            };
            return Err(problem.for_field("field_map"));
        }
        Ok(())
    }

    async fn issue_token(
        &self,
        actor: &Actor,
        name: &str,
        devices: &[DeviceRow],
    ) -> Result<CreatedDeviceToken, AppError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::bad_request("a token name has 1 to 100 characters"));
        }
        let secret = format!("{DEVICE_TOKEN_PREFIX}{}", secrets::random_hex(32));
        let prefix: String = secret.chars().take(DEVICE_TOKEN_PREFIX.len() + 6).collect();
        let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
        let id = self
            .store
            .insert_token(name, &secrets::token_hash(&secret), &prefix, &ids, now_ms())
            .await?;
        self.audit
            .record(
                Some(actor),
                "device_token.create",
                "device_token",
                Some(id.to_string()),
                json!({ "name": name, "devices": ids }),
            )
            .await?;
        let token = self.store.token_by_id(id).await?.ok_or_else(AppError::internal)?;
        Ok(CreatedDeviceToken {
            token: token_view(token),
            secret,
        })
    }

    /// A gateway token as the caller may see it: the devices outside their grants are counted, not named.
    async fn within_grants(&self, actor: &Actor, mut view: DeviceTokenView) -> Result<DeviceTokenView, AppError> {
        if actor.scope == Scope::Everything {
            return Ok(view);
        }
        let mut shown = Vec::new();
        for name in std::mem::take(&mut view.devices) {
            let visible = match self.store.device_by_name(&name).await? {
                Some(row) => self.visible(actor, row.id).await.is_ok(),
                None => false,
            };
            if visible {
                shown.push(name);
            } else {
                view.other_devices += 1;
            }
        }
        view.devices = shown;
        Ok(view)
    }

    /// Drops cached authentications, so a revocation or rebinding takes effect on this instance at once.
    pub fn forget_authentications(&self) {
        self.auth_cache.lock_unpoisoned().clear();
    }

    /// The grant of a device (or gateway) token; 401 when it is unknown or revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Arc<TokenGrant>, AppError> {
        if !secret.starts_with(DEVICE_TOKEN_PREFIX) {
            return Err(unauthorized());
        }
        let hash = secrets::token_hash(secret);
        if let Some((at, grant)) = self.auth_cache.lock_unpoisoned().get(&hash) {
            if at.elapsed() < AUTH_CACHE_TTL {
                return grant.clone().ok_or_else(unauthorized);
            }
        }
        let grant = self.store.authenticate(&hash).await?.map(|(token_id, devices)| {
            Arc::new(TokenGrant {
                token_id,
                devices: devices.into_iter().map(|d| (d.name.clone(), d)).collect(),
            })
        });
        let mut cache = self.auth_cache.lock_unpoisoned();
        if cache.len() > 100_000 {
            cache.clear(); // bounded: a flood of bad tokens cannot grow it without limit
        }
        cache.insert(hash, (Instant::now(), grant.clone()));
        grant.ok_or_else(unauthorized)
    }

    /// A device looked up by name for the MQTT source, where the broker has authenticated the device.
    pub async fn by_name(&self, name: &str) -> Result<Option<DeviceRow>, AppError> {
        Ok(self.store.device_by_name(name).await?)
    }

    /// Notes that devices sent readings (written to the database in the background).
    pub fn mark_seen(&self, device_ids: impl IntoIterator<Item = i64>, token_id: Option<i64>, at: i64) {
        let device_ids: Vec<i64> = device_ids.into_iter().collect();
        let mut seen = self.seen.lock_unpoisoned();
        let mut unwritten = self.unwritten.lock_unpoisoned();
        for id in &device_ids {
            seen.insert(*id, at);
            unwritten.0.insert(*id, at);
        }
        if let Some(token) = token_id {
            unwritten.1.insert(token, at);
        }
    }

    /// Writes last-seen times every few seconds.
    pub fn spawn_seen_writer(self: &Arc<Self>, tasks: &crate::tasks::Tasks) {
        let this = self.clone();
        // It watches the tasks' stop, not the shutdown signal: readings acknowledged while draining count too.
        let stopping = tasks.stopping();
        tasks.supervise("device last-seen writer", move || {
            let (this, stopping) = (this.clone(), stopping.clone());
            async move {
                loop {
                    let stop = tokio::select! {
                        _ = stopping.cancelled() => true,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => false,
                    };
                    let (devices, tokens) = std::mem::take(&mut *this.unwritten.lock_unpoisoned());
                    if !devices.is_empty() || !tokens.is_empty() {
                        let devices: Vec<(i64, i64)> = devices.into_iter().collect();
                        let tokens: Vec<(i64, i64)> = tokens.into_iter().collect();
                        if let Err(err) = this.store.touch(&devices, &tokens).await {
                            tracing::warn!(error = %err.into_app_error(), "Recording device last-seen times failed.");
                        }
                    }
                    if stop {
                        return;
                    }
                }
            }
        });
    }

    pub async fn create_from_cli(&self, name: &str, asset_path: &str) -> Result<DeviceView, AppError> {
        let new = NewDevice {
            name: name.to_string(),
            asset_id: None,
            asset_path: Some(asset_path.to_string()),
            description: String::new(),
            field_map: Default::default(),
        };
        self.create(&Actor::command_line(), new).await
    }

    pub async fn create_token_from_cli(&self, device: &str, token_name: &str) -> Result<CreatedDeviceToken, AppError> {
        let row = self
            .store
            .device_by_name(device)
            .await?
            .ok_or_else(|| AppError::not_found(format!("there is no device named {device:?}")))?;
        self.create_token(
            &Actor::command_line(),
            row.id,
            NewDeviceToken {
                name: token_name.to_string(),
            },
        )
        .await
    }
}

#[async_trait::async_trait]
impl app::services::DevicesService for Devices {
    async fn list(&self, actor: &Actor) -> Result<Vec<DeviceView>, AppError> {
        actor.require(Permission::View)?;
        let mut out = Vec::new();
        for row in self.store.list_devices().await? {
            match self.view(actor, row).await {
                Ok(view) => out.push(view),
                Err(err) if err.code == ErrorKind::NotFound => {} // outside the caller's grants
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// Devices bound to one asset (for its page).
    async fn of_asset(&self, actor: &Actor, asset_id: i64) -> Result<Vec<DeviceView>, AppError> {
        self.model.get_asset(actor, asset_id).await?;
        let mut out = Vec::new();
        for row in self.store.devices_of_asset(asset_id).await? {
            out.push(self.view(actor, row).await?);
        }
        Ok(out)
    }

    async fn get(&self, actor: &Actor, id: i64) -> Result<DeviceView, AppError> {
        let row = self.visible(actor, id).await?;
        self.view(actor, row).await
    }

    async fn create(&self, actor: &Actor, new: NewDevice) -> Result<DeviceView, AppError> {
        actor.require(Permission::EditModel)?;
        validate_device_name(&new.name).map_err(|err| AppError::bad_request(err).for_field("name"))?;
        let asset_id = match (new.asset_id, new.asset_path.as_deref()) {
            (Some(id), None) => id,
            (None, Some(path)) => self.asset_at(actor, path).await?,
            _ => {
                return Err(AppError::new(
                    ErrorKind::Unprocessable,
                    "give the device's asset as either `asset_id` or `asset_path`",
                ))
            }
        };
        let mut row = DeviceRow {
            id: 0,
            name: new.name,
            asset_id,
            description: new.description,
            field_map: new.field_map,
            last_seen_at: None,
            active_tokens: 0,
        };
        self.check_field_map(actor, asset_id, &row).await?;
        row.id = self.store.insert_device(&row, now_ms()).await?;
        self.audit
            .record(
                Some(actor),
                "device.create",
                "device",
                Some(row.id.to_string()),
                json!({ "name": row.name, "asset_id": asset_id }),
            )
            .await?;
        self.view(actor, row).await
    }

    async fn update(&self, actor: &Actor, id: i64, patch: DevicePatch) -> Result<DeviceView, AppError> {
        actor.require(Permission::EditModel)?;
        let mut row = self.visible(actor, id).await?;
        if let Some(name) = patch.name.clone() {
            validate_device_name(&name).map_err(|err| AppError::bad_request(err).for_field("name"))?;
            row.name = name;
        }
        if let Some(asset_id) = patch.asset_id {
            row.asset_id = asset_id;
        }
        if let Some(path) = &patch.asset_path {
            row.asset_id = self.asset_at(actor, path).await?;
        }
        if let Some(description) = patch.description.clone() {
            row.description = description;
        }
        if let Some(map) = patch.field_map.clone() {
            row.field_map = map;
        }
        self.check_field_map(actor, row.asset_id, &row).await?;
        self.store.update_device(&row, now_ms()).await?;
        self.forget_authentications();
        self.audit
            .record(
                Some(actor),
                "device.update",
                "device",
                Some(id.to_string()),
                serde_json::to_value(&patch).unwrap_or_default(),
            )
            .await?;
        self.view(actor, row).await
    }

    async fn delete(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        actor.require(Permission::EditModel)?;
        let row = self.visible(actor, id).await?;
        self.store.delete_device(id).await?;
        self.forget_authentications();
        self.audit
            .record(
                Some(actor),
                "device.delete",
                "device",
                Some(id.to_string()),
                json!({ "name": row.name }),
            )
            .await?;
        Ok(())
    }

    async fn tokens(&self, actor: &Actor, device_id: i64) -> Result<Vec<DeviceTokenView>, AppError> {
        actor.require(Permission::EditModel)?;
        self.visible(actor, device_id).await?;
        let mut views = Vec::new();
        for row in self.store.tokens_of_device(device_id).await? {
            views.push(self.within_grants(actor, token_view(row)).await?);
        }
        Ok(views)
    }

    async fn create_token(
        &self,
        actor: &Actor,
        device_id: i64,
        new: NewDeviceToken,
    ) -> Result<CreatedDeviceToken, AppError> {
        actor.require(Permission::EditModel)?;
        let device = self.visible(actor, device_id).await?;
        self.issue_token(actor, &new.name, &[device]).await
    }

    async fn create_gateway_token(&self, actor: &Actor, new: NewGatewayToken) -> Result<CreatedDeviceToken, AppError> {
        actor.require(Permission::EditModel)?;
        if new.devices.is_empty() {
            return Err(AppError::bad_request("a gateway token needs at least one device"));
        }
        let mut devices = Vec::new();
        for name in &new.devices {
            let row = self
                .store
                .device_by_name(name)
                .await?
                .ok_or_else(|| AppError::not_found(format!("there is no device named {name:?}")))?;
            devices.push(self.visible(actor, row.id).await?);
        }
        self.issue_token(actor, &new.name, &devices).await
    }

    async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<(), AppError> {
        actor.require(Permission::EditModel)?;
        let token = self
            .store
            .token_by_id(token_id)
            .await?
            .ok_or_else(|| AppError::not_found("there is no such device token"))?;
        // Every device of the token must be within the caller's grants.
        for name in &token.devices {
            if let Some(row) = self.store.device_by_name(name).await? {
                self.visible(actor, row.id)
                    .await
                    .map_err(|_| AppError::not_found("there is no such device token"))?;
            }
        }
        self.store.revoke_token(token_id, now_ms()).await?;
        self.forget_authentications();
        self.audit
            .record(
                Some(actor),
                "device_token.revoke",
                "device_token",
                Some(token_id.to_string()),
                json!({}),
            )
            .await?;
        Ok(())
    }
}

//! The alarms service: lists, details, acknowledgement, shelving, service state, comments, subtree roll-ups,
//! rules of assets and templates, and webhooks. Every method takes the caller's [`Actor`]: alarms of assets
//! outside the caller's grants do not exist for them (404), as the assets themselves do not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::alarms::{
    AckRequest, AlarmComment, AlarmCounts, AlarmDetail, AlarmEventKind, AlarmFilter, AlarmQuery, AlarmView, AssetRule,
    CreatedWebhook, DeliveryView, EffectiveRule, NewComment, NewWebhook, ServiceRequest, ShelveRequest, WebhookView,
    MAX_LIST, MAX_SHELVE_MINUTES,
};
use app::auth::{Actor, Permission};
use app::error::{AppError, ErrorKind};
use app::services::ModelService;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::engine::{alarm_view, AlarmEngine};
use super::store::{AlarmRow, AlarmStore, ListFilter, WebhookRow};
use crate::assets::{path_of, Model};
use crate::auth::secrets::random_hex;
use crate::auth::AuditLog;
use crate::locks::MutexExt;
use crate::metadata::now_ms;

/// Most occurrences one list returns.
const DEFAULT_LIST: u32 = 500;

#[derive(Clone)]
struct Lineage {
    ids: Vec<i64>,
    path: String,
}

impl Lineage {
    /// An alarm on this asset as the caller is shown it, or `None` outside their grants: ancestors outside the
    /// grants are hidden in its path and in its message (which may name the path).
    fn show(&self, actor: &Actor, mut alarm: AlarmView) -> Option<AlarmView> {
        if !actor.scope.includes(&self.ids) {
            return None;
        }
        let shown = actor.scope.shown_path(&self.ids, &self.path);
        if shown != self.path {
            alarm.message = alarm.message.replace(&self.path, &shown);
        }
        alarm.asset_path = shown;
        Some(alarm)
    }
}

pub struct Alarms {
    store: Arc<dyn AlarmStore>,
    engine: Arc<AlarmEngine>,
    model: Arc<Model>,
    audit: AuditLog,
    /// Asset lineages by id, for grant checks and paths; dropped whenever the model changes.
    lineages: Mutex<(u64, HashMap<i64, Option<Lineage>>)>,
    /// Ends the live feeds at shutdown (an open feed would otherwise hold the server open).
    shutdown: CancellationToken,
}

fn no_alarm() -> AppError {
    AppError::not_found("there is no such alarm")
}

impl Alarms {
    pub fn new(engine: Arc<AlarmEngine>, model: Arc<Model>, audit: AuditLog, shutdown: CancellationToken) -> Alarms {
        Alarms {
            store: engine.store().clone(),
            engine,
            model,
            audit,
            lineages: Mutex::new((u64::MAX, HashMap::new())),
            shutdown,
        }
    }

    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A subtree named by asset id or path, as the caller may see it.
    pub async fn subtree_id(&self, actor: &Actor, text: &str) -> Result<i64, AppError> {
        if text.starts_with('/') {
            return Ok(self.model.asset_by_path(actor, text).await?.summary.id);
        }
        let id = text
            .parse::<i64>()
            .map_err(|_| AppError::bad_request("subtree is an asset id or a path starting with '/'"))?;
        Ok(self.model.get_asset(actor, id).await?.summary.id)
    }

    pub fn engine(&self) -> &Arc<AlarmEngine> {
        &self.engine
    }

    async fn lineage(&self, asset_id: i64) -> Result<Option<Lineage>, AppError> {
        let generation = self.model.generation();
        {
            let mut cache = self.lineages.lock_unpoisoned();
            if cache.0 != generation {
                *cache = (generation, HashMap::new());
            }
            if let Some(found) = cache.1.get(&asset_id) {
                return Ok(found.clone());
            }
        }
        let lineage = self.model.lineage(asset_id).await?;
        let found = (!lineage.is_empty()).then(|| Lineage {
            ids: lineage.iter().map(|(id, _)| *id).collect(),
            path: path_of(&lineage),
        });
        let mut cache = self.lineages.lock_unpoisoned();
        if cache.0 == generation {
            if cache.1.len() > 200_000 {
                cache.1.clear();
            }
            cache.1.insert(asset_id, found.clone());
        }
        Ok(found)
    }

    /// The occurrence as the caller may see it: 404 outside their grants.
    async fn visible(&self, actor: &Actor, row: AlarmRow) -> Result<AlarmView, AppError> {
        match self.lineage(row.asset_id).await? {
            Some(lineage) => lineage.show(actor, alarm_view(row, String::new())).ok_or_else(no_alarm),
            None => Err(no_alarm()),
        }
    }

    async fn row(&self, actor: &Actor, id: i64) -> Result<(AlarmRow, AlarmView), AppError> {
        actor.require(Permission::View)?;
        let row = self
            .store
            .occurrence(id)
            .await
            .map_err(|e| e.into_app_error())?
            .ok_or_else(no_alarm)?;
        let view = self.visible(actor, row.clone()).await?;
        Ok((row, view))
    }

    pub async fn query(&self, actor: &Actor, query: AlarmQuery) -> Result<Vec<AlarmView>, AppError> {
        actor.require(Permission::View)?;
        let limit = query.limit.unwrap_or(DEFAULT_LIST);
        if limit == 0 || limit > MAX_LIST {
            return Err(AppError::bad_request(format!("limit is 1 to {MAX_LIST}")));
        }
        for (ts, name) in [(query.from, "from"), (query.to, "to")] {
            if let Some(ts) = ts {
                app::timeseries::check_instant(ts, name).map_err(AppError::bad_request)?;
            }
        }
        if let Some(subtree) = query.subtree {
            self.model.get_asset(actor, subtree).await?;
        }
        let rows = self
            .store
            .list(&ListFilter {
                state: query.state,
                severities: query.severities.clone(),
                from: query.from,
                to: query.to,
                now: now_ms(),
                // Grants and the subtree are applied here, after the query: ask for more than will be shown.
                cap: i64::from(limit) * 4 + 100,
            })
            .await
            .map_err(|e| e.into_app_error())?;
        let mut out = Vec::new();
        for row in rows {
            let Some(lineage) = self.lineage(row.asset_id).await? else {
                continue;
            };
            if query.subtree.is_some_and(|s| !lineage.ids.contains(&s)) {
                continue;
            }
            let Some(alarm) = lineage.show(actor, alarm_view(row, String::new())) else {
                continue;
            };
            out.push(alarm);
            if out.len() == limit as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Occurrences of one attribute of an asset the caller may see that overlap `[from, to)`, oldest first.
    pub async fn occurrences_of(
        &self,
        actor: &Actor,
        asset_id: i64,
        attribute: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<AlarmView>, AppError> {
        self.model.get_asset(actor, asset_id).await?;
        let Some(lineage) = self.lineage(asset_id).await? else {
            return Ok(Vec::new());
        };
        let rows = self
            .store
            .occurrences_of(asset_id, attribute, from, to, MAX_LIST.into())
            .await
            .map_err(|e| e.into_app_error())?;
        Ok(rows
            .into_iter()
            .filter_map(|row| lineage.show(actor, alarm_view(row, String::new())))
            .collect())
    }

    /// Calls `visit` with the lineage (asset ids, root first) of every open alarm the caller may see.
    async fn each_open(
        &self,
        actor: &Actor,
        mut visit: impl FnMut(&[i64], app::alarms::Severity, bool, bool),
    ) -> Result<(), AppError> {
        for (asset_id, severity, active, acknowledged) in
            self.store.open_summary().await.map_err(|e| e.into_app_error())?
        {
            let Some(lineage) = self.lineage(asset_id).await? else {
                continue;
            };
            if actor.scope.includes(&lineage.ids) {
                visit(&lineage.ids, severity, active, acknowledged);
            }
        }
        Ok(())
    }

    /// An alarm of the live feed as the caller is shown it, or `None` when they may not see it.
    pub async fn as_seen_by(&self, actor: &Actor, alarm: AlarmView) -> Option<AlarmView> {
        match self.lineage(alarm.asset_id).await {
            Ok(Some(lineage)) => lineage.show(actor, alarm),
            _ => None,
        }
    }
}

fn check_comment(text: &str) -> Result<(), AppError> {
    if text.is_empty() || text.chars().count() > 2_000 {
        return Err(AppError::bad_request("a comment is 1 to 2,000 characters"));
    }
    Ok(())
}

/// A reason recorded in the audit log: up to 2,000 characters (empty is no reason).
fn check_reason(text: &str) -> Result<(), AppError> {
    if text.chars().count() > 2_000 {
        return Err(AppError::bad_request("a reason is at most 2,000 characters"));
    }
    Ok(())
}

fn webhook_view(row: WebhookRow) -> WebhookView {
    WebhookView {
        id: row.id,
        name: row.name,
        url: row.url,
        min_severity: row.min_severity,
        created_at: row.created_at,
    }
}

/// What the alarm pages' server functions reach.
#[async_trait::async_trait]
impl app::services::AlarmsService for Alarms {
    /// Occurrences matching a filter as people write it: parsed here, its subtree (an id or a path) resolved
    /// within the caller's grants.
    async fn list(&self, actor: &Actor, filter: AlarmFilter) -> Result<Vec<AlarmView>, AppError> {
        let (mut query, subtree) = filter.parse()?;
        if let Some(subtree) = subtree {
            query.subtree = Some(self.subtree_id(actor, &subtree).await?);
        }
        self.query(actor, query).await
    }

    async fn get(&self, actor: &Actor, id: i64) -> Result<AlarmDetail, AppError> {
        let (_, alarm) = self.row(actor, id).await?;
        let comments = self.store.comments(id).await.map_err(|e| e.into_app_error())?;
        Ok(AlarmDetail { alarm, comments })
    }

    /// Acknowledges occurrences (operators and above); already acknowledged ones are left as they are.
    async fn acknowledge(&self, actor: &Actor, request: AckRequest) -> Result<Vec<AlarmView>, AppError> {
        actor.require(Permission::Operate)?;
        if request.ids.is_empty() || request.ids.len() > MAX_LIST as usize {
            return Err(AppError::bad_request(format!("name 1 to {MAX_LIST} alarms in ids")));
        }
        let comment = request.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if let Some(comment) = comment {
            check_comment(comment)?;
        }
        // Check them all before changing any.
        for id in &request.ids {
            self.row(actor, *id).await?;
        }
        let now = now_ms();
        let mut out = Vec::new();
        for id in request.ids {
            let changed = self
                .store
                .acknowledge(id, now, &actor.username)
                .await
                .map_err(|e| e.into_app_error())?;
            if changed {
                if let Some(comment) = comment {
                    self.store
                        .add_comment(id, &actor.username, now, comment)
                        .await
                        .map_err(|e| e.into_app_error())?;
                }
                self.audit
                    .record(
                        Some(actor),
                        "alarm.acknowledge",
                        "alarm",
                        Some(id.to_string()),
                        json!({ "comment": comment }),
                    )
                    .await?;
                let (row, _) = self.row(actor, id).await?;
                let suppressed = row.out_of_service || row.shelved_until.is_some_and(|u| u > now);
                self.engine.announce(AlarmEventKind::Acknowledged, id, suppressed).await;
            }
            out.push(self.row(actor, id).await?.1);
        }
        Ok(out)
    }

    /// Shelves the occurrence's alarm point for a while (operators), or unshelves it with 0 minutes.
    async fn shelve(&self, actor: &Actor, id: i64, request: ShelveRequest) -> Result<AlarmView, AppError> {
        actor.require(Permission::Operate)?;
        if request.minutes > MAX_SHELVE_MINUTES {
            return Err(AppError::bad_request(format!(
                "an alarm is shelved for at most {MAX_SHELVE_MINUTES} minutes (7 days)"
            )));
        }
        // Everything is checked before anything is written: a refused request changes nothing.
        let reason = request.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if let Some(reason) = reason {
            check_comment(reason)?;
        }
        let (row, _) = self.row(actor, id).await?;
        let until = (request.minutes > 0).then(|| now_ms() + i64::from(request.minutes) * 60_000);
        self.engine
            .set_shelved(&row, until, until.map(|_| actor.username.clone()))
            .await
            .map_err(|e| e.into_app_error())?;
        if let Some(reason) = reason {
            let text = format!("Shelved for {} min: {reason}", request.minutes);
            self.store
                .add_comment(id, &actor.username, now_ms(), &text)
                .await
                .map_err(|e| e.into_app_error())?;
        }
        self.audit
            .record(
                Some(actor),
                if until.is_some() {
                    "alarm.shelve"
                } else {
                    "alarm.unshelve"
                },
                "alarm",
                Some(id.to_string()),
                json!({ "minutes": request.minutes, "reason": request.reason }),
            )
            .await?;
        let kind = if until.is_some() {
            AlarmEventKind::Shelved
        } else {
            AlarmEventKind::Unshelved
        };
        // Announced although shelved: browsers must learn that the alarm left (or rejoined) the list.
        self.engine.announce(kind, id, false).await;
        Ok(self.row(actor, id).await?.1)
    }

    /// Takes the occurrence's alarm point out of service (engineers), or returns it to service.
    async fn set_service(&self, actor: &Actor, id: i64, request: ServiceRequest) -> Result<AlarmView, AppError> {
        actor.require(Permission::EditModel)?;
        if let Some(reason) = request.reason.as_deref() {
            check_reason(reason)?;
        }
        let (row, _) = self.row(actor, id).await?;
        self.engine
            .set_out_of_service(&row, !request.in_service)
            .await
            .map_err(|e| e.into_app_error())?;
        self.audit
            .record(
                Some(actor),
                if request.in_service {
                    "alarm.in_service"
                } else {
                    "alarm.out_of_service"
                },
                "alarm",
                Some(id.to_string()),
                json!({ "reason": request.reason }),
            )
            .await?;
        let kind = if request.in_service {
            AlarmEventKind::InService
        } else {
            AlarmEventKind::OutOfService
        };
        self.engine.announce(kind, id, false).await;
        Ok(self.row(actor, id).await?.1)
    }

    async fn comment(&self, actor: &Actor, id: i64, comment: NewComment) -> Result<AlarmComment, AppError> {
        actor.require(Permission::Operate)?;
        let text = comment.text.trim();
        check_comment(text)?;
        self.row(actor, id).await?;
        let at = now_ms();
        let comment_id = self
            .store
            .add_comment(id, &actor.username, at, text)
            .await
            .map_err(|e| e.into_app_error())?;
        self.audit
            .record(
                Some(actor),
                "alarm.comment",
                "alarm",
                Some(id.to_string()),
                json!({ "text": text }),
            )
            .await?;
        Ok(AlarmComment {
            id: comment_id,
            author: actor.username.clone(),
            at,
            text: text.to_string(),
        })
    }

    /// Active alarms by severity in the subtree of `asset` (or everything the caller sees), and how many open
    /// ones await acknowledgement.
    async fn counts(&self, actor: &Actor, asset: Option<i64>) -> Result<AlarmCounts, AppError> {
        actor.require(Permission::View)?;
        if let Some(asset) = asset {
            self.model.get_asset(actor, asset).await?;
        }
        let mut counts = AlarmCounts::default();
        self.each_open(actor, |lineage, severity, active, acknowledged| {
            if asset.is_none_or(|a| lineage.contains(&a)) {
                counts.count(severity, active, acknowledged);
            }
        })
        .await?;
        Ok(counts)
    }

    /// The counts of several subtrees at once (an explorer level), from one pass over the open alarms.
    /// Only alarms the caller may see are counted.
    async fn counts_of(&self, actor: &Actor, assets: &[i64]) -> Result<Vec<(i64, AlarmCounts)>, AppError> {
        actor.require(Permission::View)?;
        let mut counts: Vec<(i64, AlarmCounts)> = assets.iter().map(|&id| (id, AlarmCounts::default())).collect();
        self.each_open(actor, |lineage, severity, active, acknowledged| {
            for (id, counts) in counts.iter_mut() {
                if lineage.contains(id) {
                    counts.count(severity, active, acknowledged);
                }
            }
        })
        .await?;
        Ok(counts)
    }

    /// The rules that apply to an asset: its template's and its own.
    async fn rules_of_asset(&self, actor: &Actor, asset_id: i64) -> Result<Vec<EffectiveRule>, AppError> {
        let asset = self.model.get_asset(actor, asset_id).await?;
        let own = self.store.asset_rules(asset_id).await.map_err(|e| e.into_app_error())?;
        let mut out = Vec::new();
        for attribute in &asset.attributes {
            for rule in &attribute.attribute.alarms {
                if own
                    .iter()
                    .any(|o| o.attribute == attribute.attribute.name && o.rule.name == rule.name)
                {
                    continue;
                }
                out.push(EffectiveRule {
                    attribute: attribute.attribute.name.clone(),
                    rule: rule.clone(),
                    template: Some(attribute.defined_in.clone()),
                });
            }
        }
        out.extend(own.into_iter().map(|o| EffectiveRule {
            attribute: o.attribute,
            rule: o.rule,
            template: None,
        }));
        Ok(out)
    }

    /// Replaces an asset's own rules (engineers); each must fit its attribute.
    async fn set_asset_rules(
        &self,
        actor: &Actor,
        asset_id: i64,
        rules: Vec<AssetRule>,
    ) -> Result<Vec<EffectiveRule>, AppError> {
        actor.require(Permission::EditModel)?;
        let asset = self.model.get_asset(actor, asset_id).await?;
        let mut by_attribute: HashMap<&str, Vec<app::alarms::AlarmRule>> = HashMap::new();
        for rule in &rules {
            by_attribute
                .entry(rule.attribute.as_str())
                .or_default()
                .push(rule.rule.clone());
        }
        for (name, attribute_rules) in &by_attribute {
            let attribute = asset
                .attributes
                .iter()
                .find(|a| a.attribute.name == *name)
                .ok_or_else(|| {
                    AppError::new(ErrorKind::Unprocessable, format!("the asset has no attribute {name:?}"))
                })?;
            attribute.attribute.check_rules(attribute_rules)?;
        }
        let before = self.store.asset_rules(asset_id).await.map_err(|e| e.into_app_error())?;
        self.store
            .set_asset_rules(asset_id, &rules, now_ms())
            .await
            .map_err(|e| e.into_app_error())?;
        self.engine.rules_changed();
        self.audit
            .record(
                Some(actor),
                "alarm_rules.update",
                "asset",
                Some(asset_id.to_string()),
                json!({ "from": before, "to": rules }),
            )
            .await?;
        self.rules_of_asset(actor, asset_id).await
    }

    /// The rules a template declares or inherits, attribute by attribute.
    async fn rules_of_template(&self, actor: &Actor, template_id: i64) -> Result<Vec<EffectiveRule>, AppError> {
        let template = self.model.get_template(actor, template_id).await?;
        Ok(template
            .effective_attributes
            .iter()
            .flat_map(|a| {
                a.attribute.alarms.iter().map(|rule| EffectiveRule {
                    attribute: a.attribute.name.clone(),
                    rule: rule.clone(),
                    template: Some(a.defined_in.clone()),
                })
            })
            .collect())
    }

    async fn webhooks(&self, actor: &Actor) -> Result<Vec<WebhookView>, AppError> {
        actor.require(Permission::Administer)?;
        let rows = self.store.webhooks().await.map_err(|e| e.into_app_error())?;
        Ok(rows.into_iter().map(webhook_view).collect())
    }

    async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook, AppError> {
        actor.require(Permission::Administer)?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::bad_request("a webhook's name is 1 to 100 characters"));
        }
        let url = url::Url::parse(&new.url)
            .map_err(|e| AppError::bad_request(format!("the webhook URL is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(AppError::bad_request(
                "a webhook URL is http:// or https:// with a host",
            ));
        }
        let mut row = WebhookRow {
            id: 0,
            name: name.to_string(),
            url: url.to_string(),
            secret: random_hex(32),
            min_severity: new.min_severity,
            created_at: now_ms(),
        };
        row.id = self.store.insert_webhook(&row).await.map_err(|e| e.into_app_error())?;
        self.engine.notifier().webhooks_changed();
        self.audit
            .record(
                Some(actor),
                "webhook.create",
                "webhook",
                Some(row.id.to_string()),
                json!({ "name": row.name, "url": url.origin().ascii_serialization() }),
            )
            .await?;
        let secret = row.secret.clone();
        Ok(CreatedWebhook {
            webhook: webhook_view(row),
            secret,
        })
    }

    async fn delete_webhook(&self, actor: &Actor, id: i64) -> Result<(), AppError> {
        actor.require(Permission::Administer)?;
        if !self.store.delete_webhook(id).await.map_err(|e| e.into_app_error())? {
            return Err(AppError::not_found("there is no such webhook"));
        }
        self.engine.notifier().webhooks_changed();
        self.audit
            .record(
                Some(actor),
                "webhook.delete",
                "webhook",
                Some(id.to_string()),
                json!({}),
            )
            .await
    }

    /// The delivery log of a webhook, newest first.
    async fn deliveries(&self, actor: &Actor, id: i64) -> Result<Vec<DeliveryView>, AppError> {
        actor.require(Permission::Administer)?;
        let rows = self.store.deliveries(id, 500).await.map_err(|e| e.into_app_error())?;
        Ok(rows
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                alarm_id: d.alarm_id,
                kind: serde_json::from_value(json!(d.kind)).unwrap_or(AlarmEventKind::Raised),
                status: d.status,
                attempts: u32::try_from(d.attempts).unwrap_or(u32::MAX),
                last_error: d.last_error,
                created_at: d.created_at,
                delivered_at: d.delivered_at,
            })
            .collect())
    }
}

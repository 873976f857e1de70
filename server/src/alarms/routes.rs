//! `/api/v1/alarms` (lists, details, acknowledgement, shelving, service state, comments, the live feed), rules
//! under the templates and assets they belong to, and `/api/v1/webhooks`: thin handlers over [`Alarms`].

use std::convert::Infallible;
use std::sync::Arc;

use app::alarms::{
    AckComment, AckRequest, AlarmFilter, AssetRules, NewComment, NewWebhook, ServiceRequest, ShelveRequest,
};
use app::auth::Permission;
use app::services::AlarmsService;
use axum::{
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
    routing::{delete, get, post, put},
    Json,
};
use futures::Stream;
use http::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::service::Alarms;
use crate::api::{Access, Answer, Caller, Endpoint, IdPath, JsonBody, QueryParams};
use crate::auth::LiveCaller;
use crate::error::ApiError;

type AlarmsState = Arc<Alarms>;
type Result<T> = std::result::Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint<AlarmsState>> {
    use Access::Requires;
    use Permission::{Administer, EditModel, Operate, View};
    vec![
        Endpoint::new(Method::GET, "/alarms", Requires(View), get(list))
            .answers_list::<app::alarms::AlarmView>("alarms"),
        Endpoint::new(Method::GET, "/alarms/counts", Requires(View), get(counts))
            .answers::<app::alarms::AlarmCounts>("counts"),
        Endpoint::new(Method::GET, "/alarms/events", Requires(View), get(events))
            .answer(Answer::Media("text/event-stream")),
        Endpoint::new(Method::POST, "/alarms/ack", Requires(Operate), post(ack_many))
            .body::<AckRequest>()
            .answers_list::<app::alarms::AlarmView>("alarms"),
        Endpoint::new(Method::GET, "/alarms/{id}", Requires(View), get(show))
            .answers_json::<app::alarms::AlarmDetail>(),
        Endpoint::new(Method::POST, "/alarms/{id}/ack", Requires(Operate), post(ack_one))
            .body::<AckComment>()
            .answers::<app::alarms::AlarmView>("alarm"),
        Endpoint::new(Method::POST, "/alarms/{id}/shelve", Requires(Operate), post(shelve))
            .body::<ShelveRequest>()
            .answers::<app::alarms::AlarmView>("alarm"),
        Endpoint::new(Method::POST, "/alarms/{id}/service", Requires(EditModel), post(service))
            .body::<ServiceRequest>()
            .answers::<app::alarms::AlarmView>("alarm"),
        Endpoint::new(Method::POST, "/alarms/{id}/comments", Requires(Operate), post(comment))
            .body::<NewComment>()
            .answers::<app::alarms::AlarmComment>("comment"),
        Endpoint::new(Method::GET, "/assets/{id}/rules", Requires(View), get(asset_rules))
            .answers_list::<app::alarms::EffectiveRule>("rules"),
        Endpoint::new(
            Method::PUT,
            "/assets/{id}/rules",
            Requires(EditModel),
            put(set_asset_rules),
        )
        .body::<AssetRules>()
        .answers_list::<app::alarms::EffectiveRule>("rules"),
        Endpoint::new(
            Method::GET,
            "/assets/{id}/alarm-counts",
            Requires(View),
            get(asset_counts),
        )
        .answers::<app::alarms::AlarmCounts>("counts"),
        Endpoint::new(
            Method::GET,
            "/templates/{id}/rules",
            Requires(View),
            get(template_rules),
        )
        .answers_list::<app::alarms::EffectiveRule>("rules"),
        Endpoint::new(Method::GET, "/webhooks", Requires(Administer), get(webhooks))
            .answers_list::<app::alarms::WebhookView>("webhooks"),
        Endpoint::new(Method::POST, "/webhooks", Requires(Administer), post(create_webhook))
            .body::<NewWebhook>()
            .answers_json::<app::alarms::CreatedWebhook>(),
        Endpoint::new(
            Method::DELETE,
            "/webhooks/{id}",
            Requires(Administer),
            delete(delete_webhook),
        )
        .answer(Answer::Nothing),
        Endpoint::new(
            Method::GET,
            "/webhooks/{id}/deliveries",
            Requires(Administer),
            get(deliveries),
        )
        .answers_list::<app::alarms::DeliveryView>("deliveries"),
    ]
}

pub fn router(alarms: AlarmsState) -> axum::Router {
    crate::api::router_from(endpoints(), alarms)
}

async fn list(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    QueryParams(filter): QueryParams<AlarmFilter>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "alarms": alarms.list(&actor, filter).await? })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountParams {
    asset: Option<i64>,
}

async fn counts(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    QueryParams(params): QueryParams<CountParams>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "counts": alarms.counts(&actor, params.asset).await? })))
}

async fn asset_counts(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "counts": alarms.counts(&actor, Some(id)).await? })))
}

/// Server-sent events: one `alarm` event per notification the caller may see, until they leave or Gantry stops.
async fn events(
    State(alarms): State<AlarmsState>,
    caller: LiveCaller,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    let actor = caller.actor.clone();
    let receiver = alarms.engine().notifier().subscribe();
    let shutdown = alarms.shutdown();
    let feed = futures::stream::unfold((receiver, alarms, actor), |(mut receiver, alarms, actor)| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(mut event) => {
                    let Some(alarm) = alarms.as_seen_by(&actor, event.alarm).await else {
                        continue;
                    };
                    event.alarm = alarm;
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    Event::default().event("alarm").id(event.id).data(data)
                }
                // The browser refetches when told it missed some.
                Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (receiver, alarms, actor)));
        }
    });
    let feed = caller.guard(futures::StreamExt::take_until(feed, shutdown.cancelled_owned()));
    Sse::new(feed).keep_alive(KeepAlive::default())
}

async fn show(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<app::alarms::AlarmDetail>> {
    Ok(Json(alarms.get(&actor, id).await?))
}

async fn ack_many(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    JsonBody(request): JsonBody<AckRequest>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "alarms": alarms.acknowledge(&actor, request).await? })))
}

/// The body is optional here: `{"comment": "…"}` or nothing.
async fn ack_one(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Option<AckComment>>(&body)
            .map_err(|e| app::error::AppError::bad_request(format!("the body is not a valid acknowledgement: {e}")))?
    }
    .unwrap_or_default();
    let acknowledged = alarms
        .acknowledge(
            &actor,
            AckRequest {
                ids: vec![id],
                comment: request.comment,
            },
        )
        .await?;
    Ok(Json(json!({ "alarm": acknowledged.into_iter().next() })))
}

async fn shelve(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<ShelveRequest>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "alarm": alarms.shelve(&actor, id, request).await? })))
}

async fn service(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<ServiceRequest>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "alarm": alarms.set_service(&actor, id, request).await? })))
}

async fn comment(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<NewComment>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(json!({ "comment": alarms.comment(&actor, id, request).await? })),
    ))
}

async fn asset_rules(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "rules": alarms.rules_of_asset(&actor, id).await? })))
}

async fn set_asset_rules(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<AssetRules>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "rules": alarms.set_asset_rules(&actor, id, request.rules).await? }),
    ))
}

async fn template_rules(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "rules": alarms.rules_of_template(&actor, id).await? })))
}

async fn webhooks(State(alarms): State<AlarmsState>, Caller(actor): Caller) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "webhooks": alarms.webhooks(&actor).await? })))
}

async fn create_webhook(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    JsonBody(new): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<app::alarms::CreatedWebhook>)> {
    Ok((StatusCode::CREATED, Json(alarms.create_webhook(&actor, new).await?)))
}

async fn delete_webhook(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    alarms.delete_webhook(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    State(alarms): State<AlarmsState>,
    Caller(actor): Caller,
    IdPath(id): IdPath,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "deliveries": alarms.deliveries(&actor, id).await? })))
}

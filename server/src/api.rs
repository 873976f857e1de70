//! The REST API's shared parts: the [`Endpoint`] table each area declares (method, path, who may call it, handler),
//! from which both its router and the role × route test are built, and the [`Caller`] extractor.

use app::auth::{Actor, Permission};
use app::error::{AppError, ErrorKind};
use axum::{extract::FromRequestParts, routing::MethodRouter, Router};
use http::{request::Parts, Method};

use crate::error::ApiError;

/// Who may call an endpoint (as declared; the service enforces it through [`Actor::require`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in itself, the setup check).
    Public,
    /// A signed-in caller whose role allows the permission; objects of other users answer 404 unless admin.
    Requires(Permission),
}

/// One route of the REST API, relative to `/api/v1`.
pub struct Endpoint<S> {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<S>,
    pub body: Option<BodySchema>,
    pub answer: Option<Answer>,
}

/// What an endpoint answers on success, for the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `{ "key": T }`, or `{ "key": [T] }` when `list`.
    Wrapped {
        key: &'static str,
        list: bool,
        schema: BodySchema,
    },
    /// `T` itself.
    Json(BodySchema),
    /// No body (204).
    Nothing,
    /// A body that is not JSON, of this media type.
    Media(&'static str),
}

/// The JSON body an endpoint takes, for the OpenAPI document.
#[derive(Clone)]
pub struct BodySchema {
    pub name: String,
    pub collect: fn(&mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>),
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for BodySchema {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for BodySchema {}

/// What tests and documentation see of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub body: Option<BodySchema>,
    pub answer: Option<Answer>,
}

impl BodySchema {
    fn of<T: utoipa::ToSchema>() -> Self {
        BodySchema {
            name: T::name().into_owned(),
            collect: crate::openapi::collect_schemas::<T>,
        }
    }
}

impl<S> Endpoint<S> {
    pub fn new(method: Method, path: &'static str, access: Access, handler: MethodRouter<S>) -> Self {
        Endpoint {
            method,
            path,
            access,
            handler,
            body: None,
            answer: None,
        }
    }

    /// Declares the JSON body the endpoint takes.
    pub fn body<T: utoipa::ToSchema>(mut self) -> Self {
        self.body = Some(BodySchema::of::<T>());
        self
    }

    /// Declares the answer `{ "key": T }`.
    pub fn answers<T: utoipa::ToSchema>(self, key: &'static str) -> Self {
        self.answer(Answer::Wrapped {
            key,
            list: false,
            schema: BodySchema::of::<T>(),
        })
    }

    /// Declares the answer `{ "key": [T, …] }`.
    pub fn answers_list<T: utoipa::ToSchema>(self, key: &'static str) -> Self {
        self.answer(Answer::Wrapped {
            key,
            list: true,
            schema: BodySchema::of::<T>(),
        })
    }

    /// Declares the answer `T`.
    pub fn answers_json<T: utoipa::ToSchema>(self) -> Self {
        self.answer(Answer::Json(BodySchema::of::<T>()))
    }

    pub fn answer(mut self, answer: Answer) -> Self {
        self.answer = Some(answer);
        self
    }

    pub fn spec(&self) -> EndpointSpec {
        EndpointSpec {
            method: self.method.clone(),
            path: self.path,
            access: self.access,
            body: self.body.clone(),
            answer: self.answer.clone(),
        }
    }
}

/// Builds an area's router from its endpoint table.
pub fn router_from<S: Clone + Send + Sync + 'static>(endpoints: Vec<Endpoint<S>>, state: S) -> Router {
    endpoints
        .into_iter()
        .fold(Router::new(), |router, endpoint| {
            router.route(endpoint.path, endpoint.handler)
        })
        .with_state(state)
}

/// Every endpoint of `/api/v1`, from every area, and the document itself.
pub fn endpoint_specs() -> Vec<EndpointSpec> {
    let auth = crate::auth::endpoints().iter().map(Endpoint::spec).collect::<Vec<_>>();
    let assets = crate::assets::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let devices = crate::devices::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let timeseries = crate::timeseries::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let alarms = crate::alarms::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let charts = crate::charts::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let search = crate::search::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let reports = crate::reports::endpoints()
        .iter()
        .map(Endpoint::spec)
        .collect::<Vec<_>>();
    let docs = endpoints().iter().map(Endpoint::spec).collect::<Vec<_>>();
    auth.into_iter()
        .chain(assets)
        .chain(devices)
        .chain(timeseries)
        .chain(alarms)
        .chain(charts)
        .chain(search)
        .chain(reports)
        .chain(docs)
        .collect()
}

/// `GET /api/v1/openapi.json`.
fn endpoints() -> Vec<Endpoint<()>> {
    vec![Endpoint::new(
        Method::GET,
        "/openapi.json",
        Access::Public,
        axum::routing::get(openapi_json),
    )
    .answer(Answer::Media("application/json"))]
}

async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document(&endpoint_specs()))
}

/// The router of the API's own documentation.
pub fn docs_router() -> Router {
    router_from(endpoints(), ())
}

/// The authenticated caller; 401 with the JSON error body when there is none.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| AppError::new(ErrorKind::Unauthorized, "please sign in or send an API token").into())
    }
}

/// `Json<T>` whose rejections (malformed JSON, wrong types, missing content type, too large) answer the JSON
/// error body like every other error. A number written with a zero fraction (`3.0`) is read as an integer where
/// one is expected: the OpenAPI document's JSON Schema counts it as one, so refusing it would refuse a request
/// the document allows.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(AppError::bad_request("Expected request with `Content-Type: application/json`").into());
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let kind = if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorKind::PayloadTooLarge
                } else {
                    ErrorKind::BadRequest
                };
                AppError::new(kind, rejection.body_text())
            })?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                // Only a body refused as it is pays for the second reading; its error (which names the field
                // at fault, though its column is that of the rewritten body) then wins.
                let rewritten = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .filter(|_| matches!(rejection, axum::extract::rejection::JsonRejection::JsonDataError(_)))
                    .and_then(|mut value| integral_floats_as_integers(&mut value).then(|| value.to_string()));
                match rewritten.map(|body| axum::Json::<T>::from_bytes(body.as_bytes())) {
                    Some(Ok(axum::Json(value))) => Ok(JsonBody(value)),
                    Some(Err(again)) => Err(AppError::bad_request(again.body_text()).into()),
                    None => Err(AppError::bad_request(rejection.body_text()).into()),
                }
            }
        }
    }
}

/// `application/json` or any `application/…+json`, as axum's `Json` accepts.
fn json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Rewrites every float with a zero fraction that an `f64` holds exactly (below 2^53) as an integer; says whether
/// it changed anything.
fn integral_floats_as_integers(value: &mut serde_json::Value) -> bool {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() == 0.0 && float.abs() < EXACT {
                *value = serde_json::Value::from(float as i64);
                true
            } else {
                false
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| integral_floats_as_integers(item) | changed),
        serde_json::Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, item| integral_floats_as_integers(item) | changed),
        _ => false,
    }
}

/// A numeric `{id}` path segment; anything else answers 400 with the JSON error body.
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| IdPath(id))
            .map_err(|rejection| AppError::bad_request(rejection.body_text()).into())
    }
}

/// The version a write was based on, from `If-Match` (`"7"`, `W/"7"` or `7`: the `version` of the object as read);
/// absent, the write is unconditional. A stale one makes the write answer 409 with the current version.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        value
            .to_str()
            .ok()
            .map(|text| text.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|text| text.parse::<i64>().ok())
            .map(|version| IfMatch(Some(version)))
            .ok_or_else(|| {
                AppError::bad_request("If-Match must be the version the change is based on, such as \"7\"").into()
            })
    }
}

/// An `{id}/…/{name}` path: a numeric id and a name (an attribute's, say); a bad id answers 400.
pub struct IdNamePath(pub i64, pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdNamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<(i64, String)>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path((id, name))| IdNamePath(id, name))
            .map_err(|rejection| AppError::bad_request(rejection.body_text()).into())
    }
}

/// Query parameters; bad ones answer 400 with the JSON error body.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| AppError::bad_request(rejection.body_text()).into())
    }
}

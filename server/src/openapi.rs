//! The OpenAPI document of `/api/v1`, generated from the same endpoint tables that build the routers (so it
//! cannot list a route that does not exist, or miss one that does), with request schemas derived from the shared
//! types and the constraints the services enforce ([`CONSTRAINTS`]). Served at `/api/v1/openapi.json`.
//!
//! The contract: a request the document allows is refused only for what a schema cannot say — 404 for a
//! reference to something that is not there (or outside one's grants), 409 for a conflict with what exists, 422
//! for a rule across fields or on the current state (limits out of order, an expiry in the past, a panel beyond
//! the grid's edge), 429/503 for load. 400 always names a constraint the document states.

use utoipa::openapi::{
    content::Content,
    path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    response::ResponseBuilder,
    security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use serde_json::{json, Value};

use crate::api::{Access, Answer, EndpointSpec};

/// Names of the model (assets, templates, attributes): no `/`, control or bidirectional-override characters,
/// no leading or trailing white space (`…` alone is refused too, as the description says).
const MODEL_NAME: &str = r"^[^/\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069](?:[^/\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*[^/\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069])?$";
/// Text with something besides white space and no control characters.
const LABEL: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// A display name: [`LABEL`] without bidirectional overrides.
const DISPLAY_NAME: &str = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*[^\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069][^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$";
/// Something besides white space. White space as Rust's `trim` sees it: the patterns' `\s` (ECMA-262) leaves out
/// U+0085 (next line), which Rust counts, so it is named too.
const NOT_BLANK: &str = r"^[\s\S]*[^\s\x85][\s\S]*$";
/// No leading or trailing white space, not empty.
const TRIMMED: &str = r"^[^\s\x85](?:[\s\S]*[^\s\x85])?$";
const USERNAME: &str = r"^[A-Za-z0-9._@-]{1,64}$";
const DEVICE_NAME: &str = r"^[A-Za-z0-9._:-]{1,100}$";
/// `/Site/Line 2`: segments without `/`.
const ASSET_PATH: &str = r"^(?:/[^/]+)+$";
/// `http(s)://host[:port][/path]` with a host name or an IPv4 address.
const WEBHOOK_URL: &str = r"^https?://(?:[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z][A-Za-z0-9-]*)*|(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9]))(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$";

/// The constraints the services enforce on request bodies, as JSON Schema keywords merged into the property of
/// each named schema (or of each `oneOf` variant that has it). `[]` names the items of an array property.
fn constraints() -> Vec<(&'static str, &'static str, Value)> {
    use app::alarms::{MAX_LIST, MAX_MESSAGE_TEMPLATE_CHARS, MAX_SHELVE_MINUTES};
    use app::auth::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
    use app::charts::{GRID_COLUMNS, MAX_PANELS, MAX_PANEL_HEIGHT, MAX_ROWS, MAX_TREND_SERIES, MAX_VALUE_SERIES};
    use app::reports::{MAX_REPORT_HOURS, MAX_SECTIONS, MAX_TABLE_ATTRIBUTES};
    use app::timeseries::{EARLIEST_MS, LATEST_MS};
    let instant = json!({ "minimum": EARLIEST_MS, "maximum": LATEST_MS });
    let model_name = json!({ "minLength": 1, "maxLength": 200, "pattern": MODEL_NAME });
    let password = json!({ "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS });
    let username = json!({ "pattern": USERNAME });
    let display_name = json!({ "maxLength": 128, "pattern": DISPLAY_NAME });
    let short_label = json!({ "maxLength": 100, "pattern": LABEL });
    let device_name = json!({ "pattern": DEVICE_NAME });
    let reason = json!({ "maxLength": 2000 });
    vec![
        ("LoginRequest", "username", username.clone()),
        (
            "LoginRequest",
            "password",
            json!({ "minLength": 1, "maxLength": MAX_PASSWORD_CHARS }),
        ),
        ("NewUser", "username", username.clone()),
        ("NewUser", "display_name", display_name.clone()),
        ("NewUser", "password", password.clone()),
        ("SetupRequest", "username", username),
        ("SetupRequest", "display_name", display_name.clone()),
        ("SetupRequest", "password", password.clone()),
        ("UserPatch", "display_name", display_name),
        ("PasswordChange", "new_password", password.clone()),
        (
            "PasswordChange",
            "current_password",
            json!({ "maxLength": MAX_PASSWORD_CHARS }),
        ),
        ("PasswordReset", "new_password", password),
        ("NewToken", "name", short_label.clone()),
        (
            "NewDeviceToken",
            "name",
            json!({ "maxLength": 100, "pattern": NOT_BLANK }),
        ),
        (
            "NewGatewayToken",
            "name",
            json!({ "maxLength": 100, "pattern": NOT_BLANK }),
        ),
        ("NewGatewayToken", "devices", json!({ "minItems": 1 })),
        ("NewGatewayToken", "devices[]", device_name.clone()),
        ("NewDevice", "name", device_name.clone()),
        ("NewDevice", "asset_path", json!({ "pattern": ASSET_PATH })),
        ("NewDevice", "field_map", json!({ "propertyNames": { "minLength": 1 } })),
        ("DevicePatch", "name", device_name),
        (
            "DevicePatch",
            "field_map",
            json!({ "propertyNames": { "minLength": 1 } }),
        ),
        ("DevicePatch", "asset_path", json!({ "pattern": ASSET_PATH })),
        ("NewAsset", "name", model_name.clone()),
        ("NewAsset", "template", model_name.clone()),
        ("AssetPatch", "name", model_name.clone()),
        ("TemplateSpec", "name", model_name.clone()),
        ("TemplateSpec", "base", model_name.clone()),
        ("AttributeTemplate", "name", model_name.clone()),
        ("AssetRule", "attribute", model_name),
        ("AlarmRule", "name", short_label.clone()),
        (
            "AlarmRule",
            "message",
            json!({ "maxLength": MAX_MESSAGE_TEMPLATE_CHARS }),
        ),
        ("AlarmRule", "renotify_minutes", json!({ "minimum": 1 })),
        ("RuleKind", "deadband", json!({ "minimum": 0 })),
        ("RuleKind", "max_per_minute", json!({ "exclusiveMinimum": 0 })),
        ("RuleKind", "after_seconds", json!({ "minimum": 1 })),
        ("AckRequest", "ids", json!({ "minItems": 1, "maxItems": MAX_LIST })),
        ("AckRequest", "comment", reason.clone()),
        ("AckComment", "comment", reason.clone()),
        (
            "ShelveRequest",
            "minutes",
            json!({ "minimum": 0, "maximum": MAX_SHELVE_MINUTES }),
        ),
        ("ShelveRequest", "reason", reason.clone()),
        ("ServiceRequest", "reason", reason),
        ("NewComment", "text", json!({ "minLength": 1, "maxLength": 2000 })),
        ("NewWebhook", "name", json!({ "maxLength": 100, "pattern": NOT_BLANK })),
        ("NewWebhook", "url", json!({ "format": "uri", "pattern": WEBHOOK_URL })),
        ("DashboardSpec", "name", json!({ "maxLength": 100, "pattern": TRIMMED })),
        ("DashboardSpec", "panels", json!({ "maxItems": MAX_PANELS })),
        ("Panel", "title", json!({ "maxLength": 100 })),
        ("Panel", "w", json!({ "minimum": 1, "maximum": GRID_COLUMNS })),
        ("Panel", "x", json!({ "maximum": GRID_COLUMNS - 1 })),
        ("Panel", "h", json!({ "minimum": 1, "maximum": MAX_PANEL_HEIGHT })),
        ("Panel", "y", json!({ "maximum": MAX_ROWS - 1 })),
        (
            "PanelContent",
            "range",
            json!({ "enum": app::charts::RangePreset::ALL.iter().map(|p| p.key()).collect::<Vec<_>>() }),
        ),
        ("PanelContent", "subtree", json!({ "pattern": ASSET_PATH })),
        (
            "PanelContent",
            "series",
            json!({ "minItems": 1, "maxItems": MAX_TREND_SERIES.min(MAX_VALUE_SERIES) }),
        ),
        ("SeriesRef", "asset", json!({ "pattern": ASSET_PATH })),
        ("SeriesRef", "attribute", json!({ "minLength": 1 })),
        // Null: the browser's own zone.
        (
            "TimeZoneChange",
            "time_zone",
            json!({ "enum": time_zone_names().into_iter().chain([Value::Null]).collect::<Vec<_>>() }),
        ),
        ("ReportSpec", "name", json!({ "maxLength": 100, "pattern": TRIMMED })),
        ("ReportSpec", "time_zone", json!({ "enum": time_zone_names() })),
        (
            "ReportSpec",
            "sections",
            json!({ "minItems": 1, "maxItems": MAX_SECTIONS }),
        ),
        ("ReportScope", "under", json!({ "pattern": ASSET_PATH })),
        (
            "ReportRange",
            "hours",
            json!({ "minimum": 1, "maximum": MAX_REPORT_HOURS }),
        ),
        ("ReportRange", "from", instant.clone()),
        ("ReportRange", "to", instant),
        (
            "ReportSection",
            "attributes",
            json!({ "minItems": 1, "maxItems": MAX_TABLE_ATTRIBUTES }),
        ),
        ("ReportSection", "attributes[]", json!({ "pattern": NOT_BLANK })),
        ("ReportSection", "aggregates", json!({ "minItems": 1 })),
        ("ReportSection", "heading", json!({ "maxLength": 200 })),
        ("ReportSection", "title", json!({ "maxLength": 200 })),
        // Five or six fields separated by spaces; what each says is checked when written (422).
        (
            "ReportSchedule",
            "cron",
            json!({ "pattern": "^ *[^ ]+( +[^ ]+){4,5} *$" }),
        ),
        (
            "ReportSection",
            "series",
            json!({ "minItems": 1, "maxItems": MAX_TREND_SERIES }),
        ),
        ("ReportSection", "body", json!({ "maxLength": 10_000 })),
    ]
}

/// Every zone of the bundled time-zone database.
fn time_zone_names() -> Vec<Value> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_string())
        .collect();
    names.sort();
    names.into_iter().map(Value::from).collect()
}

/// `s=/Site/Pump 1|flow`: an asset path, `|`, an attribute name. Exactly one `|`, and a visible character on
/// each side of it: `\S` alone would let a second `|` through (`/a|b|`, whose attribute is empty).
const SERIES: &str = r"^(?:/[^/|]*[^/|\s][^/|]*)+\|[^|]*[^|\s][^|]*$";

/// Writes that take the version they are based on in `If-Match` (optimistic concurrency; 409 when stale).
const VERSIONED_WRITES: &[(&str, &str)] = &[
    ("PUT", "/templates/{id}"),
    ("PATCH", "/assets/{id}"),
    ("PUT", "/dashboards/{id}"),
];

/// Query parameters an operation cannot do without, by path: (name, maximum count) of a repeated string
/// parameter. (The optional ones of every operation are described in the README.)
fn required_query(path: &str) -> Option<(&'static str, usize, &'static str)> {
    match path {
        "/charts/trend" | "/charts/trend.svg" | "/charts/trend.png" | "/charts/live" => {
            Some(("s", app::charts::MAX_TREND_SERIES, SERIES))
        }
        "/charts/values" => Some(("s", app::charts::MAX_VALUE_SERIES, SERIES)),
        _ => None,
    }
}

/// Schemas whose serde form refuses unknown fields but whose derived schema does not say so (tagged enums).
const CLOSED_ENUMS: &[&str] = &["RuleKind", "ReportRange", "ReportSection"];

/// Merges [`constraints`] into the document's schemas and closes [`CLOSED_ENUMS`]. Panics on a constraint whose
/// schema or property does not exist, so the table cannot drift from the types (the OpenAPI test renders it).
fn constrain(schemas: &mut Value) {
    for (schema, property, keywords) in constraints() {
        let target = &mut schemas[schema];
        assert!(
            target.is_object(),
            "the constraints name a schema {schema} that does not exist"
        );
        let (property, items) = match property.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (property, false),
        };
        let mut found = false;
        let mut variants: Vec<&mut Value> = match target.get_mut("oneOf").and_then(Value::as_array_mut) {
            Some(variants) => variants.iter_mut().collect(),
            None => vec![target],
        };
        for variant in variants.iter_mut() {
            let Some(slot) = variant.get_mut("properties").and_then(|p| p.get_mut(property)) else {
                continue;
            };
            let slot = if items { &mut slot["items"] } else { slot };
            for (key, value) in keywords.as_object().into_iter().flatten() {
                slot[key] = value.clone();
            }
            found = true;
        }
        assert!(
            found,
            "the constraints name a property {schema}.{property} that does not exist"
        );
    }
    for name in CLOSED_ENUMS {
        for variant in schemas[*name]["oneOf"].as_array_mut().into_iter().flatten() {
            variant["additionalProperties"] = Value::Bool(false);
        }
    }
    let closed = schemas.clone();
    open_flattened(schemas, &closed);
}

/// A view that flattens a request type (`#[serde(flatten)]`, rendered as `allOf` with a `$ref`) adds fields the
/// request type's `additionalProperties: false` would refuse: such a part of an `allOf` becomes an open copy.
fn open_flattened(value: &mut Value, schemas: &Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Array(parts)) = object.get_mut("allOf") {
                for part in parts.iter_mut() {
                    let target = part
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .map(|name| &schemas[name]);
                    if let Some(target) = target.filter(|t| t["additionalProperties"] == Value::Bool(false)) {
                        let mut open = target.clone();
                        open.as_object_mut().map(|o| o.remove("additionalProperties"));
                        *part = open;
                    }
                }
            }
            object.values_mut().for_each(|child| open_flattened(child, schemas));
        }
        Value::Array(items) => items.iter_mut().for_each(|item| open_flattened(item, schemas)),
        _ => {}
    }
}

/// Collects a type's schema and the schemas it refers to.
pub fn collect_schemas<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn method(spec: &EndpointSpec) -> HttpMethod {
    match spec.method.as_str() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => unreachable!("the endpoint tables use no {other} routes"),
    }
}

/// The success response an endpoint declares (collecting the schemas it names).
fn success(spec: &EndpointSpec, schemas: &mut Vec<(String, RefOr<Schema>)>) -> utoipa::openapi::Response {
    let response = ResponseBuilder::new().description("Success");
    let json = |schema: RefOr<Schema>| Content::new(Some(schema));
    match &spec.answer {
        None => response.build(),
        Some(Answer::Nothing) => ResponseBuilder::new().description("Done; no body").build(),
        Some(Answer::Media(media)) => response.content(*media, Content::new(None::<RefOr<Schema>>)).build(),
        Some(Answer::Json(schema)) => {
            (schema.collect)(schemas);
            response
                .content(
                    "application/json",
                    json(Ref::from_schema_name(schema.name.clone()).into()),
                )
                .build()
        }
        Some(Answer::Wrapped { key, list, schema }) => {
            (schema.collect)(schemas);
            let item: RefOr<Schema> = Ref::from_schema_name(schema.name.clone()).into();
            let value: RefOr<Schema> = if *list {
                utoipa::openapi::ArrayBuilder::new().items(item).into()
            } else {
                item
            };
            let body = ObjectBuilder::new().property(*key, value).required(*key);
            response.content("application/json", json(body.into())).build()
        }
    }
}

/// `{ "error": { "code", "message", "details" } }`.
fn error_body() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("error", Ref::from_schema_name("AppError"))
        .required("error")
        .into()
}

/// The document, with [`constraints`] applied.
pub fn document(specs: &[EndpointSpec]) -> Value {
    for (method, path) in VERSIONED_WRITES {
        assert!(
            specs
                .iter()
                .any(|spec| spec.method.as_str() == *method && spec.path == *path),
            "VERSIONED_WRITES names {method} {path}, which is not an endpoint"
        );
    }
    let mut document = serde_json::to_value(derived_document(specs)).expect("the document serialises");
    constrain(&mut document["components"]["schemas"]);
    document
}

fn derived_document(specs: &[EndpointSpec]) -> OpenApi {
    let mut schemas = Vec::new();
    collect_schemas::<app::error::AppError>(&mut schemas);
    let mut paths = Paths::new();
    for spec in specs {
        let tag = spec
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut operation = OperationBuilder::new()
            .operation_id(Some(format!("{} {}", spec.method, spec.path)))
            .tag(tag)
            .response("2XX", success(spec, &mut schemas))
            .response(
                "4XX",
                ResponseBuilder::new()
                    .description("The request was refused; the body says why (429 and 503 carry Retry-After).")
                    .content("application/json", Content::new(Some(error_body()))),
            );
        if spec.path.contains("{id}") {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(i64::schema())),
            );
        }
        if spec.path.contains("{run}") {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("run")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(i64::schema())),
            );
        }
        if spec.path.contains("{name}") {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("name")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        if let Some((name, max, pattern)) = required_query(spec.path) {
            let schema: Schema = serde_json::from_value(json!({
                "type": "array", "minItems": 1, "maxItems": max, "items": { "type": "string", "pattern": pattern }
            }))
            .expect("a valid schema");
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(schema)),
            );
        }
        if VERSIONED_WRITES.contains(&(spec.method.as_str(), spec.path)) {
            let schema: Schema = serde_json::from_value(json!({
                "type": "string", "pattern": "^(W/)?\"?[0-9]{1,18}\"?$"
            }))
            .expect("a valid schema");
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("If-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "The `version` the change is based on; a write based on an older one answers 409 with \
                         `details.current_version`. Absent: the write is unconditional.",
                    ))
                    .schema(Some(schema)),
            );
        }
        if let Some(body) = &spec.body {
            (body.collect)(&mut schemas);
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(body.name.clone()))),
                    )
                    .build(),
            ));
        }
        if let Access::Requires(permission) = spec.access {
            operation = operation
                .description(Some(format!(
                    "Needs the `{}` permission.",
                    serde_json::json!(permission).as_str().unwrap_or_default()
                )))
                .securities(Some([
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("session", Vec::<String>::new()),
                ]));
        }
        paths.add_path_operation(spec.path, vec![method(spec)], operation);
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::COOKIE_NAME,
                "The session cookie; state-changing requests also need the X-Gantry-CSRF header and Gantry's origin.",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Gantry")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .servers(Some([utoipa::openapi::Server::new("/api/v1")]))
        .paths(paths)
        .components(Some(components))
        .build()
}

#[cfg(test)]
mod tests {
    use app::charts::SeriesRef;

    /// Schemathesis generates query values from the `s` pattern and expects each to be accepted, so every string
    /// the pattern allows must parse as a series.
    #[test]
    fn every_series_the_pattern_allows_parses() {
        let pattern = regex::Regex::new(super::SERIES).unwrap();
        let samples = [
            "/Site/Pump 1|flow",
            "/a|b",
            "/a|b|",
            "/a|b| ",
            "/a| |",
            "/a||b",
            "/a|b|c",
            "/ |b",
            "/a/ |b",
            "/a|\u{85}",
            "a|b",
            "/a|",
        ];
        for sample in samples {
            if pattern.is_match(sample) {
                assert!(
                    SeriesRef::parse(sample).is_ok(),
                    "{sample:?} fits the pattern but does not parse"
                );
            }
        }
        assert!(pattern.is_match("/Site/Pump 1|flow"));
        assert!(!pattern.is_match("/a|b|"));
    }
}

//! The OpenAPI document of `/api/v1`, generated from the same endpoint tables that build the routers (so it
//! cannot list a route that does not exist, or miss one that does), with request schemas derived from the shared
//! types. Served at `/api/v1/openapi.json`.

use utoipa::openapi::{
    content::Content,
    path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    response::ResponseBuilder,
    security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::api::{Access, EndpointSpec};

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

/// `{ "error": { "code", "message", "details" } }`.
fn error_body() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("error", Ref::from_schema_name("AppError"))
        .required("error")
        .into()
}

pub fn document(specs: &[EndpointSpec]) -> OpenApi {
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
            .response("2XX", ResponseBuilder::new().description("Success"))
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
        if spec.path.contains("{name}") {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name("name")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
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

//! `GET /api/v1/search`: a thin handler over [`Search`]; grants apply there.

use std::sync::Arc;

use app::auth::Permission;
use app::search::{SearchQuery, SearchResults};
use app::services::SearchService;
use axum::{extract::State, routing::get, Json};
use http::Method;

use super::service::Search;
use crate::api::{Access, Caller, Endpoint, QueryParams};
use crate::error::ApiError;

type SearchState = Arc<Search>;

pub fn endpoints() -> Vec<Endpoint<SearchState>> {
    vec![
        Endpoint::new(Method::GET, "/search", Access::Requires(Permission::View), get(search))
            .answers_json::<SearchResults>(),
    ]
}

pub fn router(search: SearchState) -> axum::Router {
    crate::api::router_from(endpoints(), search)
}

async fn search(
    State(search): State<SearchState>,
    Caller(actor): Caller,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    Ok(Json(search.search(&actor, &query).await?))
}

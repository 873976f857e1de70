//! The web UI: Leptos pages rendered on the server, server functions, and the browser bundle (`/pkg/…`) served
//! from the site dir. Services reach pages and server functions as Leptos context.

use std::path::{Path, PathBuf};

use app::{auth::Actor, services::Services, shell, App};
use axum::{
    extract::Request,
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    Router,
};
use http::Method;
use leptos::{
    config::{Env, LeptosOptions},
    prelude::provide_context,
};
use leptos_axum::{file_and_error_handler_with_context, generate_route_list, LeptosRoutes};

/// The name of the bundle files: `pkg/gantry.js`, `pkg/gantry_bg.wasm`, `pkg/gantry.css`.
pub const OUTPUT_NAME: &str = "gantry";

pub fn router(services: Services, site_dir: &Path) -> Router {
    let options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site_dir.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .env(Env::PROD)
        .build();
    let routes = generate_route_list(App);
    let context = move || provide_context(services.clone());
    Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler_with_context(context, shell))
        .with_state(options)
        .layer(middleware::from_fn(require_sign_in))
}

/// Pages anyone may open; everything else sends signed-out visitors to the sign-in page. Server functions check
/// the caller themselves (sign-in and setup must work signed out).
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/setup" | "/favicon.svg") || path.starts_with("/pkg/") || path.starts_with("/_fn/")
}

async fn require_sign_in(request: Request, next: Next) -> Response {
    let page_view = matches!(*request.method(), Method::GET | Method::HEAD);
    if !page_view || is_public(request.uri().path()) || request.extensions().get::<Actor>().is_some() {
        return next.run(request).await;
    }
    let wanted = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    Redirect::to(&format!("/login?next={}", app::shell::percent_encode(&wanted))).into_response()
}

/// Where the browser bundle is: the configured dir, else `site/` beside the binary (an installed release), else
/// the workspace's `target/site` (a source checkout, where `cargo xtask build` puts it).
pub fn resolve_site_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("site")));
    match beside_binary {
        Some(dir) if dir.join("pkg").is_dir() => dir,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site"),
    }
}

/// Whether the bundle the pages load is present; without it pages render but never become interactive.
/// (`cargo xtask` names the module `gantry_bg.wasm`, as wasm-bindgen does; cargo-leptos names it `gantry.wasm`.)
pub fn bundle_present(site_dir: &Path) -> bool {
    let pkg = site_dir.join("pkg");
    let file = |suffix: &str| pkg.join(format!("{OUTPUT_NAME}{suffix}")).is_file();
    file(".js") && file(".css") && (file("_bg.wasm") || file(".wasm"))
}

//! The frame every page sits in: the HTML document, the header with the navigation, the routes, and the small
//! layout components (`Page`, `EmptyState`) that pages share.

use std::sync::Arc;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    lazy_route, Lazy, LazyRoute, ParamSegment, StaticSegment,
};

use crate::{
    alarms::{provide_live_alarms, AlarmBell, AlarmPage, AlarmToasts, AlarmsPage},
    assets::{AssetPage, AssetsPage, TemplatesPage},
    auth::{AccountPage, AdminPage, AuditPage, LoginPage, SetupPage, UserMenu},
    charts::{DashboardPage, DashboardsPage, TrendsPage},
    devices::DevicesPage,
    reports::{ReportPage, ReportsPage},
    search::{HeaderSearch, SearchPage},
    system::HomePage,
};

/// Declares a page that is loaded on demand: its code is cut out of the first bundle into a chunk the browser
/// fetches when the route is first visited (or, on a first visit straight to it, beside the bundle). Every page but
/// the home page and sign-in is one. (The split point is named after the route type, so one macro serves them all.)
macro_rules! lazy_page {
    ($route:ident => $page:ident) => {
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(this: Self) -> AnyView {
                let _ = this;
                view! { <$page/> }.into_any()
            }
        }
    };
}

lazy_page!(AssetsRoute => AssetsPage);
lazy_page!(AssetRoute => AssetPage);
lazy_page!(TemplatesRoute => TemplatesPage);
lazy_page!(DevicesRoute => DevicesPage);
lazy_page!(AlarmsRoute => AlarmsPage);
lazy_page!(AlarmRoute => AlarmPage);
lazy_page!(TrendsRoute => TrendsPage);
lazy_page!(DashboardsRoute => DashboardsPage);
lazy_page!(DashboardRoute => DashboardPage);
lazy_page!(SearchRoute => SearchPage);
lazy_page!(ReportsRoute => ReportsPage);
lazy_page!(ReportRoute => ReportPage);
lazy_page!(AdminRoute => AdminPage);
lazy_page!(AuditRoute => AuditPage);
lazy_page!(AccountRoute => AccountPage);
lazy_page!(SetupRoute => SetupPage);

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Scripts run only from Gantry's own files or with this response's nonce (the hydration script); no inline
/// scripts otherwise, no framing, no plugins. `wasm-unsafe-eval` lets the browser compile the WASM bundle.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    // Under `cargo leptos watch`, the live-reload script talks to its own websocket port.
    let connect = if std::env::var_os("LEPTOS_WATCH").is_some() {
        "'self' ws:"
    } else {
        "'self'"
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src {connect}; object-src 'none'; base-uri 'self'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The sections of the navigation, in order: (path, label).
pub const SECTIONS: [(&str, &str); 8] = [
    ("/assets", "Assets"),
    ("/devices", "Devices"),
    ("/alarms", "Alarms"),
    ("/trends", "Trends"),
    ("/dashboards", "Dashboards"),
    ("/search", "Search"),
    ("/reports", "Reports"),
    ("/admin", "Admin"),
];

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_live_alarms();
    crate::time::provide_shown_zone();

    view! {
        <Stylesheet id="gantry" href="/pkg/gantry.css"/>
        <Title formatter=|page: String| if page.is_empty() { "Gantry".to_string() } else { format!("{page} · Gantry") }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header/>
            <main id="main" tabindex="-1">
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage/>
                    <Route path=StaticSegment("assets") view={Lazy::<AssetsRoute>::new()}/>
                    <Route path=(StaticSegment("assets"), ParamSegment("id")) view={Lazy::<AssetRoute>::new()}/>
                    <Route path=StaticSegment("templates") view={Lazy::<TemplatesRoute>::new()}/>
                    <Route path=StaticSegment("devices") view={Lazy::<DevicesRoute>::new()}/>
                    <Route path=StaticSegment("alarms") view={Lazy::<AlarmsRoute>::new()}/>
                    <Route path=(StaticSegment("alarms"), ParamSegment("id")) view={Lazy::<AlarmRoute>::new()}/>
                    <Route path=StaticSegment("trends") view={Lazy::<TrendsRoute>::new()}/>
                    <Route path=StaticSegment("dashboards") view={Lazy::<DashboardsRoute>::new()}/>
                    <Route path=(StaticSegment("dashboards"), ParamSegment("id")) view={Lazy::<DashboardRoute>::new()}/>
                    <Route path=StaticSegment("search") view={Lazy::<SearchRoute>::new()}/>
                    <Route path=StaticSegment("reports") view={Lazy::<ReportsRoute>::new()}/>
                    <Route path=(StaticSegment("reports"), ParamSegment("id")) view={Lazy::<ReportRoute>::new()}/>
                    <Route path=StaticSegment("admin") view={Lazy::<AdminRoute>::new()}/>
                    <Route path=(StaticSegment("admin"), StaticSegment("audit")) view={Lazy::<AuditRoute>::new()}/>
                    <Route path=StaticSegment("account") view={Lazy::<AccountRoute>::new()}/>
                    <Route path=StaticSegment("login") view=LoginPage/>
                    <Route path=StaticSegment("setup") view={Lazy::<SetupRoute>::new()}/>
                </Routes>
            </main>
            <AlarmToasts/>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    // On narrow screens the navigation folds behind a menu button; following a link folds it again.
    let menu_open = RwSignal::new(false);

    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">
                <crate::icons::BrandMark/>
                " Gantry"
            </A>
            <button
                type="button"
                class="menu-toggle"
                aria-controls="site-nav"
                aria-expanded=move || menu_open.get().to_string()
                on:click=move |_| menu_open.update(|open| *open = !*open)
            >
                "Menu"
            </button>
            <nav
                id="site-nav"
                aria-label="Main"
                class:open=move || menu_open.get()
                on:click=move |_| menu_open.set(false)
            >
                <ul>
                    {SECTIONS
                        .iter()
                        .map(|(path, label)| view! { <li><A href=*path>{*label}</A></li> })
                        .collect_view()}
                </ul>
            </nav>
            <HeaderSearch/>
            <AlarmBell/>
            <UserMenu/>
        </header>
    }
}

/// A page with a title (shown as the heading and in the browser tab).
#[component]
pub fn Page(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <Title text=title/>
        <section class="page" aria-labelledby="page-title">
            <h1 id="page-title">{title}</h1>
            {children()}
        </section>
    }
}

/// The message of a failed submission.
pub fn failure<T>(result: Option<Result<T, crate::error::AppError>>) -> Option<String> {
    failure_besides(result, &[])
}

/// The message of a failed submission whose error names `field` (`details.field`), for the [`FieldError`] beside
/// that input.
pub fn failure_at<T>(result: Option<Result<T, crate::error::AppError>>, field: &str) -> Option<String> {
    result
        .and_then(Result::err)
        .filter(|err| err.field() == Some(field))
        .map(|err| err.message)
}

/// The message of a failed submission whose error names none of `fields` (those the form shows beside their
/// inputs), for the form's [`FormError`].
pub fn failure_besides<T>(result: Option<Result<T, crate::error::AppError>>, fields: &[&str]) -> Option<String> {
    result
        .and_then(Result::err)
        .filter(|err| err.field().is_none_or(|field| !fields.contains(&field)))
        .map(|err| err.message)
}

/// Shows the error of the last submission, if any.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|message| view! { <p class="error" role="alert">{message}</p> })
    }
}

/// Shows the error of the last submission beside the input it is about. The input names it: `aria-invalid` and
/// `aria-describedby` from [`invalid`] and [`described_by`].
#[component]
pub fn FieldError(#[prop(into)] id: Arc<str>, #[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|message| view! { <span class="field-error" id=id.clone() role="alert">{message}</span> })
    }
}

/// `aria-invalid` of an input while its [`FieldError`] shows.
pub fn invalid(error: Signal<Option<String>>) -> impl Fn() -> Option<&'static str> + Copy {
    move || error.with(Option::is_some).then_some("true")
}

/// `aria-describedby` of an input: its [`FieldError`] while it shows.
pub fn described_by(error: Signal<Option<String>>, id: impl Into<Arc<str>>) -> impl Fn() -> Option<Arc<str>> + Clone {
    let id = id.into();
    move || error.with(Option::is_some).then(|| id.clone())
}

/// Everything but RFC 3986's unreserved characters.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters (for query values and redirect targets).
pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use crate::error::AppError;

    #[test]
    fn an_error_naming_a_field_shows_beside_it_and_nowhere_else() {
        let slip = || {
            Some(Err::<(), _>(
                AppError::bad_request("The on-delay is a whole number").for_field("on_delay"),
            ))
        };
        let other = || Some(Err::<(), _>(AppError::bad_request("the template is gone")));
        assert_eq!(
            super::failure_at(slip(), "on_delay").as_deref(),
            Some("The on-delay is a whole number")
        );
        assert_eq!(super::failure_at(slip(), "off_delay"), None);
        assert_eq!(super::failure_besides(slip(), &["on_delay", "off_delay"]), None);
        // A field the form does not show beside an input still reaches the form's own error line.
        assert!(super::failure_besides(slip(), &["parameter"]).is_some());
        assert_eq!(super::failure_at(other(), "on_delay"), None);
        assert_eq!(
            super::failure_besides(other(), &["on_delay"]).as_deref(),
            Some("the template is gone")
        );
        assert_eq!(super::failure_at(Some(Ok::<(), AppError>(())), "on_delay"), None);
    }

    #[test]
    fn query_values_keep_only_unreserved_characters() {
        assert_eq!(
            super::percent_encode("/Site A/Pump 7|flow"),
            "%2FSite%20A%2FPump%207%7Cflow"
        );
        assert_eq!(super::percent_encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(super::percent_encode("m³/h"), "m%C2%B3%2Fh");
    }
}

/// What a section will hold once there is something in it.
#[component]
pub fn EmptyState(children: Children) -> impl IntoView {
    view! { <p class="empty">{children()}</p> }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Page title="Page not found">
            <p>"There is nothing at this address. Use the navigation above to find your way."</p>
        </Page>
    }
}

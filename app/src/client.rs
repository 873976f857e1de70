//! The HTTP client of every server function: the browser's `fetch`, plus the `X-Gantry-CSRF` header that tells
//! the server the request comes from Gantry's own pages (a cross-site form cannot set it). A leaf module: every
//! area's server functions name it, and it names none of them.

/// The header that marks a state-changing request as coming from Gantry's own pages (see `server::auth::guard`).
pub const CSRF_HEADER: &str = "x-gantry-csrf";

#[cfg(not(feature = "hydrate"))]
pub use leptos::server_fn::client::browser::BrowserClient as CsrfClient;

#[cfg(feature = "hydrate")]
pub use browser::CsrfClient;

#[cfg(feature = "hydrate")]
mod browser {
    use std::future::Future;

    use leptos::server_fn::{
        client::{browser::BrowserClient, Client},
        error::FromServerFnError,
        request::browser::BrowserRequest,
        response::browser::BrowserResponse,
    };

    use super::CSRF_HEADER;

    pub struct CsrfClient;

    impl<E, IS, OS> Client<E, IS, OS> for CsrfClient
    where
        E: FromServerFnError,
        IS: FromServerFnError,
        OS: FromServerFnError,
    {
        type Request = BrowserRequest;
        type Response = BrowserResponse;

        fn send(request: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
            request.headers().set(CSRF_HEADER, "1");
            <BrowserClient as Client<E, IS, OS>>::send(request)
        }

        fn open_websocket(
            path: &str,
        ) -> impl Future<
            Output = Result<
                (
                    impl futures::Stream<Item = Result<bytes::Bytes, bytes::Bytes>> + Send + 'static,
                    impl futures::Sink<bytes::Bytes> + Send + 'static,
                ),
                E,
            >,
        > + Send {
            <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
        }

        fn spawn(future: impl Future<Output = ()> + Send + 'static) {
            <BrowserClient as Client<E, IS, OS>>::spawn(future)
        }
    }
}

//! The backend as server functions see it: one trait per area, implemented in the `server` crate and provided as
//! Leptos context (a [`Services`] value) to both server-function and page-rendering requests. Keeping the traits
//! here, behind `ssr`, is what lets `app` stay free of sqlx, tantivy and taos.

#[cfg(feature = "ssr")]
mod ssr {
    use std::sync::Arc;

    use crate::error::AppError;
    use crate::system::SystemStatus;

    /// Facts about the running instance.
    #[async_trait::async_trait]
    pub trait SystemService: Send + Sync + 'static {
        async fn status(&self) -> Result<SystemStatus, AppError>;
    }

    /// Every service a server function can reach, cloned into each request's Leptos context.
    #[derive(Clone)]
    pub struct Services {
        pub system: Arc<dyn SystemService>,
    }

    /// The services of the current request; an error (not a panic) when the server forgot to provide them.
    pub fn services() -> Result<Services, AppError> {
        leptos::prelude::use_context::<Services>().ok_or_else(|| {
            leptos::logging::error!("Services were not provided as Leptos context.");
            AppError::internal()
        })
    }
}

#[cfg(feature = "ssr")]
pub use ssr::*;

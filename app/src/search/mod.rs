//! The search area: the types the browser and the server share, and the UI.

mod types;

pub use types::*;

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn SearchPage() -> impl IntoView {
    view! {
        <Page title="Search">
            <EmptyState>"Search the plant model by name, path, label or description; results honour your access grants."</EmptyState>
        </Page>
    }
}

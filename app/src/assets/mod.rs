//! The asset explorer area of the UI.

mod types;

pub use types::*;

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn AssetsPage() -> impl IntoView {
    view! {
        <Page title="Asset explorer">
            <EmptyState>"The asset explorer will show your plant as a tree: sites, lines and equipment built from templates, each with its attributes, units, limits and current values."</EmptyState>
        </Page>
    }
}

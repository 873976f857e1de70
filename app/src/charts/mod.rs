//! The trends area of the UI.

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn TrendsPage() -> impl IntoView {
    view! {
        <Page title="Trends">
            <EmptyState>"Build trend charts from the attributes of any assets, pick a time range, zoom and follow live readings; a trend's address can be bookmarked and shared."</EmptyState>
        </Page>
    }
}

//! The reports area of the UI.

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn ReportsPage() -> impl IntoView {
    view! {
        <Page title="Reports">
            <EmptyState>"Shift, day and month reports will be defined here and rendered as PDF, XLSX and CSV, on demand or on a schedule."</EmptyState>
        </Page>
    }
}

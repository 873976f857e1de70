//! Reports: the shared types (`types.rs`) and the Reports page.

mod types;

use leptos::prelude::*;

pub use types::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn ReportsPage() -> impl IntoView {
    view! {
        <Page title="Reports">
            <EmptyState>"Shift, day and month reports will be defined here and rendered as PDF, XLSX and CSV, on demand or on a schedule."</EmptyState>
        </Page>
    }
}

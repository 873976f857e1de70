//! Alarms: the shared types of the REST API and the alarm pages.

mod types;

pub use types::*;

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn AlarmsPage() -> impl IntoView {
    view! {
        <Page title="Alarms">
            <EmptyState>"Active alarms will be listed here by severity and state, with acknowledgement, shelving, comments and the history of every occurrence."</EmptyState>
        </Page>
    }
}

//! The alarms area of the UI.

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

//! The administration area of the UI.

use leptos::prelude::*;

use crate::shell::{EmptyState, Page};

#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <Page title="Administration">
            <EmptyState>"Users, roles, access grants, API tokens and the audit log will be managed here."</EmptyState>
        </Page>
    }
}

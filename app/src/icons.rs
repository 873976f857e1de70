//! Icons as inline SVG, drawn in the text colour (`currentColor`): never a font's glyph, which a machine without an
//! emoji or symbol font draws as an empty box. A leaf module: every area may use it.

use leptos::prelude::*;

/// The alarm bell.
#[component]
pub fn BellIcon() -> impl IntoView {
    view! {
        <svg class="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
            <path fill="currentColor" d="M12 3a1 1 0 0 1 1 1v1.1A6 6 0 0 1 18 11v4l2 2v1H4v-1l2-2v-4a6 6 0 0 1 5-5.9V4a1 1 0 0 1 1-1z"/>
            <path fill="currentColor" d="M10 19.5h4a2 2 0 0 1-4 0z"/>
        </svg>
    }
}

/// Gantry's mark: two squares on a diagonal, like a gantry's frame seen from above.
#[component]
pub fn BrandMark() -> impl IntoView {
    view! {
        <svg class="icon brand-mark" viewBox="0 0 16 16" width="18" height="18" aria-hidden="true" focusable="false">
            <rect fill="currentColor" x="1" y="1" width="7" height="7"/>
            <rect fill="currentColor" x="8" y="8" width="7" height="7"/>
        </svg>
    }
}

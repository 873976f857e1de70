//! The browser side of Gantry: hydrates the server-rendered page so it becomes interactive.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Most pages are lazy routes (their code is a chunk of its own): hydration waits for the current page's chunk,
    // so it runs as a task, as `leptos::mount::hydrate_lazy` does, and the page is marked live once it is done.
    wasm_bindgen_futures::spawn_local(async {
        let body = leptos::prelude::document().body().expect("a page has a body");
        leptos::mount::hydrate_from_async(body.clone(), app::App).await.forget();
        app::time::hydration_finished();
        // Lets people (and browser tests) see that the page is live: forms submit through server functions from now on.
        let _ = body.set_attribute("data-hydrated", "true");
    });
}

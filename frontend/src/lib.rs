//! The browser entry point: hydrates the page the server rendered.

// Leptos views are deeply nested types; the release build needs more room to lay them out.
#![recursion_limit = "512"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

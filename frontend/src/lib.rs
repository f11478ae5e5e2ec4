//! The browser entry point: hydrates the islands of the page the server rendered (the form and
//! the live run view); everything else stays plain server-rendered HTML.

// Leptos views are deeply nested types; the release build needs more room to lay them out.
#![recursion_limit = "512"]

// The islands are exported from `app`; naming the crate links them in.
use app as _;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}

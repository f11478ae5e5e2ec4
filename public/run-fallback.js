// An active run's page, in a browser that runs scripts but not the page's WASM (blocked, or
// failed to load): reload every 2 s, as the <noscript> refresh does where scripts are off.
// A page the WASM has hydrated follows the run itself, and this never reloads it; a WASM that
// is merely slow is waited for.
(() => {
  let failed = false;
  addEventListener('unhandledrejection', () => { failed = true; });
  setInterval(() => {
    if (failed && !document.body.dataset.hydrated) location.reload();
  }, 2000);
})();

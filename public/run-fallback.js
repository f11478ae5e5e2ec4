// An active run's page, in a browser that runs scripts but not the page's WASM (blocked, or
// failed to load): reload every 2 s, as the <noscript> refresh does where scripts are off.
// A page the WASM has hydrated follows the run itself, and this never reloads it. The WASM
// counts as failed when its load rejected, or when the page is still not hydrated 10 s after
// this script ran (the rejection may come before this script listens for it); a WASM that
// is merely slow is waited for that long.
(() => {
  const start = Date.now();
  let failed = false;
  addEventListener('unhandledrejection', () => { failed = true; });
  setInterval(() => {
    if (document.body.dataset.hydrated) return;
    if (failed || Date.now() - start > 10000) location.reload();
  }, 2000);
})();

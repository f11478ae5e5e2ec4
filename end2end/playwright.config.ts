import { defineConfig, devices } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';

// One server for the whole run, from the release build (`cargo leptos build --release`), on a
// port of its own, with a fresh SQLite database, the offline model slowed down so that
// progress can be watched, and a catalog adding models served by the fake OpenAI-compatible
// provider (built by `cargo test`: target/debug/fake-llm) on port 3201.
const PORT = Number(process.env.E2E_PORT ?? 3100);
const FAKE_LLM_PORT = 3201;
const DB = path.join(os.tmpdir(), `trading-agents-e2e-${Date.now()}.db`);
// A second server configured for polling only (PROGRESS_TRANSPORT=poll), for live.spec.ts.
export const POLL_PORT = PORT + 2;
const POLL_DB = path.join(os.tmpdir(), `trading-agents-e2e-poll-${Date.now()}.db`);

export default defineConfig({
  testDir: './tests',
  timeout: 90_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  outputDir: './test-results',
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--headless',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
            '--disable-quic',
          ],
        },
      },
    },
  ],
  webServer: [
    {
      command: `target/debug/fake-llm 127.0.0.1:${FAKE_LLM_PORT}`,
      cwd: '..',
      port: FAKE_LLM_PORT,
      timeout: 30_000,
      reuseExistingServer: false,
    },
    {
      command: 'target/release/server serve',
      cwd: '..',
      url: `http://127.0.0.1:${PORT}/readyz`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${PORT}`,
        LEPTOS_SITE_ROOT: 'target/site',
        DATABASE_URL: `sqlite://${DB}`,
        SIMULATED_LATENCY_MS: '3000',
        MAX_ACTIVE_JOBS_PER_USER: '3',
        // Every test's browser is 127.0.0.1: one address for the whole suite.
        RUNS_PER_MINUTE_PER_ADDRESS: '0',
        MODEL_CATALOG: 'end2end/models.e2e.toml',
        // A quiet model is shown stalled after 3 s, and given up after a minute.
        STALL_AFTER_SECS: '3',
        STALL_TIMEOUT_SECS: '60',
        RUST_LOG: 'warn',
      },
    },
    {
      command: 'target/release/server serve',
      cwd: '..',
      url: `http://127.0.0.1:${POLL_PORT}/readyz`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${POLL_PORT}`,
        LEPTOS_SITE_ROOT: 'target/site',
        DATABASE_URL: `sqlite://${POLL_DB}`,
        SIMULATED_LATENCY_MS: '1500',
        PROGRESS_TRANSPORT: 'poll',
        RUNS_PER_MINUTE_PER_ADDRESS: '0',
        RUST_LOG: 'warn',
      },
    },
  ],
});

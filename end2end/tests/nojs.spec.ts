import { test, expect, Page } from '@playwright/test';
import { RATINGS, shot } from './helpers';

// From the home page to a finished result when the page's WASM does not take over: with
// JavaScript off, with the WASM blocked, and with a click made before it has loaded. Each way
// must start exactly one run, with the analysts chosen, and end on that run's result page.

const CHOSEN = ['Risk Analyst', 'Technical Analyst'];

/** Fills the form as a user would, without waiting for hydration, and submits it. */
async function submitForm(page: Page) {
  await page.getByLabel('Symbol').fill('NVDA');
  for (const name of ['Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
    const box = page.getByRole('checkbox', { name: new RegExp(name) });
    if (CHOSEN.includes(name)) await box.check();
    else await box.uncheck();
  }
  await page.getByRole('button', { name: 'Run analysis' }).click();
}

/** On the run's page until its result shows; then exactly one run exists, the one asked for. */
async function endsOnResult(page: Page) {
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop()!;
  await expect(page.getByTestId('rating')).toContainText(RATINGS, { timeout: 60_000 });
  await expect(page).toHaveURL(new RegExp(`/runs/${id}$`));
  // The context's own cookie: a fresh identity per test, so its runs are this test's only.
  const list = await (await page.request.get('/api/trading/runs')).json();
  expect(list.total).toBe(1);
  expect(list.runs[0].runId).toBe(id);
  expect(list.runs[0].symbol).toBe('NVDA');
  expect(list.runs[0].analysts).toEqual(['risk', 'technical']);
  await expect(page.locator('article.analyst-card')).toHaveCount(2);
}

test.describe('with JavaScript disabled', () => {
  test.use({ javaScriptEnabled: false });

  test('the form posts, the run page refreshes itself, the result shows', async ({ page }, testInfo) => {
    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'New analysis' })).toBeVisible();
    await expect(page.getByText('Loading…')).toHaveCount(0);
    await expect(page.getByText('No runs yet.')).toBeVisible();

    // Invalid input comes back from the server with the errors, and starts nothing.
    await page.getByLabel('Symbol').fill('AA PL');
    await page.getByRole('button', { name: 'Run analysis' }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.locator('.run-form')).toContainText("' ' is not allowed");
    await expect(page.getByLabel('Symbol')).toHaveValue('AA PL');

    await submitForm(page);
    await endsOnResult(page);
    await shot(page, testInfo);
  });
});

test('with the WASM blocked, the form posts and the run page reloads until the result', async ({ page }, testInfo) => {
  await page.route('**/*.wasm', (r) => r.abort());
  await page.goto('/');
  await submitForm(page);
  await endsOnResult(page);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(0);
  await shot(page, testInfo);
});

test('a click on "Run analysis" before hydration starts the run', async ({ page }, testInfo) => {
  // The WASM is held back until the click has been answered, however slow the machine: the
  // click cannot come after hydration.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/*.wasm', async (r) => {
    await held;
    await r.continue();
  });
  await page.goto('/', { waitUntil: 'commit' });
  await expect(page.getByRole('button', { name: 'Run analysis' })).toBeVisible();
  await submitForm(page);
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(0);
  release();
  await endsOnResult(page);
  // The WASM arrives in the end and takes the run page over.
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await shot(page, testInfo);
});

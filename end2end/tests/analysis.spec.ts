import { test, expect } from '@playwright/test';
import { RATINGS, STEPS, expectStatus, hydrated, shot, startRun, step } from './helpers';

test('an analysis runs from the form to the final assessment, step by step', async ({ page }, testInfo) => {
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'New analysis' })).toBeVisible();
  await hydrated(page);
  // Every analyst is ticked by default; models without their key are listed but disabled.
  for (const name of ['Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
    await expect(page.getByRole('checkbox', { name: new RegExp(name) })).toBeChecked();
  }
  const locked = page.locator('#model option[value="locked"]');
  await expect(locked).toBeDisabled();
  await expect(locked).toContainText('E2E_KEY_THAT_IS_NEVER_SET is not set');
  // The symbol is checked as it is typed.
  await page.getByLabel('Symbol').fill('AA PL');
  await expect(page.locator('#symbol-help')).toContainText("' ' is not allowed");
  await expect(page.getByLabel('Symbol')).toHaveAttribute('aria-invalid', 'true');

  await startRun(page, { symbol: 'AAPL' });
  await expect(page.locator('ol.steps > li')).toHaveCount(6);

  // An intermediate state: a step in progress while a later one still waits.
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  await expect(step(page, 'Final Assessment')).toHaveAttribute('data-status', 'pending');
  const bar = page.getByRole('progressbar', { name: 'Analysis progress' });
  await expect(bar).toHaveAttribute('aria-valuemin', '0');
  await expect(bar).toHaveAttribute('aria-valuemax', '100');
  const midway = await bar.getAttribute('aria-valuenow');
  expect(midway, 'the bar states its value').toMatch(/^\d+$/);
  expect(Number(midway)).toBeLessThan(100);
  await expect(page.getByTestId('eta')).toContainText(/about \d+ (s|min)/);

  for (const name of STEPS) {
    await expect(step(page, name)).toHaveAttribute('data-status', 'completed', { timeout: 60_000 });
  }
  // Completed, the page reloads onto the result; the steps, the bar among them, are folded under it.
  await expect(page.getByTestId('steps-folded').locator('[role="progressbar"]')).toHaveAttribute('aria-valuenow', '100');
  const result = page.getByTestId('result');
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  await expect(page.getByTestId('summary')).toContainText('AAPL as of 2023-09-21');
  await expect(result.locator('article.analyst-card')).toHaveCount(4);
  await expect(result.locator('figure.chart svg polyline.close')).toHaveCount(1);
  await expect(result.locator('table.figures')).toContainText('173.93');

  await shot(page, testInfo);
  expect(consoleErrors).toEqual([]);
});

test('a reload in the middle of a run picks it up and follows it to the end', async ({ page }, testInfo) => {
  const id = await startRun(page, { symbol: 'NVDA', analysts: ['Risk Analyst', 'Technical Analyst'] });
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  await page.reload();
  // Server-rendered from the URL alone, before and after hydration.
  await expect(page).toHaveURL(new RegExp(`/runs/${id}$`));
  await expect(page.locator('h1')).toContainText('NVDA');
  await hydrated(page);
  await expectStatus(page, 'completed');
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  await shot(page, testInfo);
});

test('polling sends If-None-Match and unchanged progress costs a 304', async ({ page }, testInfo) => {
  // No live stream here: the page falls back to polling.
  await page.route('**/api/trading/events/**', (route) => route.abort('connectionrefused'));
  const statuses: number[] = [];
  const conditional: boolean[] = [];
  page.on('request', (r) => { if (r.url().includes('/api/trading/progress/')) conditional.push('if-none-match' in r.headers()); });
  page.on('response', (r) => { if (r.url().includes('/api/trading/progress/')) statuses.push(r.status()); });
  // A model that takes 7 s per call: polls every 2 s within that wait find nothing new.
  await startRun(page, { symbol: 'MSFT', model: 'patient', analysts: ['Invest Analyst'] });
  await expectStatus(page, 'completed', 60_000);
  expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
  expect(statuses).toContain(304);
  expect(statuses.every((s) => s === 200 || s === 304)).toBe(true);
  // Every poll after the first carries the ETag of the state on screen.
  expect(conditional[0]).toBe(false);
  expect(conditional.slice(1).every(Boolean)).toBe(true);
  await shot(page, testInfo);
});

test('when the server cannot be reached the page keeps the last state, says so, and recovers', async ({ page }, testInfo) => {
  await page.route('**/api/trading/events/**', (route) => route.abort('connectionrefused'));
  await startRun(page, { symbol: 'AMZN', analysts: ['Sentiment Analyst'] });
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  await page.route('**/api/trading/progress/**', (route) => route.abort('connectionrefused'));
  await expect(page.getByTestId('reconnecting')).toBeVisible({ timeout: 15_000 });
  // The last good state is still on screen.
  await expect(page.locator('ol.steps > li')).toHaveCount(3);
  await shot(page, testInfo, 'reconnecting');
  await page.unroute('**/api/trading/progress/**');
  await expectStatus(page, 'completed', 60_000);
  await expect(page.getByTestId('reconnecting')).toHaveCount(0);
  await shot(page, testInfo);
});

test('a run page stops following its run once the run has ended', async ({ page }, testInfo) => {
  await startRun(page, { symbol: 'IBM', analysts: ['Risk Analyst'] });
  await hydrated(page);
  const requests: string[] = [];
  page.on('request', (r) => { if (/\/api\/trading\/(progress|events)\//.test(r.url())) requests.push(r.url()); });
  await expectStatus(page, 'completed');
  await expect(page.getByTestId('rating')).toBeVisible();
  const atEnd = requests.length;
  // Three poll intervals after the end: no timer or stream is left asking.
  await page.waitForTimeout(6_500);
  expect(requests.slice(atEnd)).toEqual([]);
  await shot(page, testInfo);
});

test('leaving a running run\'s page leaves nothing of it polling', async ({ page }) => {
  await startRun(page, { symbol: 'IBM', analysts: ['Risk Analyst'] });
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  // Links between pages load a new document (islands): the run page's timers and stream go
  // with its document. The marker shows the navigation really replaced it.
  await page.evaluate(() => { (window as unknown as { leftBehind: number }).leftBehind = 1; });
  await page.getByRole('link', { name: 'History' }).click();
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { leftBehind?: number }).leftBehind)).toBeUndefined();
  let polls = 0;
  page.on('request', (r) => { if (/\/api\/trading\/(progress|events)\//.test(r.url())) polls += 1; });
  await page.waitForTimeout(6_500);
  expect(polls).toBe(0);
});

test.describe('on a phone', () => {
  test.use({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });

  test('a run is readable without sideways scrolling', async ({ page }, testInfo) => {
  await startRun(page, { symbol: 'GOOG', analysts: ['Invest Analyst', 'Technical Analyst'] });
  await expectStatus(page, 'completed');
  await expect(page.getByTestId('rating')).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await shot(page, testInfo);
  });
});

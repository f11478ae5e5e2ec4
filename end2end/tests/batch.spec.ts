import { test, expect } from '@playwright/test';
import { RATINGS, VIEWPORTS, expectNoClipping, hydrated, shot } from './helpers';

// A batch from the new-analysis form: a list of symbols starts one run each, and the batch's
// page fills in as they run — never more than the limit of active runs (3 here) at once —
// then sorts by rating and downloads its table.

test('start a batch from the form and watch its table fill', async ({ page }, testInfo) => {
  await page.goto('/');
  await hydrated(page);
  await page.getByLabel('Symbol').fill('AAPL, MSFT, NVDA, GOOG');
  await expect(page.locator('#symbol-help')).toContainText('or several, separated by commas');
  for (const name of ['Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
    await page.getByRole('checkbox', { name: new RegExp(name) }).uncheck();
  }
  await page.getByRole('button', { name: 'Run analysis' }).click();
  await expect(page).toHaveURL(/\/batches\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { name: 'Batch: 4 symbols' })).toBeVisible();
  const rows = page.locator('table.batch tbody tr');
  await expect(rows).toHaveCount(4);
  expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-symbol')))).toEqual([
    'AAPL', 'MSFT', 'NVDA', 'GOOG',
  ]);
  // While it runs: the fourth waits its turn behind three running.
  await expect(page.locator('table.batch [data-status="running"]')).toHaveCount(3, { timeout: 15_000 });
  await expect(rows.nth(3).locator('[data-status]')).toHaveAttribute('data-status', 'pending');
  await shot(page, testInfo, 'batch-running');

  // The page follows the batch by itself (it reloads every 2 s while it runs).
  await expect(page.locator('.batch-status')).toHaveAttribute('data-status', 'completed', { timeout: 80_000 });
  await expect(page.locator('.batch-status')).toContainText('4 of 4 runs ended (100%)');
  for (let i = 0; i < 4; i++) {
    await expect(rows.nth(i).locator('td.rating-cell')).toHaveText(RATINGS);
  }
  const ratings = await rows.locator('td.rating-cell').allInnerTexts();
  const scale = ['Buy', 'Overweight', 'Hold', 'Underweight', 'Sell'];

  // Sorted by rating, most bullish first; the runs link to their pages, which link back.
  await page.getByRole('link', { name: 'Rating', exact: true }).click();
  await expect(page).toHaveURL(/\?sort=rating$/);
  const sorted = await rows.locator('td.rating-cell').allInnerTexts();
  expect(sorted).toEqual([...ratings].sort((a, b) => scale.indexOf(a) - scale.indexOf(b)));
  for (const [name, size] of VIEWPORTS) {
    await page.setViewportSize(size);
    await expectNoClipping(page);
    await shot(page, testInfo, `batch-${name}`);
  }
  await page.setViewportSize(VIEWPORTS[0][1]);

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download the runs (CSV)' }).click(),
  ]);
  const csv = await (await download.createReadStream()).toArray().then((c) => Buffer.concat(c).toString('utf8'));
  const lines = csv.trim().split('\n');
  expect(lines[0]).toBe('symbol,run_id,status,percent,rating,confidence,cost_usd');
  expect(lines.slice(1).map((l) => l.split(',')[4])).toEqual(sorted);

  const batchUrl = page.url().replace(/\?.*$/, '');
  await rows.first().getByRole('link').click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await page.getByTestId('batch-link').click();
  await expect(page).toHaveURL(batchUrl);
});

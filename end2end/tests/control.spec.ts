import { test, expect } from '@playwright/test';
import { RATINGS, expectStatus, hydrated, shot, startRun, step } from './helpers';

test('a running analysis can be cancelled', async ({ page }, testInfo) => {
  await startRun(page, { symbol: 'META' });
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expectStatus(page, 'cancelled', 10_000);
  await expect(page.getByTestId('run-cancelled')).toBeVisible();
  await expect(step(page, 'Final Assessment')).toHaveAttribute('data-status', 'skipped');
  await expect(page.getByRole('button', { name: 'Cancel' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Retry' })).toBeVisible();
  const now = await page.getByRole('progressbar').getAttribute('aria-valuenow');
  expect(now, 'the bar states its value').toMatch(/^\d+$/);
  const done = Number(now);
  expect(done).toBeLessThan(100);
  await shot(page, testInfo);
});

test('a failing model shows the error, and Retry starts a new run that completes', async ({ page }, testInfo) => {
  const first = await startRun(page, { symbol: 'NFLX', model: 'flaky', analysts: ['Risk Analyst'] });
  await expectStatus(page, 'failed', 60_000);
  const error = page.getByTestId('run-error');
  await expect(error).toContainText('The analysis failed');
  await expect(error).toContainText('Risk Analyst (flaky): the model provider failed (500)');
  await expect(error).toContainText('The provider may be down; try again later.');
  await expect(step(page, 'Risk Analyst')).toHaveAttribute('data-status', 'failed');
  await shot(page, testInfo, 'failed');

  await page.getByRole('button', { name: 'Retry' }).click();
  await expect(page).not.toHaveURL(new RegExp(`/runs/${first}$`));
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await expect(page.locator('.run-header')).toContainText(`retry of ${first.slice(0, 8)}`);
  await expectStatus(page, 'completed', 60_000);
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  await shot(page, testInfo);
});

test('a fourth concurrent run is refused with the per-user limit', async ({ page }, testInfo) => {
  await page.goto('/');
  await hydrated(page);
  // Three runs of a few seconds each, started through the API with this page's session.
  for (const symbol of ['AAPL', 'MSFT', 'NVDA']) {
    expect((await page.request.post('/api/trading/run', { data: { symbol } })).status()).toBe(202);
  }
  await page.getByLabel('Symbol').fill('AMZN');
  await page.getByRole('button', { name: 'Run analysis' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('Too many active runs');
  await expect(alert).toContainText('You already have 3 analyses running or queued');
  await expect(page).toHaveURL(/\/$/);
  await shot(page, testInfo);
});

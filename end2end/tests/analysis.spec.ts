import { test, expect, Page } from '@playwright/test';

/** Waits until the WASM has hydrated the server-rendered page. */
async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

test('an analysis of AAPL runs from the form to the final assessment', async ({ page }, testInfo) => {
  const consoleErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'New analysis' })).toBeVisible();
  await hydrated(page);

  await page.getByLabel('Symbol').fill('AAPL');
  // Every analyst is ticked by default; the default model is the offline one.
  for (const name of ['Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
    await expect(page.getByRole('checkbox', { name: new RegExp(name) })).toBeChecked();
  }
  await page.getByRole('button', { name: 'Run analysis' }).click();

  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  const steps = page.locator('ol.steps > li');
  await expect(steps).toHaveCount(6);

  // An intermediate state: some step in progress while the final assessment still waits.
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  await expect(page.locator('li.step[data-step="Final Assessment"]')).toHaveAttribute('data-status', 'pending');
  const bar = page.getByRole('progressbar', { name: 'Analysis progress' });
  const midway = Number(await bar.getAttribute('aria-valuenow'));
  expect(midway).toBeGreaterThanOrEqual(0);
  expect(midway).toBeLessThan(100);

  // Then every step completes and the assessment appears.
  for (const name of ['Data Collection', 'Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst', 'Final Assessment']) {
    await expect(page.locator(`li.step[data-step="${name}"]`)).toHaveAttribute('data-status', 'completed', { timeout: 60_000 });
  }
  await expect(bar).toHaveAttribute('aria-valuenow', '100');
  const result = page.getByTestId('result');
  await expect(result).toBeVisible();
  await expect(page.getByTestId('rating')).toContainText(/Buy|Overweight|Hold|Underweight|Sell/);
  await expect(page.getByTestId('summary')).toContainText('AAPL as of 2023-09-21');
  await expect(result.locator('article.analyst-card')).toHaveCount(4);
  await expect(result.locator('figure.chart svg polyline.close')).toHaveCount(1);

  // A reload picks the finished run up from its URL.
  await page.reload();
  await expect(page.getByTestId('rating')).toContainText(/Buy|Overweight|Hold|Underweight|Sell/);

  await page.screenshot({ path: testInfo.outputPath('final.png'), fullPage: true });
  expect(consoleErrors).toEqual([]);
});

import { test, expect } from '@playwright/test';
import { VIEWPORTS, expectNoClipping, shot } from './helpers';

// A small backtest from the form to its scorecard: the grid fills in as the cell runs finish,
// then the per-rating table, the strategy against its baselines, and the equity chart. The
// page has no island: it refreshes itself while the backtest runs, scripts or not.

const RATING = /^(Buy|Overweight|Hold|Underweight|Sell)$/;

test('a small backtest from the form to the scorecard and its chart', async ({ page }, testInfo) => {
  await page.goto('/backtests');
  await page.getByLabel('Symbols').fill('AAPL, NVDA');
  await page.getByLabel('From').fill('2019-01-02');
  await page.getByLabel('To').fill('2019-04-30');
  await page.getByLabel('Step (trading days)').fill('20');
  await page.getByLabel('Horizons (trading days)').fill('5, 20');
  await page.getByRole('button', { name: 'Run backtest' }).click();

  await expect(page).toHaveURL(/\/backtests\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop()!;
  await expect(page.locator('.backtest-status')).toHaveAttribute('data-status', 'completed', { timeout: 120_000 });

  // The page and the API tell the same story: every cell rated and linked to its run.
  const view = await (await page.request.get(`/api/trading/backtests/${id}`)).json();
  expect(view.status).toBe('completed');
  expect(view.spec.symbols).toEqual(['AAPL', 'NVDA']);
  // Two symbols × the as-of dates 20 trading days apart from January to April 2019.
  expect(view.cells.length).toBe(2 * 5);
  const cells = page.locator('table.backtest-grid td.cell');
  await expect(cells).toHaveCount(view.cells.length);
  for (const c of view.cells) {
    expect(c.rating).toMatch(RATING);
    await expect(page.locator(`table.backtest-grid a[href="/runs/${c.runId}"]`)).toHaveText(c.rating);
  }

  // The per-rating table counts every cell once per horizon.
  for (const horizon of ['5 d', '20 d']) {
    const rows = page.locator('table.by-rating tbody tr').filter({ has: page.getByRole('cell', { name: horizon, exact: true }) });
    const counts = await rows.locator('td:nth-child(3)').allTextContents();
    const numbers = counts.map((t) => Number(/^\d+/.exec(t)?.[0]));
    expect(numbers.reduce((a, b) => a + b, 0)).toBe(view.cells.length);
    // Ten cells are the fewest a rating is judged by; below that the count says so.
    numbers.forEach((n, i) => expect(counts[i].includes('too few to judge')).toBe(n < 10));
  }
  const strategy = page.locator('table.strategy tbody tr');
  await expect(strategy).toHaveCount(4);
  await expect(strategy.first().locator('th')).toHaveText('Ratings strategy');

  // The chart: the strategy and its three baselines, one line each.
  const chart = page.locator('svg.equity-chart');
  await expect(chart).toBeVisible();
  await expect(chart.locator('polyline')).toHaveCount(4);

  // The cells as CSV: a header and a line per cell.
  const csv = await (await page.request.get(`/backtests/${id}/cells.csv`)).text();
  expect(csv.trim().split('\n')).toHaveLength(view.cells.length + 1);

  // The grid and the scorecard fit a desktop and a phone: nothing clipped, nothing to scroll
  // sideways (on a phone each row is a card of labelled fields).
  for (const [name, viewport] of VIEWPORTS) {
    await page.setViewportSize(viewport);
    await expectNoClipping(page);
    await expect(page.getByTestId('strategy-verdict')).toContainText(/Following the ratings returned .* against Buy & Hold's/);
    await page.screenshot({ path: testInfo.outputPath(`backtest-${name}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });

  // A cell's link opens its run.
  await page.locator('table.backtest-grid td.cell a').first().click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await shot(page, testInfo, 'backtest-cell');
});

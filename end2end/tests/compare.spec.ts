import { test, expect, Page } from '@playwright/test';
import { RATINGS, VIEWPORTS, expectNoClipping, shot } from './helpers';

// The history as a tool, with JavaScript off: search it with the plain GET form (the filters
// stay in the address and in the form), tick two runs and compare them side by side, download
// the comparison; and, on a run's page, download its report as Markdown.

/** Starts runs through the API with the page's session, one after the other (an identity has a
 *  limit of active runs), each to its end; returns their ids. */
async function finishedRuns(page: Page, runs: { symbol: string; asOf?: string; depth?: string }[]) {
  const ids: string[] = [];
  for (const r of runs) {
    const resp = await page.request.post('/api/trading/run', {
      data: { symbol: r.symbol, asOf: r.asOf, depth: r.depth ?? 'quick', analysts: ['risk', 'technical'] },
    });
    expect(resp.status()).toBe(202);
    const id = (await resp.json()).runId as string;
    await expect
      .poll(async () => (await (await page.request.get(`/api/trading/progress/${id}`)).json()).status, {
        timeout: 60_000,
      })
      .toBe('completed');
    ids.push(id);
  }
  return ids;
}

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('search the history, tick two runs and compare them', async ({ page }, testInfo) => {
    await page.goto('/');
    const [aapl, goog, nvda] = await finishedRuns(page, [
      { symbol: 'AAPL', asOf: '2019-06-03' },
      { symbol: 'GOOG', asOf: '2016-06-01', depth: 'standard' },
      { symbol: 'NVDA', asOf: '2021-06-01' },
    ]);

    // The search form is a plain GET form: the filter lands in the address and stays in the form.
    await page.goto('/runs');
    const rows = page.locator('table.history tbody tr');
    await expect(rows).toHaveCount(3);
    await page.getByLabel('Symbol').fill('goog');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page).toHaveURL(/[?&]symbol=goog/);
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toHaveAttribute('data-run', goog);
    await expect(page.getByLabel('Symbol')).toHaveValue('goog');
    // Each row says how the run turned out: these are as of days whose 20 days are in the data.
    await expect(rows.first().locator('td.outcome')).toContainText(/5 d [+-]\d+\.\d\d%/);
    await expect(rows.first().locator('td.outcome')).toContainText(/20 d [+-]\d+\.\d\d%/);

    await page.getByRole('link', { name: 'Clear' }).click();
    await expect(rows).toHaveCount(3);
    await page.getByLabel('Order').selectOption('-return');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page).toHaveURL(/[?&]sort=-return/);
    const listed = await page.request.get('/api/trading/runs?sort=-return');
    const order = (await listed.json()).runs.map((r: { runId: string }) => r.runId);
    await expect(rows).toHaveCount(3);
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run')))).toEqual(order);
    for (const [name, size] of VIEWPORTS) {
      await page.setViewportSize(size);
      await shot(page, testInfo, `history-${name}`);
    }
    await page.setViewportSize(VIEWPORTS[0][1]);

    // Tick two, compare.
    await page.locator(`tr[data-run="${aapl}"] input[type=checkbox]`).check();
    await page.locator(`tr[data-run="${nvda}"] input[type=checkbox]`).check();
    await page.getByRole('button', { name: 'Compare ticked' }).click();
    await expect(page).toHaveURL(new RegExp(`/compare\\?runs=${aapl}&runs=${nvda}|/compare\\?runs=${nvda}&runs=${aapl}`));
    const table = page.locator('table.compare');
    await expect(table.locator('thead')).toContainText('AAPL');
    await expect(table.locator('thead')).toContainText('NVDA');
    const symbolRow = table.locator('tr[data-field="Symbol"]');
    await expect(symbolRow).toHaveClass(/differs/);
    await expect(symbolRow.locator('.differs-mark')).toHaveText('≠');
    await expect(table.locator('tr[data-field="Model"]')).not.toHaveClass(/differs/);
    await expect(table.locator('tr[data-field="Rating"] td').first()).toHaveText(RATINGS);
    for (const [name, size] of VIEWPORTS) {
      await page.setViewportSize(size);
      await expectNoClipping(page);
      await shot(page, testInfo, `compare-${name}`);
    }

    // The comparison as CSV: the same rows.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download as CSV' }).click(),
    ]);
    const csv = await (await download.createReadStream()).toArray().then((c) => Buffer.concat(c).toString('utf8'));
    const lines = csv.trim().split('\n');
    expect(lines[0]).toMatch(/^section,field,[0-9a-f-]{36},[0-9a-f-]{36},differs$/);
    expect(lines.length - 1).toBe(await table.locator('tbody tr[data-field]').count());
    expect(lines).toContainEqual(expect.stringMatching(/^settings,Symbol,(AAPL,NVDA|NVDA,AAPL),true$/));

    // One run alone cannot be compared: the page says what to do.
    await page.goto(`/compare?runs=${aapl}`);
    await expect(page.getByRole('alert')).toContainText('pick 2 to 4 runs');
  });
});

test('download a run as a Markdown report', async ({ page }) => {
  await page.goto('/');
  const [id] = await finishedRuns(page, [{ symbol: 'AAPL', asOf: '2019-06-03' }]);
  await page.goto(`/runs/${id}`);
  const rating = (await page.getByTestId('rating').innerText()).match(RATINGS)![0];
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Markdown', exact: true }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('AAPL-2019-06-03.md');
  const md = await (await download.createReadStream()).toArray().then((c) => Buffer.concat(c).toString('utf8'));
  expect(md).toContain(`# AAPL as of 2019-06-03: ${rating}`);
  expect(md).toContain(`| Run | \`${id}\` |`);
  expect(md).toContain('## Plan');
  expect(md).toContain('## Model calls');
  const log = await (await page.request.get(`/api/trading/runs/${id}/log`)).json();
  const calls = log.entries.filter((e: { kind: string }) => e.kind === 'call').length;
  expect(calls).toBeGreaterThan(0);
  expect(md).toContain(`| **${calls} calls** |`);
});

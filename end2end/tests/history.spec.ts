import { test, expect } from '@playwright/test';
import { shot } from './helpers';

test('history lists your runs, filters them by status, and links to them', async ({ page }, testInfo) => {
  // Start runs through the API with the page's own session.
  await page.goto('/');
  const ids: string[] = [];
  for (const symbol of ['IBM', 'MSFT']) {
    const resp = await page.request.post('/api/trading/run', { data: { symbol, analysts: ['risk'] } });
    expect(resp.status()).toBe(202);
    ids.push((await resp.json()).runId);
  }
  const cancel = await page.request.post(`/api/trading/cancel/${ids[1]}`);
  expect([200, 202]).toContain(cancel.status());
  await expect
    .poll(async () => (await (await page.request.get(`/api/trading/progress/${ids[1]}`)).json()).status)
    .toBe('cancelled');

  // Plain server-rendered HTML: no island, nothing to hydrate.
  await page.goto('/runs');
  const rows = page.locator('table.history tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText('MSFT');
  await expect(page.locator('.pager')).toContainText('2 runs');

  await page.getByRole('link', { name: 'Cancelled', exact: true }).click();
  await expect(page).toHaveURL(/status=cancelled/);
  await expect(page.locator('.filters [aria-current="page"]')).toHaveText(['Cancelled']);
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('MSFT');

  await page.getByRole('link', { name: 'All', exact: true }).click();
  await expect(rows).toHaveCount(2);
  await rows.filter({ hasText: 'IBM' }).getByRole('link', { name: 'IBM' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${ids[0]}$`));
  await shot(page, testInfo);
});

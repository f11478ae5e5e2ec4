import { test, expect } from '@playwright/test';
import { expectStatus, shot, startRun } from './helpers';

test('markup in a model answer is shown as text and never runs', async ({ page }, testInfo) => {
  const dialogs: string[] = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await startRun(page, { symbol: 'AAPL', model: 'hostile', analysts: ['Invest Analyst'] });
  await expectStatus(page, 'completed', 60_000);
  const card = page.locator('article.analyst-card[data-analyst="invest"]');
  await expect(card).toContainText('<script>window.__pwned = 1</script>');
  await expect(card).toContainText('<img src=x onerror="window.__pwned = 2">');
  await expect(page.getByTestId('summary')).toContainText('<script>');
  await expect(page.locator('.result script, .result img')).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
  // And after a reload, when the page is rendered on the server.
  await page.reload();
  await expect(card).toContainText('<img src=x onerror="window.__pwned = 2">');
  await expect(page.locator('.result script, .result img')).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
  expect(dialogs).toEqual([]);
  await shot(page, testInfo);
});

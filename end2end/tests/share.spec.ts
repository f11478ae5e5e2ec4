import { test, expect } from '@playwright/test';
import { RATINGS, expectStatus, shot, startRun } from './helpers';

test('a read-only link is made, copied whole to the clipboard, and opens the run for a stranger', async ({ page, context, browser }, testInfo) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const id = await startRun(page, { symbol: 'NVDA', analysts: ['Risk Analyst'] });
  await expectStatus(page, 'completed');
  await page.getByRole('button', { name: 'Make a read-only link' }).click();
  // The field holds the whole address once the page's script runs, not only the path.
  const address = page.getByTestId('share-address');
  await expect(address).toHaveValue(new RegExp(`^${new URL(page.url()).origin}/share/[A-Za-z0-9_-]{20,}$`));
  const link = await address.inputValue();
  await page.getByTestId('copy-link').click();
  await expect(page.getByTestId('copy-status')).toHaveText('Copied.');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(link);
  await shot(page, testInfo, 'link');

  // Back on the run page the link is listed by when it was made, never by its address.
  await page.goto(`/runs/${id}`);
  await expect(page.getByTestId('share-list').locator('li')).toHaveCount(1);
  await expect(page.getByTestId('share-list')).not.toContainText(link.split('/share/')[1]);

  // A stranger with the address reads the run, and cannot cancel or retry it.
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(link);
  await expect(other.getByTestId('rating')).toContainText(RATINGS);
  await expect(other.getByRole('button', { name: /Cancel|Retry/ })).toHaveCount(0);
  await stranger.close();
});

test('where the page may not write the clipboard, the button selects the address to copy by hand', async ({ page }) => {
  await startRun(page, { symbol: 'MSFT', analysts: ['Risk Analyst'] });
  await expectStatus(page, 'completed');
  await page.getByRole('button', { name: 'Make a read-only link' }).click();
  // The island has run once the field holds the whole address.
  await expect(page.getByTestId('share-address')).toHaveValue(/^http:\/\//);
  // No clipboard permission: writing is refused, so the page must not claim it copied.
  await page.evaluate(() => {
    Object.defineProperty(navigator, 'clipboard', {
      value: { writeText: () => Promise.reject(new DOMException('denied', 'NotAllowedError')) },
    });
  });
  await page.getByTestId('copy-link').click();
  await expect(page.getByTestId('copy-status')).toHaveText(/^Selected: press Ctrl\+C/);
  const selected = await page.evaluate(() => {
    const input = document.getElementById('share-address') as HTMLInputElement;
    return input.value.substring(input.selectionStart ?? 0, input.selectionEnd ?? 0);
  });
  expect(selected).toBe(await page.getByTestId('share-address').inputValue());
});

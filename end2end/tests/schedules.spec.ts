import { test, expect } from '@playwright/test';
import { VIEWPORTS, expectNoClipping, shot } from './helpers';

// Schedules with JavaScript off: made with the plain form (refused first, with what was typed
// kept), paused, resumed and deleted with plain buttons.

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('create, pause and delete a schedule', async ({ page }, testInfo) => {
    await page.goto('/schedules');
    await expect(page.getByRole('heading', { name: 'Schedules', exact: true })).toBeVisible();
    await expect(page.getByText('No schedules yet.')).toBeVisible();

    const form = page.locator('form[action="/schedules"]');
    await form.getByLabel('Name').fill('Morning tech');
    await form.getByLabel('Symbols').fill('AAPL, NVDA, TSLA');
    await form.getByLabel('Cron').fill('30 8 * * MON-FRI');
    await form.getByLabel('Time zone').fill('America/New_York');
    await form.getByRole('button', { name: 'Create schedule' }).click();
    // Refused: TSLA has no data; the form keeps what was typed.
    await expect(page.getByRole('alert').first()).toContainText('TSLA: no market data');
    await expect(form.getByLabel('Symbols')).toHaveValue('AAPL, NVDA, TSLA');
    await expect(form.getByLabel('Time zone')).toHaveValue('America/New_York');

    await form.getByLabel('Symbols').fill('AAPL, NVDA');
    await form.getByRole('button', { name: 'Create schedule' }).click();
    await expect(page).toHaveURL(/\/schedules$/);
    const item = page.locator('li.schedule');
    await expect(item).toHaveCount(1);
    await expect(item.getByRole('heading', { name: 'Morning tech' })).toBeVisible();
    await expect(item).toContainText('AAPL, NVDA');
    await expect(item.locator('.schedule-when')).toContainText(/^Next: /);
    for (const [name, size] of VIEWPORTS) {
      await page.setViewportSize(size);
      await expectNoClipping(page);
      await shot(page, testInfo, `schedules-${name}`);
    }
    await page.setViewportSize(VIEWPORTS[0][1]);

    await item.getByRole('button', { name: 'Pause' }).click();
    await expect(item).toHaveAttribute('data-paused', 'true');
    await expect(item.locator('.schedule-when')).toHaveText('Paused');
    await item.getByRole('button', { name: 'Resume' }).click();
    await expect(item).toHaveAttribute('data-paused', 'false');
    await expect(item.locator('.schedule-when')).toContainText(/^Next: /);

    await item.getByRole('button', { name: 'Delete' }).click();
    await expect(page.getByText('No schedules yet.')).toBeVisible();
  });
});

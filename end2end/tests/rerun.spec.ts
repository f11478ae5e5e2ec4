import { test, expect } from '@playwright/test';
import { RATINGS, expectStatus, shot, startRun, step } from './helpers';

// A finished run's page reruns it from a stage: the steps before it are taken over (shown as
// "Reused", with no model call), the rest run anew.

test('a finished run is rerun from a stage, its earlier steps shown as reused', async ({ page }, testInfo) => {
  const source = await startRun(page, { symbol: 'AAPL', analysts: ['Risk Analyst'] });
  await expectStatus(page, 'completed', 60_000);
  await expect(page.getByTestId('steps-folded')).toBeAttached({ timeout: 20_000 });
  const report = (await page.locator('article.analyst-card[data-analyst="risk"]').innerText()).trim();

  const form = page.getByTestId('rerun-form');
  await expect(form.getByLabel('From')).toHaveValue('portfolio');
  await form.getByRole('button', { name: 'Rerun' }).click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  expect(page.url()).not.toContain(source);
  await expect(page.getByTestId('run-line')).toContainText(`rerun of ${source.slice(0, 8)} from portfolio`);

  // While it runs: the analyst is already done, taken over, and says from where.
  const risk = step(page, 'Risk Analyst');
  await expect(risk).toHaveAttribute('data-reused', 'true');
  await expect(risk.locator('.step-status')).toHaveText('Reused');
  await expect(risk.locator('.step-detail')).toHaveText(`Taken over from run ${source.slice(0, 8)}`);
  await expect(step(page, 'Data Collection')).toHaveAttribute('data-reused', 'true');
  await expect(step(page, 'Final Assessment')).not.toHaveAttribute('data-reused', /.*/);
  await shot(page, testInfo, 'rerun-running');

  await expectStatus(page, 'completed', 60_000);
  await expect(page.getByTestId('steps-folded')).toBeAttached({ timeout: 20_000 });
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  // The analyst's report is the source's, word for word.
  expect((await page.locator('article.analyst-card[data-analyst="risk"]').innerText()).trim()).toBe(report);
  // The log says what was taken over; one model call was made.
  const log = page.getByTestId('run-log');
  await log.locator('summary').click();
  await expect(log.locator('li[data-kind="reused"]')).toContainText(
    `Taken over from run ${source.slice(0, 8)}, not run again: Data Collection, Risk Analyst`);
  await expect(log.locator('li[data-kind="call"]')).toHaveCount(1);
  await shot(page, testInfo);

  // Printed, the page is the report: no navigation, forms or folded steps; the verdict, the
  // plan and the chart kept.
  await page.emulateMedia({ media: 'print' });
  await expect(page.locator('.site-header nav')).toBeHidden();
  await expect(page.getByTestId('rerun-form')).toBeHidden();
  await expect(page.getByTestId('run-log')).toBeHidden();
  for (const f of await page.locator('form').all()) await expect(f).toBeHidden();
  await expect(page.getByTestId('rating')).toBeVisible();
  await expect(page.getByTestId('plan-line')).toBeVisible();
  await expect(page.locator('svg').first()).toBeVisible();
  await shot(page, testInfo, 'printed');
});

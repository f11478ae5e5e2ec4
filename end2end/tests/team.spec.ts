import { test, expect } from '@playwright/test';
import { expectStatus, hydrated, shot, step } from './helpers';

test('a standard run is shown grouped by team, then its transcript and trader plan', async ({ page }, testInfo) => {
  await page.goto('/');
  await hydrated(page);
  await page.getByLabel('Symbol').fill('MSFT');
  for (const name of ['Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
    await page.getByRole('checkbox', { name: new RegExp(name) }).uncheck();
  }
  const managers = page.getByLabel('Research and portfolio managers');
  await expect(managers).toBeHidden();
  await page.getByLabel('Research depth').selectOption('standard');
  await expect(managers).toBeVisible();
  await page.getByRole('button', { name: 'Run analysis' }).click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await hydrated(page);

  // The live view groups the steps by team, like TradingAgents' status table.
  await expect(page.locator('section.team h3.team-name')).toHaveText(['Analysts', 'Research', 'Trading', 'Risk', 'Portfolio']);
  await expect(page.locator('section.team[data-team="Research"] li.step')).toHaveCount(3);
  await expect(page.locator('section.team[data-team="Risk"] li.step')).toHaveCount(3);
  // A debate step says its round while it runs.
  await expect(step(page, 'Bull Researcher')).toHaveAttribute('data-status', 'in-progress', { timeout: 30_000 });
  await expect(step(page, 'Bull Researcher').locator('.step-detail')).toContainText('round 1 of 1');
  await expectStatus(page, 'completed', 80_000);

  // The result: the debate as a transcript per round, the verdict, the plan, the risk debate.
  await expect(page.getByTestId('team')).toBeVisible();
  await expect(page.getByTestId('debate').locator('.round h4')).toHaveText(['Round 1 of 1']);
  await expect(page.getByTestId('debate').locator('article.turn')).toHaveCount(2);
  await expect(page.getByTestId('verdict')).toContainText(/Buy|Hold|Sell/);
  await expect(page.getByTestId('trade-plan')).toContainText("Trader's proposal");
  // The plan: one line, and a table whose size is to one decimal.
  await expect(page.getByTestId('plan-line')).toHaveText(/^(Long|Short) at [\d,]+\.\d\d, stop|^Flat: no position/);
  await expect(page.getByTestId('plan-size')).toHaveText(/^\d+\.\d%$/);
  await expect(page.getByTestId('risk-debate').locator('article.turn')).toHaveCount(3);
  await expect(page.getByTestId('decision')).toContainText('Portfolio Manager');

  await page.goto('/runs');
  await expect(page.locator('table.history tbody tr').first().locator('td.depth')).toHaveText('standard');
  await shot(page, testInfo);
});

import { expect, Page, TestInfo } from '@playwright/test';

export const RATINGS = /Buy|Overweight|Hold|Underweight|Sell/;
export const STEPS = ['Data Collection', 'Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst', 'Final Assessment'];

/** Waits until the WASM has hydrated the server-rendered page. */
export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

export interface RunOptions {
  symbol?: string;
  model?: string;
  analysts?: string[]; // step names to keep ticked; default all
  depth?: 'quick' | 'standard' | 'deep';
}

/** Fills the form on `/` and starts a run; returns its id once the run page shows. */
export async function startRun(page: Page, opts: RunOptions = {}): Promise<string> {
  await page.goto('/');
  await hydrated(page);
  await page.getByLabel('Symbol').fill(opts.symbol ?? 'AAPL');
  if (opts.model) {
    await page.getByLabel('Model').selectOption(opts.model);
  }
  if (opts.depth) {
    await page.getByLabel('Research depth').selectOption(opts.depth);
  }
  if (opts.analysts) {
    for (const name of ['Invest Analyst', 'Risk Analyst', 'Sentiment Analyst', 'Technical Analyst']) {
      const box = page.getByRole('checkbox', { name: new RegExp(name) });
      if (opts.analysts.includes(name)) await box.check();
      else await box.uncheck();
    }
  }
  await page.getByRole('button', { name: 'Run analysis' }).click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await hydrated(page);
  return page.url().split('/').pop()!;
}

export function step(page: Page, name: string) {
  return page.locator(`li.step[data-step="${name}"]`);
}

export async function expectStatus(page: Page, status: string, timeout = 60_000) {
  await expect(page.locator('section.progress-card')).toHaveAttribute('data-status', status, { timeout });
}

/** The final state of every test goes to end2end/test-results. */
export async function shot(page: Page, testInfo: TestInfo, name = 'final') {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}

/** No table, nor the box around one, nor the page, is wider than the room it has: nothing
 *  is clipped or scrolled sideways. */
export async function expectNoClipping(page: Page) {
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('table, .table-wrap, body')]
      .filter((e) => e.scrollWidth > e.clientWidth + 1)
      .map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}: ${e.scrollWidth} > ${e.clientWidth}`),
  );
  expect(wide, 'elements wider than their room').toEqual([]);
}

export const VIEWPORTS = [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]] as const;

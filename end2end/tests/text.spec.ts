import { test, expect, Page } from '@playwright/test';
import { RATINGS, expectStatus, shot, startRun } from './helpers';

// The offline model writes each call's text in pieces over its simulated latency (3 s here).

/** Reads every running step's shown text, every 100 ms, until the run ends; returns, per step,
 *  the distinct non-empty texts it showed while running, in the order shown. */
async function watchTexts(page: Page, limitMs = 120_000): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>();
  const end = Date.now() + limitMs;
  for (;;) {
    // The page reloads itself once the run ends, to show the result the server renders.
    const read = await page.evaluate(() => ({
      status: document.querySelector('section.progress-card')?.getAttribute('data-status') ?? '',
      running: [...document.querySelectorAll('li.step[data-status="in-progress"]')].map((li) => [
        li.getAttribute('data-step') ?? '',
        li.querySelector('[data-testid="step-text"] p')?.textContent ?? '',
      ]),
    })).catch(() => null);
    if (read === null) {
      await page.waitForLoadState();
      continue;
    }
    const { status, running } = read;
    for (const [name, text] of running) {
      const texts = seen.get(name) ?? [];
      if (text.trim() !== '' && texts[texts.length - 1] !== text) texts.push(text);
      seen.set(name, texts);
    }
    if (['completed', 'failed', 'cancelled', 'timeout'].includes(status)) return seen;
    expect(Date.now(), 'the run ended in time').toBeLessThan(end);
    await page.waitForTimeout(100);
  }
}

/** The stages of a step's text that grew: each later text begins with the one before it and is
 *  longer. Returns the longest such run of stages over all steps. */
function growingStages(seen: Map<string, string[]>): { step: string; stages: number } {
  let best = { step: '', stages: 0 };
  for (const [step, texts] of seen) {
    let stages = texts.length > 0 ? 1 : 0;
    for (let i = 1; i < texts.length; i++) {
      if (texts[i].length > texts[i - 1].length && texts[i].startsWith(texts[i - 1])) stages += 1;
    }
    if (stages > best.stages) best = { step, stages };
  }
  return best;
}

test('over the live stream a running step shows its text growing before it completes', async ({ page }, testInfo) => {
  await startRun(page, { symbol: 'AAPL', analysts: ['Risk Analyst'] });
  await expect(page.getByTestId('transport')).toHaveText('Live');
  const seen = await watchTexts(page);
  await expectStatus(page, 'completed');
  const best = growingStages(seen);
  expect(best.stages, `stages seen per step: ${JSON.stringify([...seen].map(([s, t]) => [s, t.length]))}`)
    .toBeGreaterThanOrEqual(3);
  // The finished step shows its report, not the running text box.
  await expect(page.getByTestId('step-text')).toHaveCount(0);
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  // The run's log, folded under the steps: what was read, each call, the end.
  const log = page.getByTestId('run-log');
  await expect(log).not.toHaveAttribute('open');
  await log.locator('summary').click();
  await expect(log.locator('li[data-kind="data"]').first()).toContainText(/\d+ daily prices of AAPL from the bundled data, \d{4}-\d\d-\d\d to 2023-09-21/);
  await expect(log.locator('li[data-kind="call"]')).toHaveCount(2);
  await expect(log.locator('li[data-kind="call"]').first()).toHaveText(/offline answered in \d+(\.\d+)? s, first text after \d+(\.\d+)? s$/);
  await expect(log.locator('li[data-kind="ended"]')).toHaveText(/^\+\d+\.\d s\s*Completed \(2 model calls\)$/);
  await shot(page, testInfo);
});

test('with the stream blocked, polling shows the growing text too', async ({ page }, testInfo) => {
  await page.route('**/api/trading/events/**', (route) => route.abort('connectionrefused'));
  // A poll every 2 s sees a 3 s call once or twice: a deep run's debates take several rounds
  // in one step, long enough to be seen growing between polls.
  await startRun(page, { symbol: 'MSFT', analysts: ['Risk Analyst'], depth: 'deep' });
  await expect(page.getByTestId('transport')).toHaveText('Checking every 2 s');
  const seen = await watchTexts(page, 180_000);
  await expectStatus(page, 'completed');
  const best = growingStages(seen);
  expect(best.stages, `stages seen per step: ${JSON.stringify([...seen].map(([s, t]) => [s, t.length]))}`)
    .toBeGreaterThanOrEqual(2);
  await shot(page, testInfo);
});

test('a model that goes quiet is named, its silence counted, and the run can still be cancelled', async ({ page }, testInfo) => {
  await startRun(page, { symbol: 'AAPL', model: 'quiet', analysts: ['Risk Analyst'] });
  // The two pieces it wrote are shown, then, 3 s into the silence, who is silent and until when.
  const risk = page.locator('li.step[data-step="Risk Analyst"]');
  const stall = risk.getByTestId('step-stall');
  await expect(stall).toHaveText(/^No output from Quiet \(writes two pieces, then nothing\) for \d+ s — still waiting \(gives up at 60 s\)$/, { timeout: 20_000 });
  await expect(risk.getByTestId('step-text')).not.toHaveText('');
  // The seconds count on the page's own clock, between polls and events.
  const seconds = async () => Number((await stall.textContent())!.match(/for (\d+) s/)![1]);
  const first = await seconds();
  await expect.poll(seconds, { timeout: 10_000 }).toBeGreaterThanOrEqual(first + 2);
  // The run's log, opened, has the stall too, read again without a reload.
  const log = page.getByTestId('run-log');
  await log.locator('summary').click();
  await expect(log.locator('li[data-kind="stalled"]')).toHaveText(
    /Risk Analyst\s*No output from Quiet .* for a while; giving up at 60 s of silence/, { timeout: 10_000 });
  for (const [name, size] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]] as const) {
    await page.setViewportSize(size);
    await expect(stall).toBeVisible();
    await shot(page, testInfo, `stalled-${name}`);
  }
  // A stall does not hold the run: cancel ends it at once, and the log says it was cancelled.
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expectStatus(page, 'cancelled', 10_000);
  await expect(page.getByTestId('step-stall')).toHaveCount(0);
  await expect(log.locator('li[data-kind="cancelled"]')).toHaveCount(1, { timeout: 10_000 });
});

import { test, expect } from '@playwright/test';
import { POLL_PORT } from '../playwright.config';
import { hydrated } from './helpers';

// The second server's database is fresh until live.spec.ts (later in the alphabet, and the
// suite runs one file at a time) starts runs there: this run is its first, so its estimate
// comes from the catalog's expected call, not from history.
const BASE = `http://127.0.0.1:${POLL_PORT}`;

/** "about 12 s" → 12, "about 3 min" → 180; null for anything else ("taking longer…", "—"). */
function seconds(text: string): number | null {
  const m = text.match(/about (\d+) (s|min)/);
  if (!m) return null;
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

/** The error band of a shown estimate, as `domain::countdown::band` has it. */
const band = (left: number) => Math.max(2, left / 4);

test('the first run on a fresh database has an honest clock', async ({ page }, testInfo) => {
  await page.goto(`${BASE}/`);
  await hydrated(page);
  await page.getByLabel('Symbol').fill('MSFT');
  await page.getByRole('button', { name: 'Run analysis' }).click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  const runId = page.url().split('/').pop()!;

  // Read the clock and the current-step box about five times a second until the run ends.
  const samples: { at: number; eta: string; stepHeight: number }[] = [];
  const card = page.locator('section.progress-card');
  for (let i = 0; i < 600; i++) {
    const status = await card.getAttribute('data-status').catch(() => null);
    if (status === 'completed') break;
    const at = Date.now();
    const eta = await page.getByTestId('eta').innerText().catch(() => '');
    const box = await page.getByTestId('current-step').boundingBox().catch(() => null);
    if (status === 'running' && box) samples.push({ at, eta: eta.trim(), stepHeight: Math.round(box.height) });
    await page.waitForTimeout(200);
  }
  await expect(card).toHaveAttribute('data-status', 'completed', { timeout: 60_000 });
  const done = await (await page.request.get(`${BASE}/api/trading/progress/${runId}`)).json();
  const end = Date.parse(done.completedAt);
  testInfo.attach('samples.json', { body: JSON.stringify({ done: done.completedAt, samples }, null, 1), contentType: 'application/json' });

  const shown = samples.flatMap((s) => {
    const v = seconds(s.eta);
    return v === null ? [] : [{ at: s.at, v }];
  });
  expect(shown.length, 'the clock showed numbers while the run went').toBeGreaterThan(3);

  // Its first estimate is within a factor two of what was really left.
  const first = shown[0];
  const real = (end - first.at) / 1000;
  expect(first.v, `first estimate ${first.v} s against ${real.toFixed(1)} s really left`).toBeLessThanOrEqual(2 * Math.max(real, 1));
  expect(first.v).toBeGreaterThanOrEqual(real / 2);

  for (let i = 1; i < shown.length; i++) {
    const [a, b] = [shown[i - 1], shown[i]];
    // Never rises by more than its band: what it promised then, less the time since, plus
    // the band and a second of rounding.
    const promised = Math.max(0, a.v - Math.floor((b.at - a.at) / 1000));
    expect(b.v, `${a.v} s then ${b.v} s ${b.at - a.at} ms later`).toBeLessThanOrEqual(promised + band(a.v) + 1);
  }
  // Never sits on a number: a countdown in seconds moves on within a second or so (the
  // slack is for the sampling), and once its end has passed it shows no number at all.
  let run = 0;
  for (let i = 1; i < samples.length; i++) {
    const same = samples[i].eta === samples[i - 1].eta && seconds(samples[i].eta) !== null;
    run = same ? run + (samples[i].at - samples[i - 1].at) : 0;
    if (seconds(samples[i].eta)! < 60) {
      expect(run, `"${samples[i].eta}" shown for ${run} ms`).toBeLessThanOrEqual(2500);
    }
  }
  // The current-step box keeps one height whatever it holds.
  const heights = new Set(samples.map((s) => s.stepHeight));
  expect([...heights], 'the current-step area has a fixed height').toHaveLength(1);
  await page.screenshot({ path: testInfo.outputPath('finished.png') });
});

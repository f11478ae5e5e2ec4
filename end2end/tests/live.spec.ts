import { test, expect } from '@playwright/test';
import { RATINGS, expectStatus, shot, startRun, step } from './helpers';

const POLL_PORT = Number(process.env.E2E_PORT ?? 3100) + 2;

test('a run is followed live over Server-Sent Events, without polling', async ({ page }, testInfo) => {
  const streams: string[] = [];
  let polls = 0;
  page.on('request', (r) => {
    if (r.url().includes('/api/trading/events/')) streams.push(r.url());
    if (r.url().includes('/api/trading/progress/')) polls += 1;
  });
  const id = await startRun(page, { symbol: 'AAPL', analysts: ['Invest Analyst', 'Risk Analyst'] });
  await expect(page.getByTestId('transport')).toHaveText('Live');
  await expect(page.getByTestId('transport')).toHaveAttribute('data-mode', 'live');
  await expect(page.locator('li.step[data-status="in-progress"]').first()).toBeVisible();
  for (const name of ['Data Collection', 'Invest Analyst', 'Risk Analyst', 'Final Assessment']) {
    await expect(step(page, name)).toHaveAttribute('data-status', 'completed', { timeout: 60_000 });
  }
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  expect(streams).toContain(new URL(`/api/trading/events/${id}`, page.url()).toString());
  expect(polls).toBe(0);
  await shot(page, testInfo);
});

test('with the stream blocked the page falls back to polling and still reaches the result', async ({ page }, testInfo) => {
  await page.route('**/api/trading/events/**', (route) => route.abort('connectionrefused'));
  let polls = 0;
  page.on('request', (r) => { if (r.url().includes('/api/trading/progress/')) polls += 1; });
  await startRun(page, { symbol: 'MSFT', analysts: ['Technical Analyst'] });
  await expect(page.getByTestId('transport')).toHaveText('Checking every 2 s');
  await expectStatus(page, 'completed');
  await expect(page.getByTestId('rating')).toContainText(RATINGS);
  expect(polls).toBeGreaterThan(0);
  await shot(page, testInfo);
});

test.describe('with PROGRESS_TRANSPORT=poll', () => {
  test.use({ baseURL: `http://127.0.0.1:${POLL_PORT}` });

  test('the page polls and opens no stream', async ({ page }, testInfo) => {
    let streams = 0;
    let polls = 0;
    page.on('request', (r) => {
      if (r.url().includes('/api/trading/events/')) streams += 1;
      if (r.url().includes('/api/trading/progress/')) polls += 1;
    });
    await startRun(page, { symbol: 'NVDA', analysts: ['Risk Analyst'] });
    await expect(page.getByTestId('transport')).toHaveText('Checking every 2 s');
    await expectStatus(page, 'completed');
    await expect(page.getByTestId('rating')).toContainText(RATINGS);
    expect(streams).toBe(0);
    expect(polls).toBeGreaterThan(0);
    await shot(page, testInfo);
  });
});

import { test, expect, Page } from '@playwright/test';
import { RATINGS, VIEWPORTS, expectNoClipping, expectStatus, startRun } from './helpers';

/** The element's bottom edge lies within the first screen (no scrolling needed). */
async function inFirstScreen(page: Page, testId: string) {
  const box = await page.getByTestId(testId).boundingBox();
  const height = page.viewportSize()!.height;
  expect(box, `${testId} is on the page`).not.toBeNull();
  expect(box!.y + box!.height, `${testId} ends within the first ${height}px`).toBeLessThanOrEqual(height);
}

for (const [name, viewport] of VIEWPORTS) {
  test(`a finished run opens on its verdict and plan (${name})`, async ({ page }, testInfo) => {
    await page.setViewportSize(viewport);
    await startRun(page, { symbol: 'AAPL' });
    // The day the run is as of, from its first second: no date was asked for.
    await expect(page.getByTestId('run-line')).toContainText('as of 2023-09-21');
    await expectStatus(page, 'completed', 80_000);
    // The page reloads itself onto the result, at its top.
    await expect(page.getByTestId('steps-folded')).toBeAttached({ timeout: 20_000 });
    await expect(page.getByTestId('rating')).toContainText(RATINGS);
    await expect(page.evaluate(() => window.scrollY)).resolves.toBe(0);
    await inFirstScreen(page, 'rating');
    await inFirstScreen(page, 'plan-line');
    // The plan's numbers: its size to one decimal, the same in the summary.
    const line = (await page.getByTestId('plan-line').innerText()).trim();
    expect(line).toMatch(/^(Long|Short) at [\d,]+\.\d\d, stop [\d,]+\.\d\d, target [\d,]+\.\d\d, \d+\.\d% of the portfolio risking \d+\.\d\d%|^Flat: no position/);
    const quoted = line.charAt(0).toLowerCase() + line.slice(1);
    await expect(page.getByTestId('summary')).toContainText(quoted);
    await expect(page.getByTestId('plan-size')).toHaveText(/^\d+\.\d%$/);
    // The steps are folded under the result; the rule-based note is said once.
    await expect(page.locator('[data-testid="steps-folded"]')).not.toHaveAttribute('open', /.*/);
    await expect(page.getByText('Rule-based analysis by the offline model')).toHaveCount(1);
    // No table of the result is clipped or scrolls sideways.
    await expectNoClipping(page);
    await page.screenshot({ path: testInfo.outputPath(`first-screen-${name}.png`) });
    await page.screenshot({ path: testInfo.outputPath(`whole-${name}.png`), fullPage: true });
  });
}

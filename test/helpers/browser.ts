import { chromium, type Browser } from 'playwright-core';
import { ensureDebianPackages } from '../env/debian.js';
import { waitFor } from './cli.js';
import type { RunningDashboard } from './dashboard.js';

/** Debian's chromium, headless, driven by playwright-core (installed by the test setup if missing). */
export async function launchChromium(): Promise<Browser> {
  ensureDebianPackages(['chromium']);
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
}

/**
 * Opens the dashboard's jobs page in chromium through its login link and waits until the job's row shows
 * `state`; returns the row's text (its cluster, workers, ...).
 */
export async function jobRowOnPage(d: RunningDashboard, jobId: string, state: string, timeoutMs = 30_000): Promise<string> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(d.loginUrl);
    const row = page.locator(`tr[data-job-id="${jobId}"]`);
    await waitFor(`job ${jobId} ${state} on the dashboard's page`, async () => (await row.count()) > 0 && (await row.locator('[data-field="state"]').textContent())?.trim() === state, timeoutMs);
    return (await row.innerText()).replace(/\s+/g, ' ');
  } finally {
    await browser.close();
  }
}

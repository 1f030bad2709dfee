import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPackages } from '../env/debian.js';
import { jobIds, jobProcesses, makeJob, ROOT, runCli, startCli, tempHome, waitFor } from '../helpers/cli.js';
import { startDashboard, type RunningDashboard } from '../helpers/dashboard.js';

/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core. With
 * TWISTER2_SCREENSHOTS=docs the pictures the README shows are made again (docs/dashboard-*.png).
 */
const SHOTS = process.env.TWISTER2_SCREENSHOTS === 'docs' ? path.join(ROOT, 'docs') : mkdtempSync(path.join(os.tmpdir(), 't2-shots-'));

/** Workers 0-2 wait at barrier `sync` for worker 3, which arrives once `release` exists; all say what `say` holds; `stop` ends them. */
function browserJob(ctl: string): string {
  const worker = `import { existsSync, readFileSync } from 'node:fs';
const ctl = ${JSON.stringify(ctl)};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default async (ctx) => {
  console.log('worker ' + ctx.workerId + ' started');
  if (ctx.workerId === 3) while (!existsSync(ctl + '/release')) await sleep(100);
  if (ctx.workerId < 4) await ctx.barrier('sync');
  let said = '';
  while (!existsSync(ctl + '/stop')) {
    const say = existsSync(ctl + '/say') ? readFileSync(ctl + '/say', 'utf8') : '';
    if (say !== said) console.log('said: ' + (said = say));
    await sleep(100);
  }
};\n`;
  return makeJob({ name: 'dash-browser', workers: 4, worker: { module: 'w.mjs' }, timeouts: { barrier: '2m' } }, { 'w.mjs': worker });
}

describe('the dashboard in a real browser (chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    ensureDebianPackages(['chromium']);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  });
  afterAll(async () => browser?.close());

  it('a local job of 4 appears and turns RUNNING live; its page shows who a barrier waits for, follows a log, scales to 6 and kills it', async () => {
    const home = tempHome();
    const ctl = mkdtempSync(path.join(os.tmpdir(), 't2-ctl-'));
    const d: RunningDashboard = await startDashboard(home);
    const page: Page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const foreign: string[] = [];
    page.on('request', (r) => void (new URL(r.url()).origin !== d.url && foreign.push(r.url())));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    let cli: ReturnType<typeof startCli> | undefined;
    try {
      await page.goto(d.loginUrl);
      expect(new URL(page.url()).search).toBe(''); // the token left the address bar
      await page.locator('[data-page="jobs"]').waitFor();
      await page.evaluate('window.marker = 1'); // gone if the page reloads

      // A job that ended before, for the list (and the filters) to have more than one.
      const done = await runCli(['submit', makeJob({ name: 'dash-done', workers: 2, worker: { command: 'true' } })], home);
      expect(done.code, done.stderr).toBe(0);
      const doneId = jobIds(home)[0]!;
      await expectText(page.locator(`tr[data-job-id="${doneId}"] [data-field="state"]`), 'SUCCEEDED');

      cli = startCli(['submit', browserJob(ctl)], home);
      const jobId = await waitFor('the job', () => jobIds(home).find((id) => id !== doneId));
      const row = page.locator(`tr[data-job-id="${jobId}"]`);
      await expectText(row.locator('[data-field="state"]'), 'RUNNING');
      await expectText(row.locator('[data-field="workers"]'), '4/4');

      // The filters: by state, then back to all.
      await page.locator('[data-filter="state"]').selectOption('SUCCEEDED');
      await row.waitFor({ state: 'detached' });
      await page.locator(`tr[data-job-id="${doneId}"]`).waitFor();
      await page.locator('[data-filter="state"]').selectOption({ index: 0 });
      await row.waitFor();

      await row.locator(`a`).first().click();
      await page.locator(`[data-page="job"][data-job-id="${jobId}"]`).waitFor();
      for (const id of [0, 1, 2, 3]) await expectText(page.locator(`tr[data-worker-id="${id}"] [data-field="state"]`), 'RUNNING');
      const barrier = page.locator('[data-barrier="sync"]');
      await expectAttr(barrier, 'data-missing', '3');
      await expectAttr(barrier, 'data-arrived', '0,1,2');
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-job.png'), fullPage: true });
      writeFileSync(path.join(ctl, 'release'), '');
      await barrier.waitFor({ state: 'detached' });

      // The log tail follows: a line a worker prints now shows up without any action in the page.
      await page.locator('[data-log-worker]').selectOption('1');
      await expectContains(page.locator('[data-log]'), 'worker 1 started');
      const said = `hello ${Date.now()}`;
      const t0 = Date.now();
      writeFileSync(path.join(ctl, 'say'), said);
      await expectContains(page.locator('[data-log]'), `said: ${said}`);
      console.log(`dashboard log tail: the worker's line showed ${Date.now() - t0} ms after it was asked for (the worker polls every 100 ms)`);

      await page.locator('[data-action="scale"]').click();
      await page.locator('[data-scale-input]').fill('6');
      await page.locator('dialog[open] [data-confirm]').click();
      for (const id of [4, 5]) await expectText(page.locator(`tr[data-worker-id="${id}"] [data-field="state"]`), 'RUNNING');
      await page.locator('[data-chart="running"]').waitFor();

      // The jobs page, and both at a phone's width: nothing wider than the screen but the tables' own scrolling.
      await page.locator('a[href="/"]').first().click();
      await expectText(page.locator(`tr[data-job-id="${jobId}"] [data-field="workers"]`), '6/6');
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-jobs.png') });
      await page.setViewportSize({ width: 375, height: 800 });
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
      await page.goBack();
      await page.locator(`[data-page="job"][data-job-id="${jobId}"]`).waitFor();
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
      await page.locator('[data-action="kill"]').scrollIntoViewIfNeeded();
      await page.setViewportSize({ width: 1280, height: 900 });

      await page.locator('[data-action="kill"]').click();
      await page.locator('dialog[open] [data-confirm]').click();
      await expectText(page.locator('[data-field="job-state"]'), 'KILLED');
      expect(await cli.closed).toBe(3);
      expect(await page.evaluate('window.marker')).toBe(1);
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
      expect(jobProcesses(jobId)).toEqual([]);
    } finally {
      mkdirSync(ctl, { recursive: true });
      writeFileSync(path.join(ctl, 'stop'), '');
      cli?.kill('SIGKILL');
      await page.close();
      await d.stop();
    }
  });
});

async function expectText(loc: import('playwright-core').Locator, text: string): Promise<void> {
  await waitFor(`"${text}" in ${loc.toString()}`, async () => ((await loc.count()) > 0 && (await loc.first().textContent())?.trim() === text) || undefined, 20_000);
}

async function expectContains(loc: import('playwright-core').Locator, text: string): Promise<void> {
  await waitFor(`"${text}" in ${loc.toString()}`, async () => ((await loc.count()) > 0 && (await loc.first().textContent())?.includes(text)) || undefined, 20_000);
}

async function expectAttr(loc: import('playwright-core').Locator, name: string, value: string): Promise<void> {
  await waitFor(`${name}="${value}" on ${loc.toString()}`, async () => ((await loc.count()) > 0 && (await loc.first().getAttribute(name)) === value) || undefined, 20_000);
}

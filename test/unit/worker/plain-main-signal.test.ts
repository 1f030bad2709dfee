import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const PLAIN_MAIN = fileURLToPath(new URL('../../../src/worker/plain-main.ts', import.meta.url));

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

describe('a rank of a job without a job master (plain-main)', () => {
  // mpirun SIGTERMs every rank as soon as one fails; a rank still fetching the package must still
  // release its hold on the host's scratch dir, or the last one leaves the dir behind.
  it('SIGTERMed while it fetches the package: exits 143 and its scratch dir is gone', async () => {
    let asked = false;
    const hanging = http.createServer(() => (asked = true)); // takes the request, never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => {
      hanging.closeAllConnections();
      hanging.close();
    });
    const root = mkdtempSync(path.join(os.tmpdir(), 't2-plain-'));
    cleanup.push(() => rmSync(root, { recursive: true, force: true }));
    const workDir = path.join(root, 'job');
    const ref = { kind: 'http', url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/pkg`, sha256: '0'.repeat(64), size: 10 };
    const rank = spawn(process.execPath, ['--import', 'tsx', PLAIN_MAIN], {
      stdio: 'ignore',
      env: {
        ...process.env,
        TWISTER2_JOB_ID: 'plain-signal',
        TWISTER2_WORKER_ID: '0',
        TWISTER2_PACKAGE_REF: JSON.stringify(ref),
        TWISTER2_WORK_DIR: workDir,
        TWISTER2_WORK_DIR_SCRATCH: '1',
      },
    });
    cleanup.push(() => rank.kill('SIGKILL'));
    const exited = new Promise<number | string | null>((resolve) => rank.once('exit', (code, signal) => resolve(code ?? signal)));
    const holds = () => (existsSync(path.join(workDir, '.live')) ? readdirSync(path.join(workDir, '.live')) : []);
    await expect.poll(holds, { timeout: 30_000, interval: 50 }).toHaveLength(1);
    // Once the download is under way: before, the rank may still be loading the HTTP client, which under
    // tsx takes its esbuild child, and the stop ends that child too (the rank then exits 143 all the same,
    // see plain-main.ts, but this test is about a rank stopped while it fetches).
    await expect.poll(() => asked, { timeout: 30_000, interval: 20 }).toBe(true);
    rank.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(existsSync(workDir)).toBe(false);
  });
});

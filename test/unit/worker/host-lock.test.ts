import { mkdtempSync, writeFileSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordFailure, runOncePerHost } from '../../../src/worker/fetch/host-lock.js';

const dir = () => mkdtempSync(path.join(os.tmpdir(), 't2-lock-'));

describe('runOncePerHost', () => {
  it('lets exactly one of many concurrent callers do the work; the others see it done', async () => {
    const d = dir();
    let done = false;
    let workers = 0;
    const attempt = async () => {
      const o = await runOncePerHost(path.join(d, 'l'), path.join(d, 'f'), async () => done, 5000);
      if (!o.held) return 'waited';
      workers++;
      await new Promise((r) => setTimeout(r, 100));
      done = true;
      await o.release();
      return 'worked';
    };
    const results = await Promise.all(Array.from({ length: 8 }, attempt));
    expect(workers).toBe(1);
    expect(results.filter((r) => r === 'worked')).toHaveLength(1);
  });

  it('takes over the lock of a holder that died on this host', async () => {
    const d = dir();
    writeFileSync(path.join(d, 'l'), `999999999@${os.hostname()}`);
    const o = await runOncePerHost(path.join(d, 'l'), path.join(d, 'f'), async () => false, 2000);
    expect(o.held).toBe(true);
  });

  it("fails waiters with the holder's message, but ignores a failure from an earlier attempt", async () => {
    const d = dir();
    const lock = path.join(d, 'l');
    const failed = path.join(d, 'f');
    await recordFailure(failed, 'old failure');
    utimesSync(failed, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    writeFileSync(lock, `${process.pid}@${os.hostname()}`); // a live holder
    const waiting = runOncePerHost(lock, failed, async () => false, 5000);
    await new Promise((r) => setTimeout(r, 250));
    await recordFailure(failed, 'cannot fetch the job package from http://x: HTTP 503');
    await expect(waiting).rejects.toThrow('cannot fetch the job package from http://x: HTTP 503');
  });
});

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, expect, it } from 'vitest';
import { PodLogFollower } from '../../../../src/launchers/k8s/pod-logs.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** 40 KB of numbered lines: what the container printed. */
const LOG = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${String(i).padStart(4, '0')}\n`).join(''));

/**
 * The API server's log endpoint, scripted: a follow delivers the first 20 KB in one piece (more than the
 * log file's write buffer, so the follower waits for it to drain) and then 100 bytes more, which wait in
 * turn; a read without follow delivers the whole log at once.
 */
const api = {
  async log(_ns: string, _pod: string, _c: string, stream: Writable, opts: { follow?: boolean }) {
    if (opts.follow) {
      stream.write(LOG.subarray(0, 20_000));
      stream.write(LOG.subarray(20_000, 20_100));
    } else {
      stream.write(LOG);
      stream.end();
    }
    return new AbortController();
  },
};

it("writes a container's log exactly once when the job ends while the follow's last pieces still wait to be written", async () => {
  const logsDir = mkdtempSync(path.join(os.tmpdir(), 't2-podlogs-'));
  dirs.push(logsDir);
  const follower = new PodLogFollower(new KubeConfig(), 'ns', logsDir, () => undefined, false, api as never);
  follower.follow({ name: 'p-0', uid: 'u0' }, 'worker-0', 0, { workerId: 0 });
  await follower.close(); // the job ended: the follow is stopped while its last 100 bytes still wait
  expect(readFileSync(path.join(logsDir, 'worker-0.log')).equals(LOG)).toBe(true);
});

it('lets a follow that is still delivering run to the end before stopping it, when the pod is gone and its log can no longer be read', async () => {
  const logsDir = mkdtempSync(path.join(os.tmpdir(), 't2-podlogs-'));
  dirs.push(logsDir);
  // The follow is behind (its client was held up): the rest comes in 1 KB pieces after the job ended. A
  // stopped follow drops what is still on its way, and the pod is gone, so a read after it fails.
  const behind = {
    async log(_ns: string, _pod: string, _c: string, stream: Writable, opts: { follow?: boolean }) {
      if (!opts.follow) throw new Error('pods "p-0" not found');
      const ctl = new AbortController();
      stream.write(LOG.subarray(0, 20_000));
      let at = 20_000;
      const more = setInterval(() => {
        if (ctl.signal.aborted || at >= LOG.length) return clearInterval(more);
        stream.write(LOG.subarray(at, (at += 1000)));
      }, 20);
      return ctl;
    },
  };
  const follower = new PodLogFollower(new KubeConfig(), 'ns', logsDir, () => undefined, false, behind as never);
  follower.follow({ name: 'p-0', uid: 'u0' }, 'worker-0', 0, { workerId: 0 });
  await follower.close({ drain: true });
  expect(readFileSync(path.join(logsDir, 'worker-0.log')).equals(LOG)).toBe(true);
});

/** A container whose last line reaches its log `lateMs` after the job ended; a read sees the log as it is then. */
function lateLastLine(lateMs: number) {
  const start = Date.now();
  const cut = LOG.length - 10;
  const now = () => (Date.now() - start >= lateMs ? LOG : LOG.subarray(0, cut));
  return {
    async log(_ns: string, _pod: string, _c: string, stream: Writable, opts: { follow?: boolean }) {
      if (!opts.follow) {
        stream.write(now());
        stream.end();
        return new AbortController();
      }
      const ctl = new AbortController();
      stream.write(LOG.subarray(0, cut));
      setTimeout(() => ctl.signal.aborted || stream.write(LOG.subarray(cut)), lateMs);
      return ctl;
    },
  };
}

it('waits, while the pods still run, for a last line that reaches the container log after the job ended', async () => {
  const logsDir = mkdtempSync(path.join(os.tmpdir(), 't2-podlogs-'));
  dirs.push(logsDir);
  const follower = new PodLogFollower(new KubeConfig(), 'ns', logsDir, () => undefined, false, lateLastLine(200) as never);
  follower.follow({ name: 'p-0', uid: 'u0' }, 'worker-0', 0, { workerId: 0 });
  await follower.close({ drain: true, drainMaxMs: 5000 });
  expect(readFileSync(path.join(logsDir, 'worker-0.log')).equals(LOG)).toBe(true);
});

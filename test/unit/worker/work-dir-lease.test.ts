import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { removeUnlessHeld, WorkDirLease } from '../../../src/worker/work-dir-lease.js';

const scratch = () => path.join(mkdtempSync(path.join(os.tmpdir(), 't2-lease-')), 'job');
/** Another holder: a marker as WorkDirLease writes it, for a process of this or another host. */
const hold = (dir: string, host: string, pid: number) => {
  const marker = path.join(dir, '.live', `${host}-${pid}`);
  writeFileSync(marker, '');
  return () => rmSync(marker);
};

const TAKER = fileURLToPath(new URL('./lease-taker.ts', import.meta.url));
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Waits synchronously (as a release in an exit hook does) until `done()` or `ms` passed. */
const waitSync = (done: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) Atomics.wait(sleeper, 0, 0, 10);
};

describe('removeUnlessHeld (the clean-up after killed holders)', () => {
  it('keeps a dir a live process holds, removes one held only by dead processes (and its lock), and takes a missing one as removed', () => {
    const dir = scratch();
    WorkDirLease.take(dir);
    // This process holds it (and is alive): kept.
    expect(removeUnlessHeld(dir)).toBe(false);
    expect(existsSync(dir)).toBe(true);
    rmSync(path.join(dir, '.live'), { recursive: true });
    mkdirSync(path.join(dir, '.live'));
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    hold(dir, os.hostname(), dead);
    expect(removeUnlessHeld(dir)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`${dir}.lease-lock`)).toBe(false);
    expect(removeUnlessHeld(dir)).toBe(true);
  });
});

describe('WorkDirLease', () => {
  it('the last holder to release removes the work dir', () => {
    const dir = scratch();
    const first = WorkDirLease.take(dir);
    writeFileSync(path.join(dir, 'unpacked'), 'x');
    // Our parent process: alive, on this host.
    const dropOther = hold(dir, os.hostname(), process.ppid);
    first.release();
    expect(existsSync(path.join(dir, 'unpacked'))).toBe(true);
    dropOther();
    WorkDirLease.take(dir).release();
    expect(existsSync(dir)).toBe(false);
  });

  it('a hold of a dead process on this host does not count; one of another host does', () => {
    const dir = scratch();
    const lease = WorkDirLease.take(dir);
    // Above Linux's largest pid_max (2^22): no such process.
    hold(dir, os.hostname(), 2 ** 22 + 1);
    const dropRemote = hold(dir, 'some-other-node', process.pid);
    lease.release();
    expect(existsSync(dir)).toBe(true);
    dropRemote();
    WorkDirLease.take(dir).release();
    expect(existsSync(dir)).toBe(false);
  });

  it('a worker taking its hold while the last holder removes the dir keeps the dir and what it put there', async () => {
    const dir = scratch();
    const trying = path.join(path.dirname(dir), 'taker-started');
    const lease = WorkDirLease.take(dir);
    let taker: ChildProcess | undefined;
    const takerMarker = () => path.join(dir, '.live', `${os.hostname()}-${taker?.pid}`);
    // The release found no other holder and is about to remove the dir: a new worker starts right then.
    WorkDirLease.beforeRemove = () => {
      taker = spawn(process.execPath, ['--import', 'tsx', TAKER, dir, trying], { stdio: 'ignore' });
      waitSync(() => existsSync(trying), 30_000);
      // Without the lock it takes its hold at once; with it, it waits for this release to finish.
      waitSync(() => existsSync(takerMarker()), 2000);
    };
    try {
      lease.release();
    } finally {
      WorkDirLease.beforeRemove = undefined;
    }
    try {
      expect(existsSync(trying)).toBe(true);
      await expect.poll(() => existsSync(path.join(dir, 'package-of-the-new-worker')), { timeout: 30_000 }).toBe(true);
      expect(existsSync(takerMarker())).toBe(true);
      expect(existsSync(`${dir}.lease-lock`)).toBe(false);
    } finally {
      taker?.kill('SIGKILL');
      rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  });

  it('leaves no lock file behind, and the last release removes the dir', () => {
    const dir = scratch();
    const lease = WorkDirLease.take(dir);
    expect(existsSync(`${dir}.lease-lock`)).toBe(false);
    lease.release();
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`${dir}.lease-lock`)).toBe(false);
  });

  it('a lock left by a dead process of this host is broken', () => {
    const dir = scratch();
    writeFileSync(`${dir}.lease-lock`, `${os.hostname()}-${2 ** 22 + 1}`);
    WorkDirLease.take(dir).release();
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`${dir}.lease-lock`)).toBe(false);
  });

  it('a lease of a dir inside a leased dir, released after the outer one removed it, does not bring the outer one back', () => {
    const outer = scratch();
    const outerLease = WorkDirLease.take(outer);
    const innerLease = WorkDirLease.take(path.join(outer, 'scratch'));
    outerLease.release();
    expect(existsSync(outer)).toBe(false);
    innerLease.release();
    expect(existsSync(outer)).toBe(false);
  });

  it('whenCreated runs for the first holder only, before the dir exists; when it throws nothing is taken', () => {
    const dir = scratch();
    expect(() => WorkDirLease.take(dir, { whenCreated: () => { throw new Error('does not fit'); } })).toThrow('does not fit');
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`${dir}.lease-lock`)).toBe(false);
    const seen: boolean[] = [];
    const first = WorkDirLease.take(dir, { whenCreated: () => seen.push(existsSync(dir)) });
    const second = WorkDirLease.take(dir, { whenCreated: () => seen.push(existsSync(dir)) });
    expect(seen).toEqual([false]);
    second.release();
    first.release();
    expect(existsSync(dir)).toBe(false);
  });
});

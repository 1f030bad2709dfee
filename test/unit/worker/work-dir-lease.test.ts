import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkDirLease } from '../../../src/worker/work-dir-lease.js';

const scratch = () => path.join(mkdtempSync(path.join(os.tmpdir(), 't2-lease-')), 'job');
/** Another holder: a marker as WorkDirLease writes it, for a process of this or another host. */
const hold = (dir: string, host: string, pid: number) => {
  const marker = path.join(dir, '.live', `${host}-${pid}`);
  writeFileSync(marker, '');
  return () => rmSync(marker);
};

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
});

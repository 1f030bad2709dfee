import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { leaseLockOf } from '../job/storage.js';

const LIVE = '.live';
/** How long taking or releasing waits for another worker of this host holding the lease lock. */
const LOCK_WAIT_MS = 10_000;

/**
 * A worker's hold on its host's scratch work directory (the unpacked package, per-worker dirs): taken
 * before the package is fetched, released when the worker process ends, however it ends (normal exit,
 * SIGTERM from scancel or the job master, its job master gone). The last worker on the host to release it
 * removes the directory, so a killed job leaves no scratch behind on its nodes. Each hold is a file
 * `<work dir>/.live/<host>-<pid>`; a hold of a dead process on this host (SIGKILLed) does not count. Holds
 * of other hosts, should the directory be shared, always count. Synchronous: it runs in exit paths.
 *
 * Taking and releasing happen under one lock file beside the directory (`<work dir>.lease-lock`): without
 * it, a worker starting while the last one was ending could take its hold between the ender's look at the
 * holds and its removal of the directory, and lose the package it had just been promised.
 */
export class WorkDirLease {
  /** Test seam: runs while a release holds the lock, after it found no other holder, before it removes the directory. */
  static beforeRemove: (() => void) | undefined;
  private released = false;

  private constructor(
    readonly workDir: string,
    private readonly marker: string,
  ) {}

  /**
   * `whenCreated` runs under the lock when the directory does not exist yet, that is for the first holder on
   * the host, before it is created: a check that throws there (storage that does not fit) leaves nothing taken.
   */
  static take(workDir: string, opts: { whenCreated?: () => void } = {}): WorkDirLease {
    const dir = path.join(workDir, LIVE);
    const marker = path.join(dir, `${os.hostname()}-${process.pid}`);
    withLeaseLock(workDir, { makeParent: true }, () => {
      if (opts.whenCreated && !existsSync(workDir)) opts.whenCreated();
      mkdirSync(dir, { recursive: true });
      closeSync(openSync(marker, 'w'));
    });
    return new WorkDirLease(workDir, marker);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    // A lease of a directory inside another leased one (the scratch dir in a scratch work dir) may find its
    // parent removed already: then it is gone, and its lock must not bring the parent back.
    withLeaseLock(this.workDir, { makeParent: false }, () => {
      try {
        unlinkSync(this.marker);
      } catch {
        // Removed with the directory by a holder of an earlier generation: nothing of ours is left.
      }
      let others: string[];
      try {
        others = readdirSync(path.join(this.workDir, LIVE)).filter((name) => holderAlive(name));
      } catch {
        return; // the directory is gone already
      }
      if (others.length > 0) return;
      WorkDirLease.beforeRemove?.();
      rmSync(this.workDir, { recursive: true, force: true });
    });
  }
}

/**
 * Removes `dir` (a leased work, scratch or memory dir) unless a live process still holds it: the clean-up
 * after holders that could not release (SIGKILLed), run once they are gone. True when nothing is left.
 */
export function removeUnlessHeld(dir: string): boolean {
  let held = false;
  withLeaseLock(dir, { makeParent: false }, () => {
    let holders: string[] = [];
    try {
      holders = readdirSync(path.join(dir, LIVE)).filter((name) => holderAlive(name));
    } catch {
      // No holds (or no directory): nothing keeps it.
    }
    held = holders.length > 0;
    if (!held) rmSync(dir, { recursive: true, force: true });
  });
  return !held;
}

/**
 * Runs `fn` holding `<work dir>.lease-lock` (created exclusively; a lock of a dead process of this host is
 * broken). Waits synchronously, since releases run in exit hooks; after LOCK_WAIT_MS it runs `fn` anyway
 * rather than leave a worker stuck, which at worst brings back the race the lock closes.
 */
function withLeaseLock(workDir: string, opts: { makeParent: boolean }, fn: () => void): void {
  const lock = leaseLockOf(workDir);
  if (opts.makeParent) mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  let held = false;
  while (!held && Date.now() < deadline) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${os.hostname()}-${process.pid}`);
      closeSync(fd);
      held = true;
    } catch (err) {
      // Without its parent there is no directory to release (makeParent false): nothing to do.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !opts.makeParent) return;
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      breakIfStale(lock);
      Atomics.wait(SLEEPER, 0, 0, 5);
    }
  }
  try {
    fn();
  } finally {
    if (held) unlinkQuietly(lock);
  }
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

function breakIfStale(lock: string): void {
  let holder: string;
  try {
    holder = readFileSync(lock, 'utf8');
  } catch {
    return; // released meanwhile
  }
  // An empty lock is one being written; only a named holder that is gone is stale.
  if (holder && !holderAlive(holder)) unlinkQuietly(lock);
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // gone already
  }
}

function holderAlive(name: string): boolean {
  const m = /^(.*)-(\d+)$/.exec(name);
  if (!m || m[1] !== os.hostname()) return true;
  try {
    process.kill(Number(m[2]), 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Releases the lease when this process exits (process.exit in any path, or the event loop running dry). */
export function releaseAtExit(lease: WorkDirLease): void {
  process.once('exit', () => lease.release());
}

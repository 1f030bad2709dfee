import { open, readFile, stat, unlink } from 'node:fs/promises';
import os from 'node:os';

export type HostLockOutcome = { held: true; release(): Promise<void> } | { held: false };

/**
 * Makes one worker per host do a piece of work (download, unpack) while the others wait: the first to
 * create the lock file holds it; the rest poll until `isDone()` says the work is there, or the holder
 * fails (it writes `failedFile` newer than when they began waiting), or the holder died (its PID is
 * gone on this host) and the lock is taken over.
 */
export async function runOncePerHost(
  lockFile: string,
  failedFile: string,
  isDone: () => Promise<boolean>,
  deadlineMs: number,
): Promise<HostLockOutcome> {
  const since = Date.now();
  const deadline = since + deadlineMs;
  for (;;) {
    if (await isDone()) return { held: false };
    const failure = await readFailure(failedFile, since);
    if (failure) throw new Error(failure);
    const lock = await tryLock(lockFile);
    if (lock) {
      // The previous holder may have finished between our isDone() and our lock: don't redo (and break) its work.
      if (!(await isDone())) return lock;
      await lock.release();
      return { held: false };
    }
    if (Date.now() > deadline) throw new Error(`waited ${Math.round(deadlineMs / 1000)}s for another worker on this host to fetch the package (lock ${lockFile})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Records why the work failed, so workers waiting on this host fail with the same message. */
export async function recordFailure(failedFile: string, message: string): Promise<void> {
  const fh = await open(failedFile, 'w');
  await fh.writeFile(message);
  await fh.close();
}

async function tryLock(lockFile: string): Promise<{ held: true; release(): Promise<void> } | undefined> {
  const owner = `${process.pid}@${os.hostname()}`;
  try {
    const fh = await open(lockFile, 'wx');
    await fh.writeFile(owner);
    await fh.close();
    return { held: true, release: () => unlink(lockFile).catch(() => undefined) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Someone holds it. If that someone was on this host and is gone, the lock is stale.
  const holder = await readFile(lockFile, 'utf8').catch(() => '');
  const [pid, host] = holder.split('@');
  if (holder && host === os.hostname() && !alive(Number(pid))) await unlink(lockFile).catch(() => undefined);
  return undefined;
}

async function readFailure(failedFile: string, since: number): Promise<string | undefined> {
  try {
    const st = await stat(failedFile);
    // A failure from before we started waiting belongs to an earlier attempt (a restart tries again).
    if (st.mtimeMs < since - 5) return undefined;
    return await readFile(failedFile, 'utf8');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

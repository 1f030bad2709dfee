import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Process helpers shared by the test environments (test/env/*.ts): telling a process we started from a
 * reused PID (by its start time in /proc/PID/stat), signalling and ending processes by PID or ChildProcess,
 * and hooks that tear an environment down when the test process exits or is signalled.
 */

/** What a state file records about the process owning an environment, to tell it from a reused PID. */
export interface Owner {
  ownerPid: number;
  /** processStart(ownerPid) when the state was written ('' when it could not be read). */
  ownerStart: string;
}

/** Start time of a process (field 22 of /proc/PID/stat), to tell a live owner from a reused PID. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** This process as an Owner. */
export function currentOwner(): Owner {
  return { ownerPid: process.pid, ownerStart: processStart(process.pid) ?? '' };
}

/** Parent PID (field 4 of /proc/PID/stat). */
export function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Running, i.e. neither gone nor a zombie waiting for its parent (us, while we block) to reap it. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** The process `pid` exists and, unless `start` is '', is still the one that started at `start`. */
export function isAlive(pid: number, start: string): boolean {
  const now = processStart(pid);
  return now !== undefined && (start === '' || now === start);
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true once `child` has exited, false after `ms` if it has not. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM, up to `graceMs` to exit, then SIGKILL and up to `killWaitMs` more. */
export async function endChild(child: ChildProcess, graceMs: number, killWaitMs = 5000): Promise<void> {
  if (child.pid === undefined || exited(child)) return;
  signal(child.pid, 'SIGTERM');
  if (!(await waitExit(child, graceMs))) {
    signal(child.pid, 'SIGKILL');
    await waitExit(child, killWaitMs);
  }
}

/**
 * Runs `teardown` (synchronous) at most once: when the process exits or gets SIGINT, SIGTERM or SIGHUP (the
 * signal is then re-raised with the default action when nobody else handles it), or when stop() is called,
 * which also removes these hooks. `stopped` tells whether it has run.
 */
export function teardownOnExit(teardown: () => void): { stop(): void; readonly stopped: boolean } {
  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    teardown();
  };
  const unhook = onProcessExit(stopSync);
  return {
    stop() {
      stopSync();
      unhook();
    },
    get stopped() {
      return stopped;
    },
  };
}

/** Runs `stopSync` on exit and on SIGINT, SIGTERM, SIGHUP; returns the function that removes these hooks. */
function onProcessExit(stopSync: () => void): () => void {
  const onExit = () => stopSync();
  const onSignal = (sig: NodeJS.Signals) => {
    stopSync();
    // Re-raise with the default action when nobody else handles the signal.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  process.on('exit', onExit);
  for (const s of signals) process.once(s, onSignal);
  return () => {
    process.off('exit', onExit);
    for (const s of signals) process.off(s, onSignal);
  };
}

/**
 * Temp dirs `os.tmpdir()/<prefix>*` whose `stateFile` names an owner that is gone (its PID is free, or now
 * another process's): what test processes that were killed left behind. Dirs without a readable state file
 * are skipped.
 */
export function orphanedStateDirs<S extends Owner>(prefix: string, stateFile: string): { name: string; dir: string; state: S }[] {
  let entries: string[];
  try {
    entries = readdirSync(os.tmpdir()).filter((e) => e.startsWith(prefix));
  } catch {
    return [];
  }
  const out: { name: string; dir: string; state: S }[] = [];
  for (const name of entries) {
    const dir = path.join(os.tmpdir(), name);
    let state: S;
    try {
      state = JSON.parse(readFileSync(path.join(dir, stateFile), 'utf8')) as S;
    } catch {
      continue;
    }
    const start = processStart(state.ownerPid);
    if (start !== undefined && start === state.ownerStart) continue;
    out.push({ name, dir, state });
  }
  return out;
}

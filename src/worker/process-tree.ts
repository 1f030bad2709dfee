import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Set by the worker runtime in its own environment, so every process its program starts inherits it: a
 * process that left the tree (a double fork re-parents it to init) or its process group (setsid) is
 * still found by this mark in /proc/<pid>/environ.
 */
export const RUN_MARKER_VAR = 'TWISTER2_WORKER_RUN';

interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  zombie: boolean;
  /** When it started, in clock ticks since boot. */
  started: number;
}

/**
 * Everything one worker run's program started, so none of it outlives the run: the runtime's descendants,
 * the process groups they made, and any process carrying the run's marker. Linux only (reads /proc);
 * elsewhere it finds nothing and the launcher's own cleanup applies.
 */
export class ProgramTree {
  private readonly needle: Buffer;

  constructor(
    readonly marker: string,
    private readonly root = process.pid,
  ) {
    this.needle = Buffer.from(`${RUN_MARKER_VAR}=${marker}\0`);
  }

  /** A new run: marks `env` (the runtime's own process.env, which its children inherit). */
  static mark(env: NodeJS.ProcessEnv = process.env): ProgramTree {
    const marker = `${process.pid}-${randomBytes(8).toString('hex')}`;
    env[RUN_MARKER_VAR] = marker;
    return new ProgramTree(marker);
  }

  /** The live processes of the program, and the process groups it created (never the runtime's own). */
  find(): { pids: number[]; groups: number[] } {
    const procs = readProcs();
    const byParent = new Map<number, Proc[]>();
    for (const p of procs) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
    const root = procs.find((p) => p.pid === this.root);
    const ownGroup = root?.pgid;
    // The marker is made by the root: a process older than the root cannot carry it, and its environ need not be read.
    const since = root?.started ?? 0;
    const found = new Map<number, Proc>();
    const stack = [...(byParent.get(this.root) ?? [])];
    while (stack.length) {
      const p = stack.pop()!;
      found.set(p.pid, p);
      stack.push(...(byParent.get(p.pid) ?? []));
    }
    for (const p of procs) if (!(p.started < since) && !found.has(p.pid) && p.pid !== this.root && this.carriesMarker(p.pid)) found.set(p.pid, p);
    const groups = new Set([...found.values()].map((p) => p.pgid).filter((g) => g > 1 && g !== ownGroup && g !== this.root));
    for (const p of procs) if (groups.has(p.pgid) && p.pid !== this.root) found.set(p.pid, p);
    return { pids: [...found.values()].filter((p) => !p.zombie).map((p) => p.pid), groups: [...groups] };
  }

  /** SIGKILLs everything, again and again until nothing is left (it may fork meanwhile). Synchronous, for 'exit'. */
  killNow(): number {
    let first = 0;
    const deadline = Date.now() + 5000;
    for (let round = 0; Date.now() < deadline; round++) {
      const found = this.find();
      if (round === 0) first = found.pids.length;
      if (!found.pids.length) break;
      signalAll(found, 'SIGKILL');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // let the kernel finish them
    }
    return first;
  }

  /** SIGTERM, up to `graceMs` to exit, then SIGKILL whatever is left. Returns how many processes there were. */
  async end(graceMs: number): Promise<number> {
    const found = this.find();
    if (!found.pids.length) return 0;
    signalAll(found, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && this.find().pids.length) await new Promise((r) => setTimeout(r, 50));
    this.killNow();
    return found.pids.length;
  }

  private carriesMarker(pid: number): boolean {
    try {
      return readFileSync(`/proc/${pid}/environ`).includes(this.needle);
    } catch {
      return false; // gone, or another user's
    }
  }
}

function signalAll(found: { pids: number[]; groups: number[] }, signal: NodeJS.Signals): void {
  for (const id of [...found.groups.map((g) => -g), ...found.pids]) {
    try {
      process.kill(id, signal);
    } catch {
      // Already gone.
    }
  }
}

function readProcs(): Proc[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const procs: Proc[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // After the command name (which may contain spaces and parentheses): state, ppid, pgrp, ... starttime (field 22).
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const [state, ppid, pgid] = fields;
      procs.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), zombie: state === 'Z' || state === 'X', started: Number(fields[19]) });
    } catch {
      // It ended while we looked.
    }
  }
  return procs;
}

/**
 * SIGTERM (scancel, mpirun, the job master) and SIGINT end the program's processes, then this process with
 * 143 or 130 (`stopping()` then says so). Installed first thing, so that a signal at any point runs the exit hooks (the scratch dir's
 * release among them) instead of the signal's default action, which runs none.
 */
export function endTreeOnStopSignals(tree: ProgramTree, graceMs: number): { stopping(): boolean } {
  let signalled = false;
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      void tree.end(graceMs).finally(() => process.exit(code));
    });
  }
  return { stopping: () => signalled };
}

/**
 * Once stopped by a signal, the process ends as the signal says (143, 130), also when what it was doing
 * fails because of the stop meanwhile (a child it needed was ended first): that failure is not the cause.
 */
export const untilExit = (): Promise<never> => new Promise<never>(() => undefined);

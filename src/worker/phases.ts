import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Where a worker's start-up CPU goes, for the bench ("where the time goes" in docs/benchmarks.md): with
 * TWISTER2_PHASES_DIR set (ENV.phasesDir; not imported from there, to load nothing before the first mark),
 * the runtime notes its CPU time (user + system, since the process began, so node's own start counts)
 * and the wall time at each phase and writes them to `<dir>/<pid>.json` when it exits. Otherwise a no-op.
 */
const dir = process.env.TWISTER2_PHASES_DIR;
const marks: { phase: string; cpuMs: number; wallMs: number }[] = [];

export function markPhase(phase: string): void {
  if (!dir || marks.some((m) => m.phase === phase)) return;
  const c = process.cpuUsage();
  marks.push({ phase, cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() });
}

if (dir) {
  process.once('exit', () => {
    markPhase('exit');
    try {
      writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify({ pid: process.pid, marks }));
    } catch {
      // a bench aid: never a reason for a worker to fail
    }
  });
}

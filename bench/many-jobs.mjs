// Benchmark (h): many jobs at once. J jobs of W workers each (16 × 4 by default, as the reference paper
// measures concurrent jobs) are submitted together through the CLI, J `twister2 submit` processes started
// at once, until every worker of every job passed its first barrier (the latest BENCH-PASSED timestamp the
// workers print), against the floor of J × W bare `node -e 0` started at once in the same run.
// Prints one JSON line on stdout; progress goes to stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnMany } from './spawn-many.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const CLI = here('../bin/twister2.js');
const JOB = here('./fixtures/cli-job/');
const JOBS = Number(process.env.BENCH_MANY_JOBS ?? 16);
const WORKERS = Number(process.env.BENCH_MANY_WORKERS ?? 4);
const REPEATS = Number(process.env.BENCH_MANY_REPEATS ?? 3);
const RUN_TIMEOUT_MS = 180_000;
const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-many-'));
const running = new Set();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

/** One CLI submit; resolves with its exit code and the workers' BENCH-PASSED timestamps. */
function submitOne(i) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'submit', '--cluster', 'local', '--workers', String(WORKERS), JOB], { env: { ...process.env, TWISTER2_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const passed = [];
    let tail = '';
    let err = '';
    child.stdout.on('data', (d) => {
      const text = tail + d;
      const lines = text.split('\n');
      tail = lines.pop();
      for (const l of lines) {
        const m = /BENCH-PASSED (\d+)/.exec(l);
        if (m) passed.push(Number(m[1]));
      }
    });
    child.stderr.on('data', (d) => (err = (err + d).slice(-1000)));
    const timer = setTimeout(() => child.kill('SIGTERM'), RUN_TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ job: i, code: code ?? signal, passed, stderr: err.trim().split('\n').slice(-2).join(' ') });
    });
  });
}

async function runOnce() {
  const t0 = Date.now();
  const outcomes = await Promise.all(Array.from({ length: JOBS }, (_, i) => submitOne(i)));
  const failed = outcomes.filter((o) => o.code !== 0 || o.passed.length !== WORKERS);
  const all = outcomes.flatMap((o) => o.passed);
  return {
    passedMs: failed.length ? NaN : Math.max(...all) - t0,
    allExitedMs: Date.now() - t0,
    failures: failed.map((o) => `job ${o.job}: exit ${o.code}, ${o.passed.length}/${WORKERS} passed${o.stderr ? `: ${o.stderr}` : ''}`.slice(0, 300)),
  };
}

await spawnMany(2, ['-e', '0']); // warm-up
const r = { jobs: JOBS, workers: WORKERS, floorMs: [], passedMs: [], allExitedMs: [], failures: [] };
for (let i = 0; i < REPEATS; i++) {
  const floor = await spawnMany(JOBS * WORKERS, ['-e', '0']);
  const run = await runOnce();
  r.floorMs.push(floor.wallMs);
  r.passedMs.push(run.passedMs);
  r.allExitedMs.push(run.allExitedMs);
  r.failures.push(...run.failures);
  process.stderr.write(`many-jobs ${JOBS}×${WORKERS} run ${i + 1}/${REPEATS}: floor ${floor.wallMs.toFixed(0)} ms, all past 1st barrier ${run.passedMs} ms, all exited ${run.allExitedMs} ms, failed jobs ${run.failures.length}\n`);
}
process.stdout.write(JSON.stringify({ manyJobs: r }) + '\n');
process.exit(0);

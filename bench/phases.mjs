// Benchmark (j): where a worker's CPU goes. Local jobs of the start-up fixture with TWISTER2_PHASES_DIR set:
// each worker runtime writes its CPU time (since its process began) at each phase of its start
// (src/worker/phases.ts); the bench reports the median CPU spent in each phase, beside a bare `node -e 0`.
// Prints one JSON line on stdout; progress goes to stderr.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { submit } from '../dist/index.js';
import { followUntilPassed } from './follow-job.mjs';
import { spawnMany } from './spawn-many.mjs';

const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));
const N = Number(process.env.BENCH_PHASES_WORKERS ?? 4);
const RUNS = Number(process.env.BENCH_PHASES_RUNS ?? 5);
const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-phases-'));
const phasesDir = path.join(home, 'phases');
process.env.TWISTER2_HOME = home;
process.env.TWISTER2_PHASES_DIR = phasesDir;
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

mkdirSync(phasesDir, { recursive: true });
const floorCpuMs = [];
const failures = [];
for (let i = 0; i < RUNS + 1; i++) {
  floorCpuMs.push((await spawnMany(N, ['-e', '0'])).cpuMs);
  const handle = await submit({ job: JOB_DIR, cluster: 'local', spec: { name: 'bench-phases', workers: N, worker: { module: 'worker.mjs' } } });
  const { passed, status } = await followUntilPassed(handle, N, 120_000);
  if (passed.length < N || status.state !== 'SUCCEEDED') failures.push(`${passed.length}/${N} passed; ${status.state}: ${status.message ?? ''}`);
  if (i === 0) for (const f of readdirSync(phasesDir)) rmSync(path.join(phasesDir, f)); // the warm-up run
  process.stderr.write(`phases run ${i}/${RUNS}${i === 0 ? ' (warm-up)' : ''}\n`);
}
const workers = readdirSync(phasesDir).map((f) => JSON.parse(readFileSync(path.join(phasesDir, f), 'utf8')).marks);
process.stdout.write(JSON.stringify({ phases: { n: N, runs: RUNS, floorCpuMs: floorCpuMs.slice(1), workers, failures } }) + '\n');
process.exit(0);

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
/** A bare node that starts one worker thread running nothing: what node charges for a module worker's heartbeat thread. */
const THREAD_FLOOR = 'new (require("node:worker_threads").Worker)("0", { eval: true })';
const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-phases-'));
const phasesDir = path.join(home, 'phases');
process.env.TWISTER2_HOME = home;
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

/** Runs RUNS jobs (after one warm-up) of workers of this kind; returns each worker's phase marks. */
async function measure(kind, worker, floorCpuMs, failures, threadFloorCpuMs) {
  const dir = path.join(phasesDir, kind);
  mkdirSync(dir, { recursive: true });
  process.env.TWISTER2_PHASES_DIR = dir;
  for (let i = 0; i < RUNS + 1; i++) {
    floorCpuMs?.push((await spawnMany(N, ['-e', '0'])).cpuMs);
    threadFloorCpuMs?.push((await spawnMany(N, ['-e', THREAD_FLOOR])).cpuMs);
    const handle = await submit({ job: JOB_DIR, cluster: 'local', spec: { name: `bench-phases-${kind}`, workers: N, worker } });
    // A command worker here runs `true`: no discovery or barrier to wait for, only its end.
    const { passed, status } = kind === 'module' ? await followUntilPassed(handle, N, 120_000) : { passed: Array(N), status: await handle.wait() };
    if (passed.length < N || status.state !== 'SUCCEEDED') failures.push(`${kind}: ${passed.length}/${N} passed; ${status.state}: ${status.message ?? ''}`);
    if (i === 0) for (const f of readdirSync(dir)) rmSync(path.join(dir, f)); // the warm-up run
    process.stderr.write(`phases ${kind} run ${i}/${RUNS}${i === 0 ? ' (warm-up)' : ''}\n`);
  }
  return readdirSync(dir).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')).marks);
}

const floorCpuMs = [];
const threadFloorCpuMs = [];
const failures = [];
const workers = await measure('module', { module: 'worker.mjs' }, floorCpuMs, failures, threadFloorCpuMs);
const commandWorkers = await measure('command', { command: 'true' }, undefined, failures);
process.stdout.write(JSON.stringify({ phases: { n: N, runs: RUNS, floorCpuMs: floorCpuMs.slice(1), threadFloorCpuMs: threadFloorCpuMs.slice(1), workers, commandWorkers, failures } }) + '\n');
process.exit(0);

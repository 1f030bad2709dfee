// Benchmark (a): job start-up on the local cluster, from submit() until all N workers passed a first
// barrier, against a floor of N bare `node -e 0` processes started concurrently in the same run.
// Prints one JSON line with every sample on stdout; progress goes to stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { submit } from '../dist/index.js';
import { followUntilPassed } from './follow-job.mjs';
import { spawnMany } from './spawn-many.mjs';
import { childrenCpuMs, ownCpuMs } from './sysinfo.mjs';

const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));
const RUNTIME_URL = new URL('../dist/worker/runtime.js', import.meta.url).href;
const SIZES = (process.env.BENCH_STARTUP_SIZES ?? '1,4,16,64').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
/** Fewer runs from this size up, to keep the whole bench under 10 minutes on 2 cores. */
const BIG = 64;
const BIG_REPEATS = Number(process.env.BENCH_BIG_REPEATS ?? 3);
const RUN_TIMEOUT_MS = 120_000;
/** Processes in the import floor: enough for a per-process CPU figure, cheap enough to repeat. */
const IMPORT_PROCS = 8;

const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-'));
process.env.TWISTER2_HOME = home;
// process.exit runs the local launcher's exit hook, which kills any worker still running.
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

/** One twister2 job of n workers; times (ms after the submit() call) of the milestones. */
async function runJob(n) {
  const t0 = Date.now();
  const [workersCpu0, ownCpu0] = [childrenCpuMs(), ownCpuMs()];
  const handle = await submit({ job: JOB_DIR, cluster: 'local', spec: { name: `bench-start-${n}`, workers: n, worker: { module: 'worker.mjs' } } });
  const submitted = Date.now();
  const { registered, passed, status } = await followUntilPassed(handle, n, RUN_TIMEOUT_MS);
  if (passed.length < n || status.state !== 'SUCCEEDED') {
    throw new Error(`job of ${n} workers: ${passed.length}/${n} passed the barrier; ended ${status.state}: ${status.message ?? ''}`);
  }
  return {
    submitMs: submitted - t0,
    registeredMs: registered === undefined ? NaN : registered - t0,
    passedMs: Math.max(...passed) - t0,
    // Every worker has been reaped once wait() resolved; this process hosts the job master and the client.
    workerCpuMs: (childrenCpuMs() - workersCpu0) / n,
    clientCpuMs: ownCpuMs() - ownCpu0,
  };
}

/** A failed job (a twister2 bug, not a slow run) is recorded and run once more. */
async function runJobRetried(n, r) {
  try {
    return await runJob(n);
  } catch (err) {
    r.failures.push(err.message);
    process.stderr.write(`startup n=${n}: run failed, trying again: ${err.message}\n`);
    return runJob(n);
  }
}

// Warm-up (not recorded): file-system caches, the compiled dist modules.
await spawnMany(2, ['-e', '0']);
await runJob(2).catch((err) => process.stderr.write(`startup warm-up failed: ${err.message}\n`));

const results = [];
for (const n of SIZES) {
  const repeats = n >= BIG ? Math.min(REPEATS, BIG_REPEATS) : REPEATS;
  const r = { n, repeats, floorMs: [], floorCpuMs: [], importCpuMs: [], failures: [], submitMs: [], registeredMs: [], passedMs: [], workerCpuMs: [], clientCpuMs: [] };
  for (let i = 0; i < repeats; i++) {
    const floor = await spawnMany(n, ['-e', '0']);
    r.floorMs.push(floor.wallMs);
    r.floorCpuMs.push(floor.cpuMs);
    // Processes that only load the worker runtime's modules and exit: what loading them costs.
    r.importCpuMs.push((await spawnMany(Math.min(n, IMPORT_PROCS), ['--input-type=module', '-e', `await import(${JSON.stringify(RUNTIME_URL)})`])).cpuMs);
    const job = await runJobRetried(n, r);
    for (const k of Object.keys(job)) r[k].push(job[k]);
    process.stderr.write(`startup n=${n} run ${i + 1}/${repeats}: floor ${floor.wallMs.toFixed(0)} ms, twister2 ${job.passedMs} ms\n`);
  }
  results.push(r);
}
process.stdout.write(JSON.stringify({ startup: results }) + '\n');
process.exit(0);

// Benchmark (d): launch overhead of the OpenMPI launcher on this machine. From submit() (cluster: mpi,
// mpi.hosts [{ host: localhost, slots: N }], oversubscribe) until all N ranks passed a first barrier,
// against a floor measured in the same run: bare `mpirun --oversubscribe -np N node -e 0`.
// Prints one JSON line with every sample on stdout; progress goes to stderr. Stops everything it starts.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { findProgram } from '../dist/launchers/find-program.js';
import { submit } from '../dist/index.js';
import { followUntilPassed, jobProcesses } from './follow-job.mjs';
import { recoveryRuns } from './recovery-run.mjs';

const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));
const SIZES = (process.env.BENCH_MPI_SIZES ?? '4,16,64').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_MPI_REPEATS ?? 3);
/** From this size up, BIG_REPEATS runs (each N=64 job costs several seconds of CPU on 2 cores). */
const BIG = 64;
const BIG_REPEATS = Number(process.env.BENCH_MPI_BIG_REPEATS ?? 2);
const RUN_TIMEOUT_MS = 120_000;
const ROOT_ARGS = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];

const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-mpi-'));
process.env.TWISTER2_HOME = home;
/** Floor mpirun process groups still running; killed on any exit. */
const floorGroups = new Set();
// process.exit runs the mpi launcher's exit hook too, which kills a job's mpirun and its ranks.
process.on('exit', () => {
  for (const pid of floorGroups) killGroup(pid, 'SIGKILL');
  rmSync(home, { recursive: true, force: true });
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

function killGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch {
    // Already gone.
  }
}

/** The floor: bare mpirun starting N `node -e 0` ranks on this machine; wall ms until mpirun exited. */
function floor(mpirun, n) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(mpirun, [...ROOT_ARGS, '--oversubscribe', '-np', String(n), process.execPath, '-e', '0'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    floorGroups.add(child.pid);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      killGroup(child.pid, 'SIGKILL'); // anything left in its group
      floorGroups.delete(child.pid);
      if (code === 0) resolve(ms);
      else reject(new Error(`floor mpirun -np ${n} ended with ${signal ?? `code ${code}`}: ${stderr.trim().slice(0, 500)}`));
    });
  });
}

/** One twister2 mpi job of n ranks; times (ms after the submit() call) of the milestones. */
async function runJob(n) {
  const t0 = Date.now();
  const handle = await submit({
    job: JOB_DIR,
    cluster: 'mpi',
    spec: {
      name: `bench-mpi-${n}`,
      workers: n,
      worker: { module: 'worker.mjs' },
      jobMaster: { host: '127.0.0.1' },
      mpi: { hosts: [{ host: 'localhost', slots: n }], oversubscribe: true },
    },
  });
  const submitted = Date.now();
  const { registered, passed, status } = await followUntilPassed(handle, n, RUN_TIMEOUT_MS);
  const left = jobProcesses(handle.jobId);
  if (passed.length < n || status.state !== 'SUCCEEDED' || left.length) {
    throw new Error(
      `mpi job of ${n} ranks: ${passed.length}/${n} passed the barrier; ended ${status.state}: ${status.message ?? ''}` +
        (left.length ? `; processes left: ${left.join(' ')}` : ''),
    );
  }
  return { submitMs: submitted - t0, registeredMs: registered === undefined ? NaN : registered - t0, passedMs: Math.max(...passed) - t0, endedMs: Date.now() - t0 };
}

const mpirun = findProgram('mpirun');
if (!mpirun) {
  process.stdout.write(JSON.stringify({ mpi: { error: 'mpirun not found on PATH (Debian: apt-get install openmpi-bin)' } }) + '\n');
  process.exit(0);
}

// Warm-up (not recorded): file-system caches, OpenMPI's components, the compiled dist modules.
await floor(mpirun, 2);
await runJob(2).catch((err) => process.stderr.write(`mpi warm-up failed: ${err.message}\n`));

const results = [];
for (const n of SIZES) {
  const repeats = n >= BIG ? Math.min(REPEATS, BIG_REPEATS) : REPEATS;
  const r = { n, repeats, floorMs: [], submitMs: [], registeredMs: [], passedMs: [], endedMs: [], failures: [] };
  for (let i = 0; i < repeats; i++) {
    const f = await floor(mpirun, n);
    let job;
    try {
      job = await runJob(n);
    } catch (err) {
      // A failed job is recorded and run once more.
      r.failures.push(err.message);
      process.stderr.write(`mpi n=${n}: run failed, trying again: ${err.message}\n`);
      job = await runJob(n);
    }
    r.floorMs.push(f);
    for (const k of Object.keys(job)) r[k].push(job[k]);
    process.stderr.write(`mpi n=${n} run ${i + 1}/${repeats}: floor ${f.toFixed(0)} ms, twister2 ${job.passedMs} ms\n`);
  }
  results.push(r);
}
// Job master recovery with the job master on the (only) host, mpirun beside it (recovery-run.mjs).
const RECOVERY_SPEC = { cluster: 'mpi', jobMaster: { placement: 'cluster' }, mpi: { hosts: [{ host: 'localhost', slots: 4 }], oversubscribe: true } };
const recovery = await recoveryRuns([4], REPEATS, RECOVERY_SPEC, (line) => process.stderr.write(`mpi ${line}\n`)).catch((err) => ({ error: err.message }));
process.stdout.write(JSON.stringify({ mpi: { mpirun, cpus: os.cpus().length, results, recovery } }) + '\n');
process.exit(0);

// Benchmark (e): launch overhead of the Slurm launcher on a real 2-node Slurm cluster (test/env/slurm-cluster.ts:
// slurmctld + one slurmd per node, each node in its own network namespace). From submit() (cluster: slurm, job
// master in this process, reached by the workers at the cluster's bridge address) until all N workers passed a
// first barrier, against floors measured in the same run: a bare `sbatch --wrap 'srun node -e 0'` of the same
// size, until Slurm ran it (start-only) and until it left squeue (end-to-end).
// Prints one JSON line with every sample on stdout; progress goes to stderr. Stops everything it starts.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { submit } from '../dist/index.js';
import { followUntilPassed, jobProcesses } from './follow-job.mjs';
import { recoveryRuns } from './recovery-run.mjs';

const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));
const SIZES = (process.env.BENCH_SLURM_SIZES ?? '4,16').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_SLURM_REPEATS ?? 3);
const NODES = 2;
const CPUS_PER_NODE = 16;
const MEMORY = '64Mi';
const RUN_TIMEOUT_MS = 120_000;
const POLL_MS = 100;
/** squeue states of a job that has not ended yet. */
const LIVE_STATES = new Set(['PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'RESIZING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'SIGNALING', 'STAGE_OUT']);
/** States in which the job's resources are allocated (its batch script was started or is about to be). */
const STARTED_STATES = new Set(['CONFIGURING', 'RUNNING', 'COMPLETING']);

for (const n of SIZES) {
  if (!Number.isInteger(n) || n < 2 || n % NODES !== 0 || n / NODES > CPUS_PER_NODE) {
    throw new Error(`BENCH_SLURM_SIZES: each size must be an even number from 2 to ${NODES * CPUS_PER_NODE}, got ${n}`);
  }
}

if (process.getuid?.() !== 0) {
  // The cluster needs network namespaces, a bridge and root-owned daemons.
  process.stdout.write(JSON.stringify({ slurm: { error: 'the Slurm benchmark starts a Slurm cluster in network namespaces and must run as root' } }) + '\n');
  process.exit(0);
}

const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-slurm-'));
process.env.TWISTER2_HOME = home;
let cluster;
// Exit hooks: the slurm launcher's (kills its own srun steps) and the cluster's (kills every daemon, slurmstepd
// and task of the cluster by PID, removes namespaces, bridge and temp dir) run on process.exit too.
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`${msg}\n`);

/** A Slurm client command against the bench cluster (SLURM_CONF is in process.env). */
function slurm(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

/** The job's state as squeue shows it (all states, finished jobs stay listed for MinJobAge); '' when not listed. */
async function jobState(id) {
  const out = await slurm('squeue', ['-h', '-t', 'all', '-j', id, '-o', '%T']).catch((err) => {
    // squeue exits 1 with "Invalid job id specified" once slurmctld forgot the job.
    if (/Invalid job id/i.test(err.message)) return '';
    throw err;
  });
  return out.trim();
}

/**
 * The floor: a bare batch job of n tasks, n/2 per node, whose one step is `srun node -e 0`. Wall ms from the
 * sbatch call until squeue first showed the job allocated (RUNNING; NaN if it started and ended between two
 * polls) and until it ended (no longer in a live state).
 */
async function floor(n) {
  const out = path.join(home, 'floor-%j.out');
  const t0 = performance.now();
  const id = (
    await slurm('sbatch', [
      '--parsable',
      `--job-name=bench-floor-${n}`,
      `--ntasks=${n}`,
      `--ntasks-per-node=${n / NODES}`,
      '--cpus-per-task=1',
      '--mem-per-cpu=64M',
      '--no-requeue',
      `--output=${out}`,
      '--wrap',
      `srun ${process.execPath} -e 0`,
    ])
  )
    .trim()
    .split(';')[0];
  let runningMs = NaN;
  let state = '';
  try {
    while (true) {
      state = await jobState(id);
      const t = performance.now() - t0;
      if (STARTED_STATES.has(state) && Number.isNaN(runningMs)) runningMs = t;
      if (!LIVE_STATES.has(state)) {
        if (state !== 'COMPLETED' && state !== '') {
          const output = (() => {
            try {
              return readFileSync(out.replace('%j', id), 'utf8').trim().slice(0, 500);
            } catch {
              return '';
            }
          })();
          throw new Error(`floor job ${id} (${n} tasks) ended ${state}${output ? `: ${output}` : ''}`);
        }
        return { id, runningMs, endedMs: t };
      }
      if (t > RUN_TIMEOUT_MS) throw new Error(`floor job ${id} (${n} tasks) still ${state} after ${RUN_TIMEOUT_MS / 1000}s`);
      await sleep(POLL_MS);
    }
  } catch (err) {
    await slurm('scancel', [id]).catch(() => undefined);
    throw err;
  }
}

/** What Slurm still lists of a twister2 job (by its name, the twister2 job ID) or a process of it on this machine. */
async function leftovers(jobId) {
  const queued = (await slurm('squeue', ['-h', '-n', jobId, '-o', '%i %T'])).trim();
  const procs = jobProcesses(jobId);
  return [...(queued ? [`squeue: ${queued}`] : []), ...(procs.length ? [`processes: ${procs.join(' ')}`] : [])];
}

/** One twister2 slurm job of n workers, n/2 per node; times (ms after the submit() call) of the milestones. */
async function runJob(n) {
  const t0 = Date.now();
  const handle = await submit({
    job: JOB_DIR,
    cluster: 'slurm',
    spec: {
      name: `bench-slurm-${n}`,
      workers: n,
      worker: { module: 'worker.mjs' },
      resources: { cpu: 1, memory: MEMORY },
      jobMaster: { host: cluster.controllerAddress },
      slurm: { tasksPerNode: n / NODES },
    },
  });
  const submitted = Date.now();
  const { registered, passed, status } = await followUntilPassed(handle, n, RUN_TIMEOUT_MS);
  const ended = Date.now();
  const left = await leftovers(handle.jobId);
  if (passed.length < n || status.state !== 'SUCCEEDED' || left.length) {
    throw new Error(
      `slurm job of ${n} workers: ${passed.length}/${n} passed the barrier; ended ${status.state}: ${status.message ?? ''}` + (left.length ? `; left: ${left.join('; ')}` : ''),
    );
  }
  return { submitMs: submitted - t0, registeredMs: registered === undefined ? NaN : registered - t0, passedMs: Math.max(...passed) - t0, endedMs: ended - t0 };
}

let failed = false;
try {
  const { tsImport } = await import('tsx/esm/api');
  const { startSlurmCluster } = await tsImport('../test/env/slurm-cluster.ts', import.meta.url);
  const c0 = performance.now();
  cluster = await startSlurmCluster({ nodes: NODES, cpusPerNode: CPUS_PER_NODE, gpusPerNode: 0 });
  const clusterStartMs = performance.now() - c0;
  Object.assign(process.env, cluster.env);
  log(`slurm: cluster ${cluster.clusterName} up in ${clusterStartMs.toFixed(0)} ms: ${cluster.nodes.map((x) => `${x.name} ${x.address}`).join(', ')}`);

  // Warm-up (not recorded): file-system caches, slurmd's first steps, the compiled dist modules.
  await floor(2);
  await runJob(2).catch((err) => log(`slurm warm-up failed: ${err.message}`));

  const results = [];
  for (const n of SIZES) {
    const r = { n, floorRunningMs: [], floorEndedMs: [], submitMs: [], registeredMs: [], passedMs: [], endedMs: [], failures: [] };
    for (let i = 0; i < REPEATS; i++) {
      const f = await floor(n);
      let job;
      try {
        job = await runJob(n);
      } catch (err) {
        // A failed job is recorded and run once more.
        r.failures.push(err.message);
        log(`slurm n=${n}: run failed, trying again: ${err.message}`);
        job = await runJob(n);
      }
      r.floorRunningMs.push(f.runningMs);
      r.floorEndedMs.push(f.endedMs);
      for (const k of Object.keys(job)) r[k].push(job[k]);
      log(`slurm n=${n} run ${i + 1}/${REPEATS}: floor running ${f.runningMs.toFixed(0)} ms, ended ${f.endedMs.toFixed(0)} ms; twister2 past barrier ${job.passedMs} ms, ended ${job.endedMs} ms`);
    }
    results.push(r);
  }
  // Job master recovery with the job master in the allocation (recovery-run.mjs).
  const recoverySpec = { cluster: 'slurm', jobMaster: { placement: 'cluster' }, resources: { cpu: 1, memory: MEMORY }, slurm: { tasksPerNode: 2 } };
  const recovery = await recoveryRuns([4], REPEATS, recoverySpec, (line) => log(`slurm ${line}`)).catch((err) => ({ error: err.message }));
  const slurmVersion = (await slurm('sinfo', ['--version']).catch(() => '')).trim();
  process.stdout.write(
    JSON.stringify({ slurm: { version: slurmVersion, nodes: NODES, cpusPerNode: CPUS_PER_NODE, memory: MEMORY, pollMs: POLL_MS, clusterStartMs, cpus: os.cpus().length, results, recovery } }) + '\n',
  );
} catch (err) {
  failed = true;
  log(`slurm benchmark failed: ${err.stack ?? err}`);
} finally {
  await cluster?.stop();
}
process.exit(failed ? 1 : 0);

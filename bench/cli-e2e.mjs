// Benchmark (g): end to end through the CLI, beside Dask and Ray. For N workers, each a whole process
// timed from launch to exit: `twister2 submit --cluster local --workers N` of a discovery + barrier job;
// Dask's LocalCluster with N worker processes, one pinned task each; Ray's local mode with N one-CPU
// actors answering once; and the floor, N bare `node -e 0` started at once. Runs alternate per repetition.
// Prints one JSON line on stdout; progress goes to stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePeersVenv } from './peers/venv.mjs';
import { timedRun } from './peers/run-peer.mjs';
import { spawnMany } from './spawn-many.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const CLI = here('../bin/twister2.js');
const JOB = here('./fixtures/cli-job/');
const SIZES = (process.env.BENCH_CLI_SIZES ?? '1,4,16').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_CLI_REPEATS ?? 3);
const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-cli-'));
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

const peers = process.env.BENCH_PEERS === '0' ? { error: 'skipped (BENCH_PEERS=0)' } : ensurePeersVenv();
if (peers.error) process.stderr.write(`cli-e2e: peers not measured: ${peers.error}\n`);

const twister2 = (n) => timedRun(process.execPath, [CLI, 'submit', '--cluster', 'local', '--workers', String(n), JOB], { env: { TWISTER2_HOME: home } });
const dask = (n) => timedRun(peers.python, [here('./peers/dask_job.py'), String(n)]);
const ray = (n) => timedRun(peers.python, [here('./peers/ray_job.py'), String(n)]);

/** A failed run is recorded with its message, not retried: a peer that cannot run here is reported so. */
async function sample(list, errors, fn) {
  try {
    list.push(await fn());
  } catch (err) {
    errors.push(err.message.slice(0, 300));
  }
}

// Warm-up (not recorded): caches, and Python's first import of each peer.
await spawnMany(2, ['-e', '0']);
await twister2(1).catch(() => undefined);
if (!peers.error) await Promise.all([dask(1).catch(() => undefined)]).then(() => ray(1).catch(() => undefined));

const results = [];
for (const n of SIZES) {
  const r = { n, floorMs: [], twister2Ms: [], daskMs: [], rayMs: [], errors: { twister2: [], dask: [], ray: [] } };
  for (let i = 0; i < REPEATS; i++) {
    r.floorMs.push((await spawnMany(n, ['-e', '0'])).wallMs);
    await sample(r.twister2Ms, r.errors.twister2, () => twister2(n));
    if (!peers.error) {
      await sample(r.daskMs, r.errors.dask, () => dask(n));
      await sample(r.rayMs, r.errors.ray, () => ray(n));
    }
    const last = (a) => (a.length ? a.at(-1).toFixed(0) : 'failed');
    process.stderr.write(`cli-e2e n=${n} run ${i + 1}/${REPEATS}: floor ${last(r.floorMs)} ms, twister2 ${last(r.twister2Ms)}, dask ${peers.error ? '-' : last(r.daskMs)}, ray ${peers.error ? '-' : last(r.rayMs)}\n`);
  }
  results.push(r);
}
process.stdout.write(JSON.stringify({ cliE2e: { peers, results } }) + '\n');
process.exit(0);

// Benchmark (j), before and after: a worker's CPU at the commit before the fast-start work (issue 14) and now,
// in the same run. The baseline is built once from `git archive` of that commit with its own locked
// packages (cached under ~/.cache/twister2-bench). Both sides are split the same coarse way: node's own
// start (a bare `node -e 0`), loading the runtime's modules, and the rest (the whole worker, less both).
// The baseline has no phase notes: its module loading is a node that only imports dist/worker/runtime.js,
// less node's start. Now's workers note their phases (TWISTER2_PHASES_DIR): theirs is the CPU until
// "modules loaded", less node's start, since they load the bundle, not the files an import of runtime.js reads.
// Prints one JSON line on stdout; progress goes to stderr.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnMany } from './spawn-many.mjs';
import { childrenCpuMs } from './sysinfo.mjs';

/** The last commit before the worker runtime lost got, zod and the spec schema (4bb7cc9) and was bundled. */
const BASELINE = process.env.BENCH_BASELINE_COMMIT ?? '04b262e';
const N = Number(process.env.BENCH_PHASES_WORKERS ?? 4);
const RUNS = Number(process.env.BENCH_BASELINE_RUNS ?? 5);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));

const sha = git('rev-parse', `${BASELINE}^{commit}`).trim();
const dir = path.join(os.homedir(), '.cache', 'twister2-bench', `baseline-${sha.slice(0, 12)}`);
if (!existsSync(path.join(dir, '.built'))) {
  process.stderr.write(`phases baseline: building ${sha.slice(0, 12)} in ${dir}\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'sh', REPO, sha, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(path.join(dir, '.built'), sha);
}

const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-baseline-'));
process.env.TWISTER2_HOME = home;
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

const sides = {
  before: { root: dir, samples: { importCpuMs: [], workerCpuMs: [] } },
  after: { root: REPO, samples: { importCpuMs: [], workerCpuMs: [], modulesLoadedCpuMs: [] } },
};
for (const side of Object.values(sides)) side.submit = (await import(pathToFileURL(path.join(side.root, 'dist/index.js')).href)).submit;

/** One local job of N start-up workers with this side's code: CPU per worker, from the reaped processes. */
async function workerCpu(side, name) {
  const phasesDir = mkdtempSync(path.join(home, 'phases-'));
  process.env.TWISTER2_PHASES_DIR = phasesDir;
  const cpu0 = childrenCpuMs();
  const handle = await side.submit({ job: JOB_DIR, cluster: 'local', spec: { name, workers: N, worker: { module: 'worker.mjs' } } });
  const status = await handle.wait();
  delete process.env.TWISTER2_PHASES_DIR;
  if (status.state !== 'SUCCEEDED') throw new Error(`${name}: ended ${status.state}: ${status.message ?? ''}`);
  const loaded = readdirSync(phasesDir).map((f) => JSON.parse(readFileSync(path.join(phasesDir, f), 'utf8')).marks.find((m) => m.phase === 'modules loaded')?.cpuMs);
  return { cpuMs: (childrenCpuMs() - cpu0) / N, modulesLoadedCpuMs: loaded.filter((x) => x !== undefined) };
}

const floorCpuMs = [];
for (let i = 0; i <= RUNS; i++) {
  const floor = (await spawnMany(N, ['-e', '0'])).cpuMs;
  if (i > 0) floorCpuMs.push(floor);
  for (const [label, side] of Object.entries(sides)) {
    const runtime = pathToFileURL(path.join(side.root, 'dist/worker/runtime.js')).href;
    const imported = (await spawnMany(N, ['--input-type=module', '-e', `await import(${JSON.stringify(runtime)})`])).cpuMs;
    const worker = await workerCpu(side, `bench-baseline-${label}`);
    // The first round warms the file-system cache and is not recorded.
    if (i > 0) {
      side.samples.importCpuMs.push(imported);
      side.samples.workerCpuMs.push(worker.cpuMs);
      side.samples.modulesLoadedCpuMs?.push(...worker.modulesLoadedCpuMs);
    }
  }
  process.stderr.write(`phases baseline run ${i}/${RUNS}${i === 0 ? ' (warm-up)' : ''}\n`);
}
process.stdout.write(JSON.stringify({ phasesBaseline: { commit: sha, n: N, runs: RUNS, floorCpuMs, before: sides.before.samples, after: sides.after.samples } }) + '\n');
process.exit(0);

function git(...args) {
  return execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8' });
}

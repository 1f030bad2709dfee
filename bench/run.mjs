// `npm run bench`: runs each benchmark in its own process, then writes docs/benchmarks.md and a summary.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { renderMarkdown, summaryLines } from './report.mjs';
import { loadavg, machine } from './sysinfo.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const DOC = here('../docs/benchmarks.md');
const children = new Set();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGTERM');
    process.exit(1);
  });
}

/** Runs one benchmark script; resolves with its JSON line, or { error } if it failed or overran. */
function runBench(script, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [here(script)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM'); // the benchmarks stop their own children on SIGTERM
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && last.startsWith('{')) return resolve(JSON.parse(last));
      resolve({ error: timedOut ? `${script} took longer than ${timeoutMs / 1000}s` : `${script} ended with ${signal ?? `code ${code}`}` });
    });
  });
}

const t0 = performance.now();
const data = { machine: machine() };
const startup = await runBench('./startup.mjs', 6 * 60_000);
data.startup = startup.startup ?? startup;
const jm = await runBench('./jobmaster-scale.mjs', 6 * 60_000);
data.jobmaster = jm.jobmaster ?? jm;
const upload = await runBench('./upload.mjs', 6 * 60_000);
data.upload = upload.upload ?? upload;
const mpi = await runBench('./mpi.mjs', 6 * 60_000);
data.mpi = mpi.mpi ?? mpi;
const slurm = await runBench('./slurm.mjs', 6 * 60_000);
data.slurm = slurm.slurm ?? slurm;
const nomad = await runBench('./nomad.mjs', 6 * 60_000);
data.nomad = nomad.nomad ?? nomad;
const k8s = await runBench('./k8s.mjs', 20 * 60_000);
data.k8s = k8s.k8s ?? k8s;
const phases = await runBench('./phases.mjs', 6 * 60_000);
data.phases = phases.phases ?? phases;
const cliE2e = await runBench('./cli-e2e.mjs', 20 * 60_000);
data.cliE2e = cliE2e.cliE2e ?? cliE2e;
const manyJobs = await runBench('./many-jobs.mjs', 10 * 60_000);
data.manyJobs = manyJobs.manyJobs ?? manyJobs;
data.durationMs = performance.now() - t0;
data.loadavgEnd = loadavg();

writeFileSync(DOC, renderMarkdown(data));
console.log(summaryLines(data).join('\n'));
console.log(`wrote ${DOC}`);
process.exit(startup.error || jm.error || upload.error || mpi.error || slurm.error || nomad.error || k8s.error || phases.error || cliE2e.error || manyJobs.error ? 1 : 0);

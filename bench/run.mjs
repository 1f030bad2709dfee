// `npm run bench`: runs each benchmark in its own process, then writes docs/benchmarks.md (and its figures,
// docs/benchmarks.json, which `node bench/render.mjs` renders again) and a summary.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { renderMarkdown, summaryLines } from './report.mjs';
import { loadavg, machine } from './sysinfo.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const DOC = here('../docs/benchmarks.md');
const DATA = here('../docs/benchmarks.json');
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

/** Each section: the key of its figures (in the script's JSON line and in the report's data), its script, how long it may take. */
const SECTIONS = [
  ['startup', './startup.mjs', 6],
  ['jobmaster', './jobmaster-scale.mjs', 6],
  ['upload', './upload.mjs', 6],
  ['mpi', './mpi.mjs', 6],
  ['slurm', './slurm.mjs', 6],
  ['nomad', './nomad.mjs', 6],
  ['k8s', './k8s.mjs', 20],
  ['k8sRecovery', './k8s-recovery.mjs', 10],
  ['phases', './phases.mjs', 6],
  ['phasesBaseline', './phases-baseline.mjs', 10],
  ['cliE2e', './cli-e2e.mjs', 20],
  ['manyJobs', './many-jobs.mjs', 10],
  ['recovery', './recovery.mjs', 10],
  ['messages', './messages.mjs', 15],
];

const t0 = performance.now();
const data = { machine: machine() };
let failed = false;
for (const [key, script, minutes] of SECTIONS) {
  const out = await runBench(script, minutes * 60_000);
  data[key] = out[key] ?? out;
  // A script may give more than its section's figures (recovery.mjs: the file journal's cost).
  for (const [k, v] of Object.entries(out)) if (k !== key && k !== 'error') data[k] = v;
  failed ||= Boolean(out.error);
}
data.durationMs = performance.now() - t0;
data.loadavgEnd = loadavg();

writeFileSync(DOC, renderMarkdown(data));
// The figures themselves, so the report can be rendered again without running everything again.
writeFileSync(DATA, JSON.stringify(data) + '\n');
console.log(summaryLines(data).join('\n'));
console.log(`wrote ${DOC}`);
process.exit(failed ? 1 : 0);

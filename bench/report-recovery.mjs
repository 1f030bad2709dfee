// The job master recovery benchmark's part of docs/benchmarks.md and of the summary: local (recovery.mjs),
// and N=4 on the cluster backends whose benchmarks measure it too (slurm.mjs, mpi.mjs: their `recovery`).
import { fmtSummary, summarize } from './stats.mjs';

const figures = (r) => r.map((x) => ({ n: x.n, runs: x.restartMs.length, restart: summarize(x.restartMs), reattached: summarize(x.reattachedMs) }));

/** `rows`: [backend, its figures (an array, or { error })]. */
export function recoverySection(rows) {
  const lines = [];
  for (const [backend, r] of rows) {
    if (!Array.isArray(r)) lines.push(`| ${backend} | — | not measured: ${r?.error ?? 'no data'} | — | — |`);
    else lines.push(...figures(r).map((x) => `| ${backend} | ${x.n} | ${x.runs} | ${fmtSummary(x.restart)} | **${fmtSummary(x.reattached)}** |`));
  }
  return [
    '| backend | workers N | runs | SIGKILL → restarted job master recorded | SIGKILL → every worker past a barrier again |',
    '| --- | --- | --- | --- | --- |',
    ...lines,
    '',
    'Times in ms, median (min–max). No floor applies: without recovery the job is lost. The restart includes starting node and the CLI,',
    'reading and rewriting the journal, and listening again; re-attaching is each worker\'s next call on a new connection (its barrier',
    'arrival, sent again with the same key) and the release of that barrier by the new job master. On Slurm the job master runs in the',
    'batch step of the job\'s allocation, on MPI on the (only) host beside mpirun; both take over the detached srun step or mpirun.',
  ].join('\n');
}

export function recoverySummary(rows) {
  return rows.flatMap(([backend, r]) =>
    Array.isArray(r)
      ? figures(r).map((x) => `  recovery ${backend} N=${String(x.n).padEnd(4)} restarted ${fmtSummary(x.restart)}, all past a barrier again ${fmtSummary(x.reattached)}`)
      : [`  recovery ${backend}: FAILED: ${r?.error ?? 'no data'}`],
  );
}

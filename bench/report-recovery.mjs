// The job master recovery benchmark's part of docs/benchmarks.md and of the summary: local (recovery.mjs),
// and N=4 on the cluster backends whose benchmarks measure it too (slurm.mjs, mpi.mjs, nomad.mjs: their
// `recovery`, and k8s-recovery.mjs); and the cost of each journal store (journal-cost.mjs, run by recovery.mjs,
// k8s-recovery.mjs, nomad.mjs).
import { fmt, fmtSummary, summarize } from './stats.mjs';

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
    'batch step of the job\'s allocation, on MPI on the (only) host beside mpirun; both take over the detached srun step or mpirun. On',
    'Nomad it runs in its own allocation of the job, restarted there by its supervisor, its journal in Nomad Variables; on Kubernetes in',
    'its pod, whose container is restarted (the first restart of a container comes at once, later ones after the kubelet\'s back-off),',
    'its journal in a ConfigMap.',
  ].join('\n');
}

/** `rows`: [store, its figures from journal-cost.mjs (or { error }, or undefined when not run)]. */
export function journalSection(rows) {
  const lines = rows.map(([store, j]) => {
    if (!j || j.error) return `| ${store} | not measured: ${j?.error ?? 'no data'} | — | — |`;
    const one = summarize(j.commitMs);
    const burst = summarize(j.burstMs);
    return `| ${store} | ${fmtSummary(one)} (${j.commits}) | ${fmtSummary(burst)} (${j.burstMs.length}) | ${fmt((burst.median / j.burst) * 1000)} µs |`;
  });
  return [
    '| journal store | one commit: append, wait until stored (runs) | 1000 appends in one turn, one group commit (runs) | per record in such a burst |',
    '| --- | --- | --- | --- |',
    ...lines,
    '',
    'Times in ms, median (min–max). What an answer of the job master waits for before it is sent (a registration or a barrier',
    'arrival alone waits one commit; many at once share one). The file is fsync\'d on this machine\'s disk (local, MPI, Slurm); the',
    'ConfigMap is patched on the API server k8s-recovery.mjs starts (one JSON patch per commit, etcd behind it); the Nomad head variable is written',
    'with check-and-set on the agent of (f) (one Raft write per commit, a dev agent\'s in-memory Raft).',
  ].join('\n');
}

export function journalSummary(rows) {
  return rows.map(([store, j]) =>
    !j || j.error ? `  journal ${store}: not measured: ${j?.error ?? 'no data'}` : `  journal ${store}: one commit ${fmtSummary(summarize(j.commitMs))}, 1000 appends ${fmtSummary(summarize(j.burstMs))}`,
  );
}

export function recoverySummary(rows) {
  return rows.flatMap(([backend, r]) =>
    Array.isArray(r)
      ? figures(r).map((x) => `  recovery ${backend} N=${String(x.n).padEnd(4)} restarted ${fmtSummary(x.restart)}, all past a barrier again ${fmtSummary(x.reattached)}`)
      : [`  recovery ${backend}: FAILED: ${r?.error ?? 'no data'}`],
  );
}

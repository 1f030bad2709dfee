// The job master recovery benchmark's part of docs/benchmarks.md and of the summary.
import { fmtSummary, summarize } from './stats.mjs';

const figures = (r) => r.map((x) => ({ n: x.n, runs: x.restartMs.length, restart: summarize(x.restartMs), reattached: summarize(x.reattachedMs) }));

export function recoverySection(r) {
  if (!Array.isArray(r)) return `Not measured: ${r?.error ?? 'no data'}.`;
  return [
    '| workers N | runs | SIGKILL → restarted job master recorded | SIGKILL → every worker past a barrier again |',
    '| --- | --- | --- | --- |',
    ...figures(r).map((x) => `| ${x.n} | ${x.runs} | ${fmtSummary(x.restart)} | **${fmtSummary(x.reattached)}** |`),
    '',
    'Times in ms, median (min–max). No floor applies: without recovery the job is lost. The restart includes starting node and the CLI,',
    'reading and rewriting the journal, and listening again; re-attaching is each worker\'s next call on a new connection (its barrier',
    'arrival, sent again with the same key) and the release of that barrier by the new job master.',
  ].join('\n');
}

export function recoverySummary(r) {
  if (!Array.isArray(r)) return [`  recovery: FAILED: ${r?.error ?? 'no data'}`];
  return figures(r).map((x) => `  recovery N=${String(x.n).padEnd(4)} restarted ${fmtSummary(x.restart)}, all past a barrier again ${fmtSummary(x.reattached)}`);
}

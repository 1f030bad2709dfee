// The messages benchmark's part of docs/benchmarks.md and of the summary (bench/messages.mjs).
import { fmt, fmtSummary, summarize } from './stats.mjs';

function figures(d) {
  return d.results.map((r) => {
    const of = (who) => summarize(r.medians[who] ?? []);
    const ratio = summarize((r.medians.twister2 ?? []).map((t, i) => t / r.medians.floor[i]).filter(Number.isFinite));
    const failed = Object.entries(r.errors).filter(([, e]) => e.length).map(([who, e]) => `${who} ${e.length}: ${e[0]}`).join('; ').slice(0, 300);
    return { n: r.n, floor: of('floor'), twister2: of('twister2'), ray: of('ray'), dask: of('dask'), ratio, failed };
  });
}

export function messagesSection(d) {
  if (!d || d.error) return `Not measured: ${d?.error ?? 'no data'}.`;
  const peers = d.peers.error ? `**Dask and Ray not measured:** ${d.peers.error}` : `Peers: dask ${d.peers.versions.dask}, distributed ${d.peers.versions.distributed}, ray ${d.peers.versions.ray}.`;
  return [
    '| workers N | floor: node IPC | twister2 driver ↔ workers | ratio twister2 / floor | Ray actors | Dask tasks | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...figures(d).map((x) => `| ${x.n} | ${fmtSummary(x.floor)} | **${fmtSummary(x.twister2)}** | **${fmtSummary(x.ratio)}×** | ${fmtSummary(x.ray)} | ${fmtSummary(x.dask)} | ${x.failed || '0'} |`),
    '',
    'Milliseconds per round (a broadcast and every answer). ' + peers,
  ].join('\n');
}

export function messagesSummary(d) {
  if (!d || d.error) return [`  messages: FAILED: ${d?.error ?? 'no data'}`];
  return figures(d).map((x) => `  messages N=${String(x.n).padEnd(3)} round twister2 ${fmt(x.twister2.median)} floor ${fmt(x.floor.median)} ratio ${fmt(x.ratio.median)}×  ray ${fmt(x.ray.median)}  dask ${fmt(x.dask.median)}`);
}

// The CLI end-to-end (with Dask and Ray) and many-jobs benchmarks' parts of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const perRun = (a, b) => a.map((t, i) => t / b[i]).filter(Number.isFinite);
const failures = (errs) => Object.entries(errs).filter(([, e]) => e.length).map(([who, e]) => `${who} ${e.length}: ${e[0]}`).join('; ').slice(0, 400);

export function cliFigures(d) {
  return d.results.map((r) => ({
    n: r.n,
    floor: summarize(r.floorMs),
    twister2: summarize(r.twister2Ms),
    dask: summarize(r.daskMs),
    ray: summarize(r.rayMs),
    // twister2 and the floor run back to back within each repetition; a failed twister2 run has no ratio.
    ratio: summarize(r.twister2Ms.length === r.floorMs.length ? perRun(r.twister2Ms, r.floorMs) : []),
    failures: failures(r.errors),
  }));
}

export function cliSection(d) {
  if (!d || d.error) return `Not measured: ${d?.error ?? 'no data'}.`;
  const peers = d.peers.error ? `**Dask and Ray not measured:** ${d.peers.error}` : `Peers: dask ${d.peers.versions.dask}, distributed ${d.peers.versions.distributed}, ray ${d.peers.versions.ray} (PyPI, in a virtual environment the bench keeps under ~/.cache/twister2-bench), ${d.peers.pythonVersion ?? 'python3'}.`;
  return [
    '| workers N | floor: N × `node -e 0` | twister2 CLI | ratio twister2 / floor | Dask LocalCluster | Ray local | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...cliFigures(d).map((x) => `| ${x.n} | ${fmtSummary(x.floor)} | **${fmtSummary(x.twister2)}** | **${fmtSummary(x.ratio)}×** | ${fmtSummary(x.dask)} | ${fmtSummary(x.ray)} | ${x.failures || '0'} |`),
    '',
    'Times in ms, median (min–max), each a whole process from launch to exit. ' + peers,
  ].join('\n');
}

export function manyFigures(m) {
  const ok = m.passedMs.map((t, i) => [t, m.floorMs[i]]).filter(([t]) => Number.isFinite(t));
  return { passed: summarize(ok.map(([t]) => t)), floor: summarize(m.floorMs), exited: summarize(m.allExitedMs), ratio: summarize(ok.map(([t, f]) => t / f)), runs: m.passedMs.length };
}

export function manySection(m) {
  if (!m || m.error) return `Not measured: ${m?.error ?? 'no data'}.`;
  const f = manyFigures(m);
  return [
    `| jobs × workers | runs | floor: ${m.jobs * m.workers} × \`node -e 0\` | all past 1st barrier | every CLI exited | ratio to floor | failed jobs |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    `| ${m.jobs} × ${m.workers} | ${f.runs} | ${fmtSummary(f.floor)} | **${fmtSummary(f.passed)}** | ${fmtSummary(f.exited)} | **${fmtSummary(f.ratio)}×** | ${m.failures.length ? `${m.failures.length}: ${m.failures.slice(0, 2).join('; ')}` : '0'} |`,
    '',
    'Times in ms from starting the CLI processes, median (min–max); a run with a failed job has no barrier figure.',
  ].join('\n');
}

export function peersSummary(d, m) {
  const lines = [];
  if (!d || d.error) lines.push(`  cli end to end: FAILED: ${d?.error ?? 'no data'}`);
  else for (const x of cliFigures(d)) lines.push(`  cli N=${String(x.n).padEnd(3)} twister2 ${fmt(x.twister2.median)} floor ${fmt(x.floor.median)} ratio ${fmt(x.ratio.median)}×  dask ${fmt(x.dask.median)}  ray ${fmt(x.ray.median)}`);
  if (!m || m.error) lines.push(`  many jobs: FAILED: ${m?.error ?? 'no data'}`);
  else {
    const f = manyFigures(m);
    lines.push(`  many jobs ${m.jobs}×${m.workers}: all past 1st barrier ${fmt(f.passed.median)} floor ${fmt(f.floor.median)} ratio ${fmt(f.ratio.median)}×, failed jobs ${m.failures.length}`);
  }
  return lines;
}

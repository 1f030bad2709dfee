// The "where the time goes" benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, summarize } from './stats.mjs';

/** Per phase (in the order workers reach them): the median CPU ms spent since the previous phase. */
export function phaseFigures(p, workers = p.workers) {
  const order = [];
  const spent = new Map();
  for (const marks of workers) {
    let prev = 0;
    for (const m of marks) {
      if (!spent.has(m.phase)) {
        order.push(m.phase);
        spent.set(m.phase, []);
      }
      spent.get(m.phase).push(m.cpuMs - prev);
      prev = m.cpuMs;
    }
  }
  const total = summarize(workers.map((marks) => marks.at(-1)?.cpuMs ?? NaN).filter(Number.isFinite));
  return { rows: order.map((phase) => ({ phase, cpu: summarize(spent.get(phase)) })), total, floor: summarize(p.floorCpuMs) };
}

const LABELS = {
  // The runtime is one bundle (scripts/bundle.mjs): node compiles it, and the few files it imports, before its first line.
  'node started': 'node itself and compiling the runtime\'s bundle, until its first line',
  'modules loaded': 'running the runtime\'s modules',
  'package ready': 'package fetched (or found) and the spec read',
  registered: 'registration (and picking free ports)',
  'heartbeats started': 'the heartbeat thread (a second V8 isolate) and its event stream',
  discovery: 'discovery: `ctx.workers()`',
  'first barrier': 'the first barrier',
  'program done': 'the rest of the program (a second barrier)',
  exit: 'reporting completion, ending the program\'s processes, exit',
};

export function phasesSection(p) {
  if (!p || p.error) return `Not measured: ${p?.error ?? 'no data'}.`;
  const f = phaseFigures(p);
  return [
    '| phase ends at | CPU spent since the previous phase | ms per worker (median) | share |',
    '| --- | --- | --- | --- |',
    ...f.rows.map((r) => `| ${r.phase} | ${LABELS[r.phase] ?? ''} | ${fmt(r.cpu.median)} | ${fmt((100 * r.cpu.median) / f.total.median)} % |`),
    `| | **whole worker, until its exit hook** | **${fmt(f.total.median)}** | |`,
    `| | bare \`node -e 0\`, same run | ${fmt(f.floor.median)} | ratio ${fmt(f.total.median / f.floor.median)}× |`,
    '',
    `${p.workers.length} workers of ${p.runs} local jobs of ${p.n} (bench/fixtures/startup-job), after one unrecorded warm-up job.` +
      (p.failures.length ? ` Failed runs: ${p.failures.join('; ')}.` : ''),
    ...commandLines(p),
  ].join('\n');
}

/** A command worker (its program another process, here `true`): the runtime alone, its heartbeats on its main thread. */
function commandLines(p) {
  if (!p.commandWorkers?.length) return [];
  const c = phaseFigures(p, p.commandWorkers);
  const floor = summarize(p.floorCpuMs).median;
  return [
    '',
    `A command worker's runtime (program \`true\`, a process of its own, not counted), ${p.commandWorkers.length} workers: ` +
      `**${fmt(c.total.median)} ms** (${fmt(c.total.median / floor)}× \`node -e 0\`); ${c.rows.map((r) => `${r.phase} ${fmt(r.cpu.median)}`).join(', ')}. ` +
      'Its heartbeats run on its main thread: no program code runs there.',
  ];
}

export function phasesSummary(p) {
  if (!p || p.error) return [`  phases: FAILED: ${p?.error ?? 'no data'}`];
  const f = phaseFigures(p);
  const lines = [`  worker CPU ${fmt(f.total.median)} ms (node -e 0: ${fmt(f.floor.median)}): ${f.rows.map((r) => `${r.phase} ${fmt(r.cpu.median)}`).join(', ')}`];
  if (p.commandWorkers?.length) lines.push(`  command worker runtime CPU ${fmt(phaseFigures(p, p.commandWorkers).total.median)} ms`);
  return lines;
}

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
    ...threadFloorRow(p, f.floor.median),
    '',
    `${p.workers.length} workers of ${p.runs} local jobs of ${p.n} (bench/fixtures/startup-job), after one unrecorded warm-up job.` +
      (p.failures.length ? ` Failed runs: ${p.failures.join('; ')}.` : ''),
    ...commandLines(p),
  ].join('\n');
}

/** What node itself charges for one worker thread (no code of ours), beside the heartbeat thread's phase. */
function threadFloorRow(p, floor) {
  if (!p.threadFloorCpuMs?.length) return [];
  const thread = summarize(p.threadFloorCpuMs).median;
  return [`| | bare node starting one worker thread that runs \`0\`, same run | ${fmt(thread)} | the thread alone ${fmt(thread - floor)} ms |`];
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

/**
 * Before and after (bench/phases-baseline.mjs): a worker's CPU at the commit before the fast-start work and
 * now, split the same coarse way on both sides, with the floor of the same run.
 */
export function phasesBaselineSection(b) {
  if (!b) return '';
  if (b.error) return `Before and after: not measured: ${b.error}.`;
  const floor = summarize(b.floorCpuMs).median;
  // Where the workers noted their phases, their own CPU until "modules loaded"; otherwise an import of the runtime.
  const side = (s) => {
    const loaded = s.modulesLoadedCpuMs?.length ? summarize(s.modulesLoadedCpuMs).median : summarize(s.importCpuMs).median;
    const whole = summarize(s.workerCpuMs).median;
    return { modules: loaded - floor, rest: whole - loaded, whole };
  };
  const [before, after] = [side(b.before), side(b.after)];
  const row = (what, x, y) => `| ${what} | ${fmt(x)} | ${fmt(y)} |`;
  return [
    `Before and after, in one run (bench/phases-baseline.mjs): the worker runtime at commit ${b.commit.slice(0, 7)}, the last before the fast-start work (built from \`git archive\` with its own locked packages), and now; ${b.runs} local jobs of ${b.n} workers each, alternating. Both are split the same coarse way (medians, ms of CPU per worker); module loading is, before, a node that only imports dist/worker/runtime.js (the baseline has no phase notes), and now the workers' own CPU until their "modules loaded" note (the bundle they load), each less a bare node:`,
    '',
    '| phase | before | now |',
    '| --- | --- | --- |',
    row('node itself (a bare `node -e 0`)', floor, floor),
    row('loading the runtime\'s modules', before.modules, after.modules),
    row('everything else: package, spec, registration, heartbeats (thread), discovery, barriers, exit', before.rest, after.rest),
    `| **whole worker** | **${fmt(before.whole)}** (${fmt(before.whole / floor)}×) | **${fmt(after.whole)}** (${fmt(after.whole / floor)}×) |`,
  ].join('\n');
}

/** "What dominates": the heartbeat thread's share of a module worker, against what node charges for any thread. */
export function phasesNotes(p, baseline) {
  if (!p || p.error || !p.threadFloorCpuMs?.length) return [];
  const f = phaseFigures(p);
  const heartbeats = f.rows.find((r) => r.phase === 'heartbeats started')?.cpu.median ?? NaN;
  const floor = f.floor.median;
  const thread = summarize(p.threadFloorCpuMs).median - floor;
  const out = [
    `- **The heartbeat thread is the largest part of a module worker's own cost.** Its phase took ${fmt(heartbeats)} ms of a worker's ${fmt(f.total.median)} in (j); ` +
      `a bare node that starts one worker thread running \`0\` costs ${fmt(thread)} ms more than \`node -e 0\` (${fmt(thread / floor)}× a whole node start): node 20 boots each thread's ` +
      `isolate and its built-in modules again, without the start-up snapshot the main thread has. Without the thread a worker would cost about ${fmt((f.total.median - heartbeats) / floor)}× a bare node. ` +
      'It stays: it keeps a program that blocks its main thread alive for the job master, ends that program and what it started when the job master is gone or the job ends, ' +
      'and runs worker.health (test/integration/local-lifecycle.test.ts and local-health.test.ts show each). A command worker, whose program is another process, keeps its heartbeats on its main thread.',
  ];
  if (baseline && !baseline.error) {
    const b = summarize(baseline.before.workerCpuMs).median;
    const a = summarize(baseline.after.workerCpuMs).median;
    out.push(`- **Before and after:** a worker's CPU fell from ${fmt(b)} ms at ${baseline.commit.slice(0, 7)} to ${fmt(a)} ms now (${fmt(b / a)}× less), measured in one run; see the end of (j).`);
  }
  return out;
}

// The Nomad start-up benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)} s` : 'n/a');

function figures(m) {
  return m.results.map((r) => {
    const passed = summarize(r.passedMs);
    const floor = summarize(r.floorMs);
    const floorStarted = summarize(r.floorStartedMs);
    return {
      n: r.n,
      runs: r.passedMs.length,
      submit: summarize(r.submitMs),
      registered: summarize(r.registeredMs.filter(Number.isFinite)),
      passed,
      ended: summarize(r.endedMs),
      floor,
      floorStarted,
      floorStartedEvent: summarize(r.floorStartedEventMs.filter(Number.isFinite)),
      // Of the medians: twister2 and the floors are separate jobs, each median over the same runs.
      ratio: passed.median / floor.median,
      ratioStarted: passed.median / floorStarted.median,
      failures: r.failures,
    };
  });
}

export function nomadSection(m) {
  if (!m || m.error) return `Not measured: ${m?.error ?? 'no data'}.`;
  const f = figures(m);
  const rows = f.map(
    (x) =>
      `| ${x.n} | ${x.runs} | ${fmtSummary(x.submit)} | ${fmtSummary(x.registered)} | **${fmtSummary(x.passed)}** | ${fmtSummary(x.floor)} | ${fmtSummary(x.floorStarted)} | ${fmtSummary(x.floorStartedEvent)} | **${fmt(x.ratio)}×** | ${fmt(x.ratioStarted)}× | ${x.failures.length ? `${x.failures.length}: ${x.failures.join('; ').slice(0, 300)}` : '0'} |`,
  );
  return [
    '| workers N | runs | submit() returned | all registered | all past 1st barrier | floor: N × `/bin/true` complete | floor: all running or complete (polled) | floor: last task Started (agent events) | ratio twister2 / floor complete | ratio twister2 / floor started | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Times in ms, as median (min–max): twister2 from the \`submit()\` call, the floor from its \`POST /v1/jobs\`. The ratios are of the medians (twister2 median / floor median). Nomad ${m.version}, agent running as ${m.agentUser}, ${m.cpus} CPUs.`,
    '',
    'What each number includes. **twister2**: building the job (spec, package on local disk, job master in the bench process), Nomad job validation, the token\'s Nomad Variable and the ' +
      'registration, the placement check on the evaluation, then per allocation Nomad\'s scheduling, allocation directory, the template that reads the token, the raw_exec executor, ' +
      'and `node` running the twister2 worker runtime (module loading, registration, discovery) up to the first barrier; the time is the latest `BENCH-PASSED` timestamp the workers printed. ' +
      '"All registered" is when the job turned RUNNING. ' +
      `**Floor complete**: scheduling, allocation directories, one raw_exec executor per task running \`/bin/true\`, and the client reporting each allocation complete to the server, ` +
      `seen by polling \`/v1/job/<id>/allocations\` every ${m.pollMs} ms. **Floor started (polled)**: the first poll at which every allocation was running or complete; \`/bin/true\` exits at once, ` +
      'so this is usually the same poll as "complete" and it is an upper bound. **Last task Started**: the latest `Started` task event the agent recorded, from the allocations\' task states, ' +
      'the start-only floor without polling or status-report delay.',
    'Each twister2 run waits for `handle.wait()` (the launcher stopped and purged the Nomad job) and checks Nomad no longer has the job; each floor job is purged; before every run the bench waits until ' +
      'Nomad lists no live job. One agent serves the whole benchmark; one unrecorded warm-up (floor and job, N=2) runs first. A failed run is recorded here and run again.',
  ].join('\n');
}

export function nomadNotes(m) {
  if (!m || m.error || !m.results?.length) return [];
  const f = figures(m);
  const [small, big] = [f[0], f[f.length - 1]];
  return [
    `- **Nomad start-up** (one dev agent, raw_exec): all ${big.n} workers were past the first barrier after ${sec(big.passed.median)}, ${fmt(big.ratio)}× the ${sec(big.floor.median)} ` +
      `a bare batch job of ${big.n} \`/bin/true\` tasks takes to complete (+${sec(big.passed.median - big.floor.median)}); at N=${small.n} ${sec(small.passed.median)} vs ${sec(small.floor.median)} ` +
      `(${fmt(small.ratio)}×). Nomad's own share is the floor; the rest is the twister2 worker runtime on top of \`node\` in every allocation (compare (a)) and the job's Nomad Variable, template and registration steps.`,
  ];
}

export function nomadSummary(m) {
  if (!m || m.error) return [`  nomad: FAILED: ${m?.error ?? 'no data'}`];
  return figures(m).map(
    (x) =>
      `  nomad N=${String(x.n).padEnd(3)} twister2 ${fmtSummary(x.passed).padEnd(24)} floor complete ${fmtSummary(x.floor).padEnd(22)} ratio ${fmt(x.ratio)}× (vs started ${fmt(x.ratioStarted)}×)`,
  );
}

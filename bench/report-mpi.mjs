// The MPI launch-overhead benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)} s` : 'n/a');

function figures(m) {
  return m.results.map((r) => ({
    n: r.n,
    runs: r.passedMs.length,
    submit: summarize(r.submitMs),
    registered: summarize(r.registeredMs.filter(Number.isFinite)),
    passed: summarize(r.passedMs),
    ended: summarize(r.endedMs),
    floor: summarize(r.floorMs),
    // Per run (floor and job back to back), then summarized.
    ratio: summarize(r.passedMs.map((t, i) => t / r.floorMs[i])),
    overhead: summarize(r.passedMs.map((t, i) => t - r.floorMs[i])),
    failures: r.failures,
  }));
}

export function mpiSection(m) {
  if (!m || m.error) return `Not measured: ${m?.error ?? 'no data'}.`;
  const f = figures(m);
  const rows = f.map(
    (x) =>
      `| ${x.n} | ${x.runs} | ${fmtSummary(x.submit)} | ${fmtSummary(x.registered)} | **${fmtSummary(x.passed)}** | ${fmtSummary(x.floor)} | **${fmtSummary(x.ratio)}×** | ${fmtSummary(x.overhead)} | ${x.failures.length ? `${x.failures.length}: ${x.failures.join('; ').slice(0, 300)}` : '0'} |`,
  );
  return [
    '| ranks N | runs | submit() returned | all registered | all past 1st barrier | floor: bare `mpirun -np N node -e 0` | ratio twister2 / floor | twister2 − floor | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Times in ms from the \`submit()\` call, as median (min–max); the ratio and the difference are taken per run (floor and job back to back) and then summarized. mpirun: \`${m.mpirun}\`, ${m.cpus} CPUs.`,
    'A failed run is recorded here and run again; after every run the bench checks that no process of the job is left (by `TWISTER2_JOB_ID` in /proc).',
  ].join('\n');
}

export function mpiNotes(m) {
  if (!m || m.error || !m.results?.length) return [];
  const f = figures(m);
  const [small, big] = [f[0], f[f.length - 1]];
  return [
    `- **MPI launch overhead** (one host, mpirun starting the ranks locally): all ${big.n} ranks were past the first barrier after ${sec(big.passed.median)}, ` +
      `${fmt(big.ratio.median)}× the ${sec(big.floor.median)} bare \`mpirun -np ${big.n} node -e 0\` takes (+${sec(big.overhead.median)}); at N=${small.n} ` +
      `${sec(small.passed.median)} vs ${sec(small.floor.median)} (${fmt(small.ratio.median)}×). The difference is each rank's twister2 worker runtime (module loading, ` +
      `package, registration, discovery, barrier) on top of the node start both pay; compare (a), where the same worker runs without mpirun.`,
  ];
}

export function mpiSummary(m) {
  if (!m || m.error) return [`  mpi: FAILED: ${m?.error ?? 'no data'}`];
  return figures(m).map(
    (x) => `  mpi N=${String(x.n).padEnd(4)} twister2 ${fmtSummary(x.passed).padEnd(24)} floor mpirun ${fmtSummary(x.floor).padEnd(24)} ratio ${fmt(x.ratio.median)}×`,
  );
}

// The Slurm launch-overhead benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)} s` : 'n/a');
const finite = (xs) => xs.filter(Number.isFinite);

function figures(s) {
  return s.results.map((r) => {
    const passed = summarize(r.passedMs);
    const ended = summarize(r.endedMs);
    const floorRunning = summarize(finite(r.floorRunningMs));
    const floorEnded = summarize(r.floorEndedMs);
    return {
      n: r.n,
      runs: r.passedMs.length,
      submit: summarize(r.submitMs),
      registered: summarize(finite(r.registeredMs)),
      passed,
      ended,
      floorRunning,
      floorEnded,
      // Ratios of the medians (twister2 and floor alternate within the run).
      ratioStart: passed.median / floorRunning.median,
      ratioEnd: passed.median / floorEnded.median,
      ratioEndToEnd: ended.median / floorEnded.median,
      failures: r.failures,
    };
  });
}

export function slurmSection(s) {
  if (!s || s.error) return `Not measured: ${s?.error ?? 'no data'}.`;
  const f = figures(s);
  const rows = f.map(
    (x) =>
      `| ${x.n} (${x.n / s.nodes} per node) | ${x.runs} | ${fmtSummary(x.submit)} | ${fmtSummary(x.registered)} | **${fmtSummary(x.passed)}** | ${fmtSummary(x.ended)} | ` +
      `${fmtSummary(x.floorRunning)}${x.floorRunning.n < x.runs ? ` (${x.floorRunning.n} seen)` : ''} | ${fmtSummary(x.floorEnded)} | ` +
      `**${fmt(x.ratioStart)}×** | **${fmt(x.ratioEnd)}×** | ${fmt(x.ratioEndToEnd)}× | ${x.failures.length ? `${x.failures.length}: ${x.failures.join('; ').slice(0, 300)}` : '0'} |`,
  );
  return [
    '| workers N | runs | submit() returned | all registered | all past 1st barrier | job ended (`handle.wait()`) | floor: sbatch → RUNNING | floor: sbatch → left squeue | ratio to floor start | ratio to floor end | end / floor end | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `Times in ms, median (min–max): twister2 from the \`submit()\` call, the floor from the \`sbatch\` call. Ratios are of the medians: "all past 1st barrier" over the floor's ` +
      `sbatch → RUNNING (start only: Slurm allocated the job; its tasks have not started yet) and over sbatch → left squeue (end to end: \`srun node -e 0\` ran on every task and the job ended). ` +
      `The second floor includes waiting for the job to end, while the twister2 figure stops at the first barrier, with the workers still running; ` +
      `the last ratio compares like with like, twister2's whole job (until \`handle.wait()\` returned: workers passed a second barrier and exited, Slurm ended the job) with the end-to-end floor. ` +
      `The floor is polled with \`squeue\` every ${s.pollMs} ms, so its figures are up to that much late; a job that started and ended between two polls has no RUNNING sample.`,
    `Cluster: ${s.version}, ${s.nodes} nodes × ${s.cpusPerNode} CPUs (claimed; the machine has ${s.cpus}), started in ${sec(s.clusterStartMs)}; resources per worker: 1 CPU, ${s.memory}. ` +
      'A failed run is recorded here and run again; after every run the bench checks that Slurm lists nothing of the job and no process of it is left (by `TWISTER2_JOB_ID` in /proc).',
  ].join('\n');
}

export function slurmNotes(s) {
  if (!s || s.error || !s.results?.length) return [];
  const f = figures(s);
  const [small, big] = [f[0], f[f.length - 1]];
  return [
    `- **Slurm launch overhead** (2 nodes in network namespaces on this machine): all ${big.n} workers were past the first barrier ${sec(big.passed.median)} after \`submit()\`; ` +
      `a bare \`sbatch --wrap 'srun node -e 0'\` of the same size was RUNNING after ${sec(big.floorRunning.median)} and gone from squeue after ${sec(big.floorEnded.median)} ` +
      `(${fmt(big.ratioStart)}× / ${fmt(big.ratioEnd)}×); at N=${small.n} ${sec(small.passed.median)} vs ${sec(small.floorRunning.median)} / ${sec(small.floorEnded.median)} ` +
      `(${fmt(small.ratioStart)}× / ${fmt(small.ratioEnd)}×). Both pay Slurm's scheduling and step launch and a node start per task; on top, twister2 pays \`submit()\` ` +
      `(${fmt(big.submit.median)} ms) and each worker's runtime (module loading, package, registration, discovery, barrier), all ${big.n} of them on this machine's ${s.cpus} CPUs; ` +
      `compare (a), where the same worker runs without Slurm.`,
  ];
}

export function slurmSummary(s) {
  if (!s || s.error) return [`  slurm: FAILED: ${s?.error ?? 'no data'}`];
  return figures(s).map(
    (x) =>
      `  slurm N=${String(x.n).padEnd(3)} twister2 ${fmtSummary(x.passed).padEnd(24)} floor sbatch→RUNNING ${fmt(x.floorRunning.median)}, →gone ${fmt(x.floorEnded.median)}  ratio ${fmt(x.ratioStart)}× / ${fmt(x.ratioEnd)}×`,
  );
}

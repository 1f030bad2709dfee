// Turns the benchmarks' samples into docs/benchmarks.md and a compact stdout summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';
import { uploadSection, uploadSummary } from './report-upload.mjs';
import { mpiNotes, mpiSection, mpiSummary } from './report-mpi.mjs';
import { slurmNotes, slurmSection, slurmSummary } from './report-slurm.mjs';
import { nomadNotes, nomadSection, nomadSummary } from './report-nomad.mjs';
import { k8sNotes, k8sSection, k8sSummary } from './report-k8s.mjs';
import { cliSection, manySection, peersSummary } from './report-peers.mjs';
import { messagesSection, messagesSummary } from './report-messages.mjs';
import { targetsSection, targetsSummary } from './targets.mjs';
import { phasesBaselineSection, phasesNotes, phasesSection, phasesSummary } from './report-phases.mjs';
import { journalSection, journalSummary, recoverySection, recoverySummary } from './report-recovery.mjs';

const col = (runs, key) => runs.map((r) => r[key]);
const ms = (s) => fmtSummary(s);
const row = (cells) => `| ${cells.join(' | ')} |`;
const table = (head, rows) => [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)} s` : 'n/a');

/** Per size: the summaries the report and the summary print. */
function startupFigures(r) {
  const ratios = r.passedMs.map((t, i) => t / r.floorMs[i]);
  return {
    n: r.n,
    runs: r.passedMs.length,
    submit: summarize(r.submitMs),
    registered: summarize(r.registeredMs.filter(Number.isFinite)),
    passed: summarize(r.passedMs),
    floor: summarize(r.floorMs),
    ratio: summarize(ratios),
    floorCpu: summarize(r.floorCpuMs),
    importCpu: summarize(r.importCpuMs),
    workerCpu: summarize(r.workerCpuMs),
    clientCpu: summarize(r.clientCpuMs),
    failures: r.failures,
  };
}

/** How the simulated workers reach the job master, in words. */
function transportOf(c) {
  if (c.variant === 'channel') return `channel, ${c.connections} shared connections`;
  if (c.variant === 'channel-each') return 'channel, a connection per worker';
  if (c.variant === 'channel-journal') return 'channel, journal on (fsync before answering)';
  return 'a request per call (HTTP)';
}

/** CPU per operation: fractions of a millisecond, which fmt's one decimal would round to 0.0. */
const fmtOp = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

function jobmasterFigures(c) {
  const all = c.runs;
  // A stalled run has a register phase but no barrier figures; it is counted, not averaged in.
  const stalled = all.filter((r) => r.stalled);
  const runs = all.filter((r) => !r.stalled);
  const perOp = (cpuKey, from = runs) => summarize(from.map((r) => r[cpuKey] / c.n));
  return {
    n: c.n,
    variant: c.variant ?? 'http',
    how: transportOf(c),
    runs: all.length,
    stalled: stalled.length,
    arrivedAtStall: stalled.map((r) => r.arrivedAtStall),
    stallMs: c.stallMs,
    register: summarize(col(all, 'registerMs')),
    rate: summarize(col(all, 'registrationsPerSec')),
    barrier: summarize(col(runs, 'barrierMs')),
    total: summarize(col(runs, 'totalMs')),
    warm: summarize(col(runs, 'warmBarrierMs')),
    serverRegPerOp: perOp('serverCpuRegisterMs', all),
    clientRegPerOp: perOp('clientCpuRegisterMs', all),
    serverBarrierPerOp: perOp('serverCpuBarrierMs'),
    serverWarmPerOp: perOp('serverCpuWarmBarrierMs'),
    serverHeartbeatPerOp: perOp('serverCpuHeartbeatMs'),
    clientWarmPerOp: perOp('clientCpuWarmBarrierMs'),
    overflows: summarize(col(all, 'listenOverflows')),
    resent: summarize(col(all, 'resentArrivals')),
    warmOverflows: summarize(col(runs, 'warmListenOverflows')),
    serverFds: summarize(col(all, 'serverPeakFds')),
    clientFds: summarize(col(all, 'clientPeakFds')),
    concurrency: c.registerConcurrency,
    fdLimit: c.fdLimit,
  };
}

function startupSection(results) {
  if (!Array.isArray(results)) return `**Did not complete:** ${results.error}`;
  const f = results.map(startupFigures);
  const main = table(
    ['workers N', 'runs', 'submit() returned', 'all registered', 'all past 1st barrier', 'floor: N × `node -e 0`', 'ratio twister2 / floor'],
    f.map((x) => [x.n, x.runs, ms(x.submit), ms(x.registered), `**${ms(x.passed)}**`, ms(x.floor), `**${fmtSummary(x.ratio)}×**`]),
  );
  const cpu = table(
    ['workers N', 'bare `node -e 0`', 'node importing dist/worker/runtime.js', 'twister2 worker, start to exit', 'submitting process per job (job master, client)', 'failed runs'],
    f.map((x) => [x.n, ms(x.floorCpu), ms(x.importCpu), `**${ms(x.workerCpu)}**`, ms(x.clientCpu), x.failures.length ? `${x.failures.length}: ${x.failures.join('; ').slice(0, 300)}` : '0']),
  );
  return [
    main,
    '',
    'Times in ms from the `submit()` call, as median (min–max). The ratio is taken per run (twister2 and its floor run back to back) and then summarized.',
    '',
    `CPU time (user + system, ms) per process, from the kernel's accounting of reaped child processes; the import column starts min(N, 8) processes that only \`import()\` the worker runtime's modules and exit. A failed run is recorded here and run again.`,
    '',
    cpu,
  ].join('\n');
}

function jobmasterSection(results) {
  if (!Array.isArray(results)) return `**Did not complete:** ${results.error}`;
  const f = results.map(jobmasterFigures);
  const main = table(
    ['transport', 'simulated workers N', 'runs (stalled)', 'register phase', 'registrations/s', 'barrier phase', 'total (register + barrier)', '2nd barrier, warm connections'],
    f.map((x) => [x.how, x.n, `${x.runs} (${x.stalled})`, ms(x.register), fmtSummary(x.rate), ms(x.barrier), `**${ms(x.total)}**`, ms(x.warm)]),
  );
  const detail = table(
    ['transport', 'N', 'CPU per registration: job master / client', 'job master CPU per heartbeat', 'CPU per arrival, 2nd barrier: job master / client', 'job master CPU per arrival, 1st barrier', 'listen-queue overflows (1st barrier)', 'arrivals re-sent', 'overflows (2nd barrier)', 'peak fds job master / client (limit)'],
    f.map((x) => [
      x.how,
      x.n,
      `${fmtOp(x.serverRegPerOp.median)} / ${fmtOp(x.clientRegPerOp.median)} ms`,
      `${fmtOp(x.serverHeartbeatPerOp.median)} ms`,
      `${fmtOp(x.serverWarmPerOp.median)} / ${fmtOp(x.clientWarmPerOp.median)} ms`,
      `${fmtOp(x.serverBarrierPerOp.median)} ms`,
      fmtSummary(x.overflows),
      fmtSummary(x.resent),
      fmtSummary(x.warmOverflows),
      `${fmt(x.serverFds.max)} / ${fmt(x.clientFds.max)} (${x.fdLimit})`,
    ]),
  );
  return [
    main,
    '',
    `Times in ms, median (min–max). Over the channel all calls are sent at once and pipelined on their connections; as HTTP requests, registrations run ${f[0]?.concurrency ?? '?'} at a time and all barrier arrivals are sent at once, each on a connection of its own. ` +
      `A run whose first barrier was not released within ${fmt((f[0]?.stallMs ?? NaN) / 1000)} s counts as stalled: it ends there and only its register phase is in the figures.` +
      f.filter((x) => x.stalled).map((x) => ` At N=${x.n}, the job master had received ${x.arrivedAtStall.join(', ')} of ${x.n} arrivals when runs stalled; the others were stuck in TCP.`).join(''),
    '',
    'Where the time goes (medians; CPU per simulated worker; overflows are the kernel-wide `TcpExtListenOverflows` counter, so other activity on the machine adds to them):',
    '',
    detail,
  ].join('\n');
}

function notes(data) {
  const out = [];
  if (Array.isArray(data.startup) && data.startup.length) {
    const f = data.startup.map(startupFigures);
    const [small, big] = [f[0], f[f.length - 1]];
    const cores = data.machine.cpus;
    out.push(
      `- **Start-up is CPU-bound, per worker.** A twister2 worker used ${fmt(big.workerCpu.median)} ms of CPU from start to exit at N=${big.n} ` +
        `(${fmt(small.workerCpu.median)} ms at N=${small.n}); a bare \`node -e 0\` uses ${fmt(big.floorCpu.median)} ms, and a node process that only imports the worker runtime's bundle ` +
        `${fmt(big.importCpu.median)} ms: starting node is ${fmt((100 * big.floorCpu.median) / big.workerCpu.median)}% of a worker's CPU and loading the runtime ` +
        `another ${fmt((100 * (big.importCpu.median - big.floorCpu.median)) / big.workerCpu.median)}%; the rest is what a worker does (package, registration, the heartbeat thread, discovery, barriers, exit; see (j)). ` +
        `On ${cores} cores, ${big.n} worker${big.n === 1 ? '' : 's'} therefore need at least ${sec((big.n * big.workerCpu.median) / Math.min(cores, big.n))} of CPU-bound time; all were past the first barrier after ${sec(big.passed.median)}, ` +
        `${fmt(big.ratio.median)}× the ${sec(big.floor.median)} of ${big.n} bare node processes. ` +
        `From "all registered" to "all past the barrier" took ${fmt(big.passed.median - big.registered.median)} ms at N=${big.n}.`,
    );
    out.push(
      `- \`submit()\` itself (spec, package, job directory, job master, spawning N processes) returned after ${fmt(big.submit.median)} ms at N=${big.n} ` +
        `and ${fmt(small.submit.median)} ms at N=${small.n}; spawning is synchronous in Node, and the first workers already compete for the CPU.`,
    );
  }
  out.push(...phasesNotes(data.phases, data.phasesBaseline));
  if (Array.isArray(data.jobmaster) && data.jobmaster.length) {
    const all = data.jobmaster.map(jobmasterFigures);
    const f = all.filter((x) => x.variant === 'channel').length ? all.filter((x) => x.variant === 'channel') : all;
    const [a, b] = [f[0], f[f.length - 1]];
    out.push(
      `- **Registrations** over the ${a.how} cost ${fmtOp(a.serverRegPerOp.median)} ms of job master CPU each at N=${a.n} and ${fmtOp(b.serverRegPerOp.median)} ms at N=${b.n}; ` +
        `the simulated workers' client costs ${fmtOp(a.clientRegPerOp.median)} / ${fmtOp(b.clientRegPerOp.median)} ms each, and both processes share ${data.machine.cpus} cores.`,
    );
    for (const x of all.filter((y) => y.variant !== 'channel' && y.n === b.n)) {
      out.push(`- Over the ${x.how}, N=${x.n} took ${fmt(x.total.median)} ms in total, with ${fmtOp(x.serverRegPerOp.median)} ms of job master CPU per registration.`);
    }
    const growth = b.serverWarmPerOp.median / a.serverWarmPerOp.median;
    out.push(
      growth > 1.5
        ? `- **Barriers grow faster than linearly.** Over open connections, an arrival costs the job master ${fmtOp(a.serverWarmPerOp.median)} ms of CPU at N=${a.n} ` +
            `but ${fmtOp(b.serverWarmPerOp.median)} ms at N=${b.n} (whole 2nd barrier: ${sec(a.warm.median)} vs ${sec(b.warm.median)}): every arrival re-scans all workers ` +
            `(\`BarrierService.check\` → \`JobMaster.liveIds\`), so one barrier is O(N²).`
        : `- Over open connections, an arrival costs the job master ${fmtOp(a.serverWarmPerOp.median)} ms of CPU at N=${a.n} and ${fmtOp(b.serverWarmPerOp.median)} ms at N=${b.n}.`,
    );
    out.push(
      b.overflows.median > 0 || b.resent.median > 0
        ? `- **The first barrier at N=${b.n} is dominated by TCP, not by the job master:** ${b.n} arrivals open ${b.n} new connections at once, the job master's listen backlog (1024) overflows ` +
            `(median ${fmt(b.overflows.median)} dropped connection attempts, ${fmt(b.resent.median)} arrivals reset or timed out and re-sent by the bench), and SYN retransmission back-off (1 s, 3 s, 7 s, ...) ` +
            `makes it ${sec(b.barrier.median)} (${sec(b.barrier.min)}–${sec(b.barrier.max)}) against ${sec(b.warm.median)} for the same barrier over open connections. ` +
            `Real workers each keep a keep-alive connection, so they meet this mostly when many of them register at once.` +
            (b.stalled
              ? ` In ${b.stalled} of ${b.runs} runs the first barrier was not released within ${fmt(b.stallMs / 1000)} s: the job master had ${b.arrivedAtStall.join(', ')} of ${b.n} arrivals, ` +
                `and the missing ones sat in TCP retransmission; \`JobMasterClient.barrier\` sets no client-side timeout, so a real worker would hang there until the job master's barrier timeout.`
              : '')
        : `- No listen-queue overflows during the first barrier at N=${b.n}: opening ${b.n} connections at once cost ${sec(b.barrier.median - b.warm.median)} over the warm barrier.`,
    );
    out.push(`- File descriptors fit: at most ${fmt(b.serverFds.max)} open in the job master and ${fmt(b.clientFds.max)} in the client at N=${b.n}, limit ${b.fdLimit}.`);
  }
  out.push(...mpiNotes(data.mpi));
  out.push(...slurmNotes(data.slurm));
  out.push(...nomadNotes(data.nomad));
  out.push(...k8sNotes(data.k8s));
  return out.join('\n');
}

export function renderMarkdown(data) {
  const m = data.machine;
  return `# Benchmarks

Generated by \`npm run bench\` (bench/run.mjs → bench/report.mjs); do not edit by hand, run it again.
The whole run took ${sec(data.durationMs)}. Other work on the machine during the run skews the figures; the load averages below show how much there was.${rerunNote(data)}

## Targets (issue 14, fast start)

Each target as a ratio against its floor measured in the same run (or the figure it names), from the sections below.

${targetsSection(data)}

## How to run

\`\`\`sh
npm run bench            # builds, runs the benchmarks, rewrites this file, prints a summary
\`\`\`

Knobs (environment): \`BENCH_REPEATS\` (start-up runs per size, default 5), \`BENCH_BIG_REPEATS\` (runs at N ≥ 64, default 3),
\`BENCH_STARTUP_SIZES\` (default \`1,4,16,64\`), \`BENCH_JM_CASES\` (\`workers:runs,...\`, default \`1000:5,10000:2\`),
\`BENCH_REGISTER_CONCURRENCY\` (default 256), \`BENCH_UPLOAD_RUNS\` (default 3), \`BENCH_HOST_NODE_ARGS\` (e.g. \`--cpu-prof\` for the job master process),
\`BENCH_CLI_SIZES\` (default \`1,4,16\`), \`BENCH_CLI_REPEATS\` (default 3), \`BENCH_PEERS=0\` (no Dask and Ray), \`BENCH_MANY_JOBS\` × \`BENCH_MANY_WORKERS\` (default 16 × 4), \`BENCH_MANY_REPEATS\` (default 3).
Each section is a script that also runs alone and prints its JSON line: e.g. \`npm run build && node bench/cli-e2e.mjs\` or \`node bench/many-jobs.mjs\`.
Only loopback addresses are used, except by (e), whose Slurm nodes sit on a private bridge (\`10.232.<slot>.0/24\`); every process the bench starts is stopped before it exits.

## Machine

| | |
| --- | --- |
| date (\`date -u\`) | ${m.date} |
| CPUs (\`nproc\`) | ${m.cpus} × ${m.cpuModel} |
| memory | ${m.memory} |
| OS | ${m.os} |
| node | ${m.node} |
| open-files limit | ${m.fdLimit} |
| \`NODE_EXTRA_CA_CERTS\` | ${m.extraCaCerts ?? 'not recorded'} |
| load average (1, 5, 15 min) at start / end | ${m.loadavg} / ${data.loadavgEnd ?? '?'} |

## (a) Job start-up, local cluster

From calling \`submit()\` (library, \`cluster: local\`, job master in the calling process, \`TWISTER2_HOME\` in a temp directory)
until all N workers are registered and past a first barrier. Each worker (bench/fixtures/startup-job/worker.mjs) does
\`await ctx.workers(); await ctx.barrier('first')\`, prints \`BENCH-PASSED <Date.now()>\` and waits at a second barrier so none leaves
early; the bench follows the job's logs and takes the latest timestamp. "All registered" is when the job turned RUNNING (job event).
Each run waits for \`handle.wait()\` (job ended, every process gone) before the next. The floor, measured in the same run just before,
is the time to start N bare \`node -e 0\` processes at once and see them all exit. One unrecorded warm-up job runs first.

${startupSection(data.startup)}

## (b) Job master alone, simulated workers

The job master (\`JobMaster\` + \`JobMasterServer\` with a launcher that starts nothing, bench/jobmaster-host.mjs) runs in its own
process on 127.0.0.1 with long timeouts (heartbeat 10m, so silent simulated workers are not failed). In the bench process, N simulated
workers — calls from \`JobMasterClient\`s in the bench process, not worker processes — register, then all call \`barrier('b')\` at once.
Three transports: the channel (protocol 2, docs/protocol.md: one connection carries many calls; what workers use) with the simulated
workers sharing 256 connections; the channel with a connection per simulated worker, as real workers have; and a request per call
over a shared \`http.Agent({ keepAlive: true, maxSockets: Infinity })\` (the HTTP routes, protocol 1). Register phase, barrier phase (until every arrival was released) and their sum are timed.
A second barrier right after, over the connections the first one opened, shows the job master's own barrier cost. A fresh job master
process per run; one unrecorded warm-up run of 1000 first.

${jobmasterSection(data.jobmaster)}

## (c) Job package: upload and fan-out, 50 MB to 8 local workers

bench/upload.mjs submits a job whose package holds 50 MiB of random data to 8 local workers, through each uploader that needs no
external service (\`local\`, \`shared\` directory, \`http\` to the project's package server on 127.0.0.1); one unrecorded warm-up
job per uploader first. Each worker's program (bench/fixtures/upload-job/worker.mjs) prints a timestamp when it starts, which is
after its runtime fetched, verified and unpacked the package.

${uploadSection(data.upload)}

## (d) MPI launch overhead

bench/mpi.mjs submits the start-up job of (a) (bench/fixtures/startup-job) with \`cluster: mpi\`, \`mpi.hosts: [{ host: localhost, slots: N }]\`,
\`oversubscribe: true\` and the job master on 127.0.0.1: mpirun starts the N ranks on this machine without ssh. Measured like (a): from
\`submit()\` until every rank printed \`BENCH-PASSED\` after the first barrier; each run waits for \`handle.wait()\` (mpirun ended, the launcher's
sweep done). The floor, measured just before each run, is a bare \`mpirun --allow-run-as-root --oversubscribe -np N node -e 0\` until it exited.
One unrecorded warm-up (floor and job, N=2) runs first. Knobs: \`BENCH_MPI_SIZES\` (default \`4,16,64\`), \`BENCH_MPI_REPEATS\` (default 3),
\`BENCH_MPI_BIG_REPEATS\` (runs at N ≥ 64, default 2).

${mpiSection(data.mpi)}

## (e) Slurm launch overhead

bench/slurm.mjs starts a real 2-node Slurm cluster (test/env/slurm-cluster.ts: slurmctld and munged on this machine, one slurmd per node,
each node in its own network namespace on a private bridge; started once, stopped at the end) and submits the start-up job of (a)
(bench/fixtures/startup-job) with \`cluster: slurm\`, \`slurm.tasksPerNode: N/2\`, \`resources: { cpu: 1, memory: 64Mi }\` and the job master
in the bench process at the bridge address. Measured like (a): from \`submit()\` until every worker printed \`BENCH-PASSED\` after the first
barrier; each run waits for \`handle.wait()\` (Slurm ended the job) and checks nothing of it is left before the next. The floor, measured just
before each run, is a bare \`sbatch --ntasks=N --ntasks-per-node=N/2 --wrap 'srun node -e 0'\` (full path of node), timed from the sbatch
call until \`squeue\` showed it RUNNING and until it left squeue. One unrecorded warm-up (floor and job, N=2) runs first.
Knobs: \`BENCH_SLURM_SIZES\` (default \`4,16\`, even, at most 32), \`BENCH_SLURM_REPEATS\` (default 3). Needs root (namespaces, daemons).

${slurmSection(data.slurm)}

## (f) Nomad start-up

bench/nomad.mjs starts one real Nomad dev agent (test/env/nomad-agent.ts: server and client in one process, raw_exec, 127.0.0.1 only,
8000 MB of node memory for the scheduler; stopped at the end) and submits the start-up job of (a) (bench/fixtures/startup-job) with
\`cluster: nomad\`, \`resources: { cpu: 0.05, memory: 64Mi }\` and the job master in the bench process on 127.0.0.1. Measured like (a): from
\`submit()\` until every worker printed \`BENCH-PASSED\` after the first barrier. The floor, measured just before each run, is a bare batch job
registered over HTTP: one group of Count N, raw_exec task \`/bin/true\`, \`Resources { CPU: 20, MemoryMB: 32 }\`, no restarts, no rescheduling.
Knobs: \`BENCH_NOMAD_SIZES\` (default \`4,16\`), \`BENCH_NOMAD_REPEATS\` (default 3). The Nomad binary comes from scripts/build-nomad.sh (cached; a cold build takes about ten minutes).

${nomadSection(data.nomad)}

## (g) Kubernetes control-plane start-up

bench/k8s.mjs starts one real Kubernetes control plane (test/env/kube-cluster.ts: etcd, kube-apiserver, kube-controller-manager and kube-scheduler
on 127.0.0.1, KWOK nodes in place of kubelets; stopped at the end) and creates the Kubernetes launcher's objects for N workers, one pod each, with
the builders of src/launchers/k8s/objects: once with the worker StatefulSet, once as plain pods the client creates itself. It measures the time
until all N pods are Running, side by side, and the time until deleting the job's root removed them.

${k8sSection(data.k8s)}

## (h) End to end through the CLI, beside Dask and Ray

bench/cli-e2e.mjs times whole processes from launch to exit, N = 1, 4 and 16, alternating within each repetition: \`twister2 submit --cluster local --workers N\`
of bench/fixtures/cli-job (each worker \`await ctx.workers(); await ctx.barrier('first')\`, then exits; job master in the CLI process); Dask
(bench/peers/dask_job.py: \`LocalCluster(n_workers=N, threads_per_worker=1, processes=True)\`, one task pinned to each worker with \`workers=[address]\`, gathered, torn down);
Ray (bench/peers/ray_job.py: \`ray.init(num_cpus=N)\`, N actors of one CPU each answering one call, \`ray.shutdown()\`); and the floor, N bare \`node -e 0\` started at once.
After each peer run the bench kills whatever it left behind (found by a marker in the environment of every process it started). One unrecorded warm-up of each first.

${cliSection(data.cliE2e)}

## (i) Many jobs at once

bench/many-jobs.mjs starts ${data.manyJobs?.jobs ?? 16} \`twister2 submit --cluster local --workers ${data.manyJobs?.workers ?? 4}\` processes of bench/fixtures/cli-job at once (one \`TWISTER2_HOME\`),
until every worker of every job printed \`BENCH-PASSED <Date.now()>\` after its first barrier; the floor, just before each run, is that many bare \`node -e 0\` started at once.

${manySection(data.manyJobs)}

## (j) Where a worker's CPU goes

bench/phases.mjs runs local jobs of the start-up fixture with \`TWISTER2_PHASES_DIR\` set: each worker runtime notes its CPU time (user + system
since its process began, so node's own start is the first phase) at each phase of its start and writes them when it exits (src/worker/phases.ts).
Knobs: \`BENCH_PHASES_WORKERS\` (default 4), \`BENCH_PHASES_RUNS\` (default 5); for the before-and-after table, \`BENCH_BASELINE_COMMIT\` (default 04b262e) and \`BENCH_BASELINE_RUNS\` (default 5).

${phasesSection(data.phases)}

${phasesBaselineSection(data.phasesBaseline)}

## (k) Job master recovery

bench/recovery-run.mjs submits a detached job (\`submit --detach\`: the job master runs under its supervisor and journals its state)
whose N workers pass barrier \`tick\` every 50 ms (bench/fixtures/recovery-job), SIGKILLs the job master once every worker passed a few,
and measures until the supervisor's new job master recorded itself and until every worker passed a barrier again: on the local cluster
(bench/recovery.mjs; knobs \`BENCH_RECOVERY_SIZES\`, default \`4,64\`, and \`BENCH_RECOVERY_REPEATS\`, default 3), and at N=4 on the
clusters of (d), (e) and (f) (mpi.mjs, slurm.mjs, nomad.mjs, with their repeats) and on Kubernetes (k8s-recovery.mjs: the job master's
container SIGKILLed in its pod, restarted by the test pod runner as a kubelet restarts it). The cost of the journal in normal operation is the
"journal on" row of (b) for the file, and, per store, bench/journal-cost.mjs (run by recovery.mjs, k8s-recovery.mjs and nomad.mjs):

${recoverySection(recoveryRows(data))}

${journalSection(journalRows(data))}

## (l) Messages between a driver and its workers

bench/messages.mjs: for N workers, ${data.messages?.results?.[0]?.rounds ?? 50} timed rounds after ${data.messages?.warmRounds ?? 5} of warm-up, each the driver broadcasting the round number and waiting
until every worker answered it; the figure is a run's median round, and the table shows the median (min–max) of ${data.messages?.results?.[0]?.medians?.twister2?.length ?? 3} runs. twister2: a local job of
bench/fixtures/messages-job (the driver on its thread in the job master, in the bench's process; each worker \`ctx.send\`s what \`ctx.messages()\` gives it).
Floor: a node parent and N node children doing the same over node's own IPC channel. Ray (bench/peers/ray_messages.py): N one-CPU actors called once
each per round, \`ray.get\`. Dask (bench/peers/dask_messages.py): one task pinned to each of N worker processes per round, gathered.
Knobs: \`BENCH_MESSAGES_SIZES\` (default \`4,16\`), \`BENCH_MESSAGES_REPEATS\` (default 3).

${messagesSection(data.messages)}

## What dominates

${notes(data)}
`;
}

export function summaryLines(data) {
  const lines = ['twister2 bench summary (median ms, min–max)'];
  if (Array.isArray(data.startup)) {
    for (const x of data.startup.map(startupFigures)) {
      lines.push(`  start-up N=${String(x.n).padEnd(5)} twister2 ${fmtSummary(x.passed).padEnd(24)} floor ${fmtSummary(x.floor).padEnd(24)} ratio ${fmt(x.ratio.median)}×`);
    }
  } else lines.push(`  start-up: FAILED: ${data.startup.error}`);
  if (Array.isArray(data.jobmaster)) {
    for (const x of data.jobmaster.map(jobmasterFigures)) {
      lines.push(
        `  job master N=${String(x.n).padEnd(6)} ${x.variant.padEnd(13)} register ${fmt(x.register.median)} (${fmt(x.rate.median)}/s), barrier ${fmt(x.barrier.median)}, total ${fmt(x.total.median)}, warm barrier ${fmt(x.warm.median)}`,
      );
    }
  } else lines.push(`  job master: FAILED: ${data.jobmaster.error}`);
  lines.push(...uploadSummary(data.upload));
  lines.push(...mpiSummary(data.mpi));
  lines.push(...slurmSummary(data.slurm));
  lines.push(...nomadSummary(data.nomad));
  lines.push(...k8sSummary(data.k8s));
  lines.push(...phasesSummary(data.phases));
  lines.push(...recoverySummary(recoveryRows(data)));
  lines.push(...journalSummary(journalRows(data)));
  lines.push(...peersSummary(data.cliE2e, data.manyJobs));
  lines.push(...messagesSummary(data.messages));
  lines.push(...targetsSummary(data));
  return lines;
}

/** Recovery figures by backend: local from its own section, the clusters' from theirs (absent in older data). */
function recoveryRows(data) {
  const clusters = [['mpi', data.mpi?.recovery], ['slurm', data.slurm?.recovery], ['nomad', data.nomad?.recovery], ['kubernetes', data.k8sRecovery]];
  return [['local', data.recovery], ...clusters.filter(([, r]) => r)];
}

/** The cost of each journal store, where its benchmark measured it (absent in older data). */
function journalRows(data) {
  return [['file (fsync)', data.recoveryJournal], ['Kubernetes ConfigMap', data.k8sJournal], ['Nomad Variables', data.nomad?.journal]];
}

/** Sections whose script was run again alone after the whole run (each compares with floors of its own run). */
function rerunNote(data) {
  if (!data.reruns?.length) return '';
  return `\nRun again alone after it, each against floors measured in its own run: ${data.reruns.map((r) => `${r.sections} (${r.at}: ${r.why})`).join('; ')}.`;
}

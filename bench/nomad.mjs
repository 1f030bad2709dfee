// Benchmark (e): start-up on Nomad. A real Nomad dev agent (test/env/nomad-agent.ts: server and client in one
// process, raw_exec, loopback only) runs on this machine. From submit() (cluster: nomad, small resources) until all
// N workers passed a first barrier, against a floor measured in the same run: a bare Nomad batch job of one group
// of N raw_exec `/bin/true` tasks, registered over HTTP, until all N allocations are complete.
// Prints one JSON line with every sample on stdout; progress goes to stderr. Stops everything it starts.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { submit } from '../dist/index.js';
import { NomadApi } from '../dist/launchers/nomad/nomad-api.js';
import { NomadSpecSchema } from '../dist/launchers/nomad/section.js';
import { NomadVariablesJournalStore } from '../dist/launchers/nomad/variables-journal.js';
import { followUntilPassed } from './follow-job.mjs';
import { journalCost } from './journal-cost.mjs';
import { recoveryRuns } from './recovery-run.mjs';
import { summarize } from './stats.mjs';

const JOB_DIR = fileURLToPath(new URL('./fixtures/startup-job/', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../scripts/build-nomad.sh', import.meta.url));
const SIZES = (process.env.BENCH_NOMAD_SIZES ?? '4,16').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_NOMAD_REPEATS ?? 3);
/** The node's memory as Nomad's scheduler sees it: room for 16 twister2 allocations (64 MiB each) and more. */
const AGENT_MEMORY_MB = 8000;
const RUN_TIMEOUT_MS = 120_000;
const POLL_MS = 50;
const SMALL = { cpu: 0.05, memory: '64Mi' };
const FLOOR_RESOURCES = { CPU: 20, MemoryMB: 32 };

const { tsImport } = await import('tsx/esm/api');
const { startNomadAgent, NOMAD_VERSION } = await tsImport('../test/env/nomad-agent.ts', import.meta.url);
const { testCacheDir } = await tsImport('../test/env/s3-server.ts', import.meta.url);

const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-nomad-'));
process.env.TWISTER2_HOME = home;
let agent;
/** The build script's process group while it runs (a cold build takes minutes). */
let buildGroup;
// test/env/nomad-agent.ts has its own exit hook: it SIGKILLs the agent and every process it started, by PID.
process.on('exit', () => {
  if (buildGroup) killGroup(buildGroup, 'SIGKILL');
  rmSync(home, { recursive: true, force: true });
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    process.stderr.write(`nomad bench: ${sig}, stopping the Nomad agent${agent ? ` (its log: ${agent.logFile})` : ''}\n`);
    // A graceful stop (dev mode kills its tasks) if it is quick enough; the exit hook kills whatever is left.
    const stopped = agent ? agent.stop().catch(() => undefined) : Promise.resolve();
    void Promise.race([stopped, sleep(7000)]).then(() => process.exit(1));
  });
}

function killGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch {
    // Already gone.
  }
}

/** Runs scripts/build-nomad.sh without blocking (so SIGTERM is still handled); its last stdout line is the binary. */
function buildNomad() {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT], {
      env: { ...process.env, NOMAD_VERSION, TWISTER2_TEST_CACHE: testCacheDir() },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    buildGroup = child.pid;
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      buildGroup = undefined;
      const binary = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && binary && existsSync(binary)) resolve(binary);
      else reject(new Error(`scripts/build-nomad.sh ended with ${signal ?? `code ${code}`}`));
    });
  });
}

async function nomad(method, p, body) {
  const res = await fetch(`${agent.addr}${p}`, {
    method,
    ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) {
    const err = new Error(`${method} ${p}: HTTP ${res.status} ${text.trim().slice(0, 300)}`);
    err.status = res.status;
    throw err;
  }
  return text ? JSON.parse(text) : undefined;
}

/** Nomad's job, or undefined once it is gone (purged). */
async function nomadJob(id) {
  try {
    return await nomad('GET', `/v1/job/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status === 404) return undefined;
    throw err;
  }
}

let floorSeq = 0;

/**
 * The floor: a bare batch job of N raw_exec `/bin/true` tasks (one group, Count N, no restarts, no rescheduling).
 * Wall ms from the POST until all N allocations were at least running ("started", polled), until all were complete,
 * and, from the agent's own task events, until the last task's Started event.
 */
async function floor(n) {
  const id = `bench-floor-${n}-${process.pid}-${++floorSeq}`;
  const job = {
    ID: id,
    Name: id,
    Type: 'batch',
    Datacenters: ['*'],
    TaskGroups: [
      {
        Name: 'floor',
        Count: n,
        RestartPolicy: { Attempts: 0, Mode: 'fail' },
        ReschedulePolicy: { Attempts: 0, Unlimited: false },
        Tasks: [{ Name: 'true', Driver: 'raw_exec', Config: { command: '/bin/true' }, Resources: FLOOR_RESOURCES }],
      },
    ],
  };
  const wall0 = Date.now();
  const t0 = performance.now();
  let startedMs;
  try {
    await nomad('POST', '/v1/jobs', { Job: job });
    const deadline = t0 + RUN_TIMEOUT_MS;
    while (true) {
      const allocs = await nomad('GET', `/v1/job/${encodeURIComponent(id)}/allocations`);
      const now = performance.now() - t0;
      const bad = allocs.filter((a) => a.ClientStatus === 'failed' || a.ClientStatus === 'lost');
      if (bad.length) throw new Error(`floor job of ${n}: allocation ${bad[0].Name} ${bad[0].ClientStatus}: ${JSON.stringify(bad[0].TaskStates?.true?.Events?.at(-1)?.DisplayMessage ?? '')}`);
      const started = allocs.filter((a) => a.ClientStatus === 'running' || a.ClientStatus === 'complete').length;
      const complete = allocs.filter((a) => a.ClientStatus === 'complete');
      if (started >= n) startedMs ??= now;
      if (complete.length >= n) {
        // The agent's own record of when each task started (ns since the epoch, same clock as ours).
        const startTimes = complete.map((a) => Math.max(...(a.TaskStates?.true?.Events ?? []).filter((e) => e.Type === 'Started').map((e) => e.Time / 1e6)));
        const startedEventMs = Math.max(...startTimes) - wall0;
        return { floorMs: now, floorStartedMs: startedMs, floorStartedEventMs: Number.isFinite(startedEventMs) ? startedEventMs : NaN };
      }
      if (performance.now() > deadline) throw new Error(`floor job of ${n}: ${complete.length}/${n} allocations complete after ${RUN_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_MS);
    }
  } finally {
    await nomad('DELETE', `/v1/job/${encodeURIComponent(id)}?purge=true`).catch(() => undefined);
  }
}

/** One twister2 nomad job of n workers; times (ms after the submit() call) of the milestones. */
async function runJob(n) {
  const t0 = Date.now();
  const handle = await submit({
    job: JOB_DIR,
    cluster: 'nomad',
    spec: {
      name: `bench-nomad-${n}`,
      workers: n,
      resources: SMALL,
      worker: { module: 'worker.mjs' },
      jobMaster: { host: '127.0.0.1' },
    },
  });
  const submitted = Date.now();
  const { registered, passed, status } = await followUntilPassed(handle, n, RUN_TIMEOUT_MS);
  const ended = Date.now();
  const left = await nomadJob(handle.jobId);
  if (passed.length < n || status.state !== 'SUCCEEDED' || left) {
    throw new Error(
      `nomad job of ${n} workers: ${passed.length}/${n} passed the barrier; ended ${status.state}: ${status.message ?? ''}` +
        (left ? `; Nomad still has job ${handle.jobId} (${left.Status})` : ''),
    );
  }
  return { submitMs: submitted - t0, registeredMs: registered === undefined ? NaN : registered - t0, passedMs: Math.max(...passed) - t0, endedMs: ended - t0 };
}

/** Waits until Nomad lists no live job: nothing of the previous run competes for the CPU. */
async function settle() {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const jobs = await nomad('GET', '/v1/jobs');
    if (!jobs.some((j) => j.Status !== 'dead')) return;
    await sleep(200);
  }
}

try {
  await buildNomad();
} catch (err) {
  process.stdout.write(JSON.stringify({ nomad: { error: `no Nomad binary: ${err.message} (cold builds take about ten minutes: run bash scripts/build-nomad.sh once)` } }) + '\n');
  process.exit(0);
}

agent = await startNomadAgent({ memoryMB: AGENT_MEMORY_MB });
const agentPid = JSON.parse(readFileSync(path.join(agent.dataDir, 'owner.json'), 'utf8')).agentPid;
process.env.NOMAD_ADDR = agent.addr;
process.stderr.write(`nomad bench: agent ${NOMAD_VERSION} at ${agent.addr} (pid ${agentPid}, user ${agent.user})\n`);

const results = [];
let recovery;
let journal;
try {
  // Warm-up (not recorded): the raw_exec driver's first tasks, file-system caches, the compiled dist modules.
  await floor(2);
  await runJob(2).catch((err) => process.stderr.write(`nomad warm-up failed: ${err.message}\n`));

  for (const n of SIZES) {
    const r = { n, repeats: REPEATS, floorMs: [], floorStartedMs: [], floorStartedEventMs: [], submitMs: [], registeredMs: [], passedMs: [], endedMs: [], failures: [] };
    for (let i = 0; i < REPEATS; i++) {
      await settle();
      const f = await floor(n);
      await settle();
      let job;
      try {
        job = await runJob(n);
      } catch (err) {
        // A failed job is recorded and run once more.
        r.failures.push(err.message);
        process.stderr.write(`nomad n=${n}: run failed, trying again: ${err.message}\n`);
        await settle();
        job = await runJob(n);
      }
      for (const k of Object.keys(f)) r[k].push(f[k]);
      for (const k of Object.keys(job)) r[k].push(job[k]);
      process.stderr.write(
        `nomad n=${n} run ${i + 1}/${REPEATS}: floor ${f.floorMs.toFixed(0)} ms (all started ${f.floorStartedMs.toFixed(0)} ms), twister2 ${job.passedMs} ms (job ended ${job.endedMs} ms)\n`,
      );
    }
    results.push(r);
  }
  // Job master recovery with the job master in its allocation (recovery-run.mjs), its journal in Nomad Variables.
  await settle();
  const recoverySpec = { cluster: 'nomad', jobMaster: { placement: 'cluster' }, resources: SMALL };
  recovery = await recoveryRuns([4], REPEATS, recoverySpec, (line) => process.stderr.write(`nomad ${line}\n`)).catch((err) => ({ error: err.message }));
  // The cost of that journal: a check-and-set write of a Nomad variable at each commit (journal-cost.mjs).
  const store = new NomadVariablesJournalStore(new NomadApi(NomadSpecSchema.parse({}), { NOMAD_ADDR: agent.addr }), `bench-journal-${process.pid}`);
  journal = await journalCost('Nomad Variables', store).catch((err) => ({ error: err.message }));
  process.stderr.write(`nomad journal: ${journal.error ?? `one commit ${summarize(journal.commitMs).median.toFixed(1)} ms`}\n`);
} catch (err) {
  process.stderr.write(`nomad bench failed; the agent's log is kept: ${agent.logFile}\n`);
  throw err;
} finally {
  await agent.stop();
}
let agentLeft = false;
try {
  agentLeft = !/\) [ZX] /.test(readFileSync(`/proc/${agentPid}/stat`, 'utf8'));
} catch {
  // Gone.
}
if (agentLeft) throw new Error(`nomad bench: agent pid ${agentPid} still running after stop()`);
// The env keeps the agent's log directory for post-mortems; after a clean run there is nothing to look at.
rmSync(path.dirname(agent.logFile), { recursive: true, force: true });
process.stdout.write(
  JSON.stringify({ nomad: { version: NOMAD_VERSION, agentUser: agent.user, memoryMB: AGENT_MEMORY_MB, cpus: os.cpus().length, pollMs: POLL_MS, floorResources: FLOOR_RESOURCES, results, recovery, journal } }) + '\n',
);
process.exit(0);

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { check, type History, type WorkerRecord } from './checker.js';
import { drawRun, type Fault, type Schedule } from './schedule.js';
import { faultSeeds } from './seeds.js';

export const WORKERS = 4;
export const ROUNDS = 16;
export const PAUSE_MS = 300;
export const HEARTBEAT_MS = 3000;

interface JobRecordFile {
  jobMaster?: { pid: number; supervisorPid?: number };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The IDs of the workers that recorded a start (a restarted worker records one more; the checker says so). */
export function startedIds(records: WorkerRecord[]): Set<number> {
  return new Set(records.filter((r) => r.step === 'start').map((r) => r.id));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/** A backend the suite runs on: what its jobs add to the spec, and what of a job the cluster may still hold. */
export interface FaultBackend {
  name: string;
  /** Or a function, for a spec known only once the suite's cluster started. */
  spec: { [key: string]: unknown } | (() => { [key: string]: unknown });
  /** Besides processes of this machine: what the cluster still has of the job (a Nomad job, say). */
  leftovers?(jobId: string): Promise<string[]>;
  /** What the cluster says of the job's workers, printed when a run times out (a Nomad allocation's events, say). */
  describe?(jobId: string): Promise<string>;
  /** Where a job master in a pod differs: its workers' output (default: the job's logs), its process now (default: job.json's), its final status. */
  output?(home: string, jobId: string): string;
  jobMasterPid?(jobId: string): number | undefined;
  finalStatus?(home: string, jobId: string): Promise<History['final'] | undefined>;
  /** How the `nth` (from 0) job master kill of a run is done (default: SIGKILL to its process). */
  killJobMaster?(jobId: string, pid: number, nth: number): Promise<void>;
}

/** A detached fault-suite job as it runs: what its workers recorded, its job master now, and how it ended. */
export interface FaultJob {
  home: string;
  jobId: string;
  /** The workers' output (records and runtime messages). */
  logs(): string;
  records(): WorkerRecord[];
  final(): Promise<History['final'] | undefined>;
  ended(): Promise<boolean>;
  jobMasterPid(): number | undefined;
  /** What a timed-out run shows of the job: who started, the job master's log, the workers' logs, the cluster's view. */
  diagnose(backend: FaultBackend): Promise<string>;
  /** Waits for the final status, then for nothing to be left (every job master seen included). */
  finish(jobMasters: Set<number>): Promise<{ final: History['final']; leftovers: string[] }>;
}

/** Submits (detached) a job of 4 workers passing 16 barriers on `backend`, with `extra` merged into its spec. */
export async function submitFaultJob(backend: FaultBackend, seed: number, extra: { [key: string]: unknown } = {}, gate?: string): Promise<FaultJob> {
  const home = tempHome();
  const job = makeJob(
    {
      name: `faults-${seed}`,
      workers: WORKERS,
      timeouts: { heartbeat: `${HEARTBEAT_MS}ms` },
      worker: { module: 'w.mjs', args: [String(ROUNDS), String(PAUSE_MS), ...(gate ? [gate] : [])] },
      ...(typeof backend.spec === 'function' ? backend.spec() : backend.spec),
      ...extra,
    },
    { 'w.mjs': fixture('fault-worker.mjs') },
  );
  const cli = startCli(['submit', job, '--detach'], home);
  expect(await cli.closed).toBe(0);
  const jobId = jobIds(home)[0]!;
  const jobDir = path.join(home, 'jobs', jobId);
  const recordOf = () => JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as JobRecordFile;
  const statusFile = path.join(jobDir, 'status.json');
  const final = async () =>
    backend.finalStatus ? backend.finalStatus(home, jobId) : existsSync(statusFile) ? (JSON.parse(readFileSync(statusFile, 'utf8')) as History['final']) : undefined;
  const jobMasterPid = () => (backend.jobMasterPid ? backend.jobMasterPid(jobId) : recordOf().jobMaster?.pid);
  const supervisor = recordOf().jobMaster?.supervisorPid;
  const logs = () => backend.output?.(home, jobId) ?? readLogs(home, jobId);
  return {
    home,
    jobId,
    logs,
    records: () => testRecords<WorkerRecord>(logs()),
    final,
    ended: async () => (await final()) !== undefined,
    jobMasterPid,
    async diagnose(b) {
      const tail = (text: string) => text.split('\n').slice(-40).join('\n');
      const jmLog = path.join(jobDir, 'jobmaster.log');
      const started = [...startedIds(testRecords<WorkerRecord>(logs()))];
      return [
        `fault suite: job ${jobId}: workers that recorded a start: [${started.join(', ')}]; job master pid now ${jobMasterPid()}; final status ${JSON.stringify(await final())}`,
        `--- ${jmLog} (end)\n${existsSync(jmLog) ? tail(readFileSync(jmLog, 'utf8')) : '(none)'}`,
        `--- workers' output (end)\n${tail(logs())}`,
        `--- cluster\n${(await b.describe?.(jobId).catch((err: Error) => err.message)) ?? '(not asked)'}`,
      ].join('\n');
    },
    async finish(jobMasters) {
      const finalStatus = await waitFor('the job to end', final, 90_000);
      if (supervisor) await waitFor('the supervisor to exit', () => !alive(supervisor), 10_000).catch(() => undefined);
      // The cluster's own clean-up (purging a Nomad job) may take a moment after the final status.
      const left = async () => [
        ...jobProcesses(jobId).map((p) => `process ${p}`),
        ...[supervisor, ...jobMasters, jobMasterPid()].filter((p): p is number => p !== undefined && alive(p)).map((p) => `job master or supervisor ${p}`),
        ...((await backend.leftovers?.(jobId)) ?? []),
      ];
      const leftovers = await waitFor('nothing left', async () => {
        const l = await left();
        return l.length === 0 && l;
      }, 20_000).catch(left);
      return { final: finalStatus, leftovers: [...new Set(leftovers)] };
    },
  };
}

/** One seeded run: a detached job of 4 workers passing 16 barriers while the schedule's faults hit it. */
async function run(backend: FaultBackend, seed: number, schedule: Schedule): Promise<History> {
  // The workers' last round waits for this file, written once the schedule's faults were injected: however
  // long the job master takes to come back from each kill, every fault meets a running job.
  const gate = path.join(tempHome(), 'faults-done');
  const job = await submitFaultJob(backend, seed, {}, gate);
  const injected: History['injected'] = [];
  const jobMasters = new Set<number>();
  let t0 = Date.now();
  /** Injects one fault into a job master that is back (recorded by the one now running, and alive); false once the job ended. */
  const injectNow = async (fault: Fault): Promise<boolean> => {
    if (await job.ended()) return false;
    const pid = await waitFor('a running job master', () => {
      const p = job.jobMasterPid();
      return p !== undefined && alive(p) && p;
    });
    jobMasters.add(pid);
    const nth = injected.filter((f) => f.kind === 'kill-jobmaster').length;
    const at = Date.now();
    if (fault.kind === 'kill-jobmaster' && backend.killJobMaster) await backend.killJobMaster(job.jobId, pid, nth);
    else await inject(fault, pid, job.records());
    injected.push({ ...fault, t: Date.now() - t0, pid });
    if (fault.kind === 'kill-jobmaster') {
      await waitFor('the restarted job master', async () => (job.jobMasterPid() ?? pid) !== pid || (await job.ended()), 30_000);
      if ((job.jobMasterPid() ?? pid) === pid) unrestarted.set(injected.length - 1, at);
    }
    return true;
  };
  /** Kills after which the job ended with no new job master (index → when): one that came after the end needs none. */
  const unrestarted = new Map<number, number>();
  try {
    if (schedule.killAtLaunch) await injectNow({ at: 0, kind: 'kill-jobmaster' });
    // A job that ended first will not start them: say so at once, while the cluster still has its allocations.
    const started = await waitFor('all workers started', async () => startedIds(job.records()).size === WORKERS || ((await job.ended()) && 'ended')).catch((err: Error) => err);
    if (started !== true) {
      console.log(await job.diagnose(backend));
      throw started === 'ended' ? new Error('the job ended before all workers started') : started;
    }
    t0 = Date.now();
    for (const fault of schedule.faults) {
      await sleep(t0 + fault.at - Date.now());
      if (!(await injectNow(fault))) break;
    }
  } finally {
    writeFileSync(gate, ''); // also when the run gave up: the job then ends by itself
  }
  if (schedule.killAtEnd) {
    await waitFor('a worker done', async () => job.records().some((r) => r.step === 'done') || (await job.ended()), 90_000);
    await injectNow({ at: Date.now() - t0, kind: 'kill-jobmaster' });
  }
  const { final, leftovers } = await job.finish(jobMasters);
  // The harness may not yet see a job end that came just before a kill (on Kubernetes it asks `status` at
  // most once a second): a job master killed after its job ended (its pod going) is not restarted, nor
  // need it be. Any kill before the end must have been survived.
  const endedAt = final.endedAt ? Date.parse(final.endedAt) : Infinity;
  const survived = injected.filter((_f, i) => !(unrestarted.has(i) && endedAt <= unrestarted.get(i)!));
  if (survived.length < injected.length) console.log(`fault suite: ${injected.length - survived.length} job master kill(s) came after the job ended at ${final.endedAt}: not counted`);
  return { workers: WORKERS, rounds: ROUNDS, injected: survived, records: job.records(), final, leftovers };
}

async function inject(fault: Fault, jobMaster: number, recs: WorkerRecord[]): Promise<void> {
  switch (fault.kind) {
    case 'kill-jobmaster':
      process.kill(jobMaster, 'SIGKILL');
      return;
    case 'pause-jobmaster':
      process.kill(jobMaster, 'SIGSTOP');
      await sleep(fault.ms);
      process.kill(jobMaster, 'SIGCONT');
      return;
    case 'pause-worker': {
      const pid = recs.filter((r) => r.id === fault.workerId).at(-1)!.pid;
      process.kill(pid, 'SIGSTOP');
      await sleep(fault.ms);
      process.kill(pid, 'SIGCONT');
    }
  }
}

/** The suite for one backend: `count` seeded runs (see seeds.ts for replaying one). */
export function faultSuite(backend: FaultBackend, count: number): void {
  describe(`fault suite, ${backend.name}: the job master is SIGKILLed and paused, workers are paused`, () => {
    for (const seed of faultSeeds(backend.name, count)) {
      it(`seed ${seed}: the job succeeds, every barrier is safe, no worker restarted, nothing left`, async () => {
        const schedule = drawRun(seed, { workers: WORKERS, spanMs: ROUNDS * PAUSE_MS, heartbeatMs: HEARTBEAT_MS });
        console.log(`fault suite: ${backend.name} seed ${seed} (replay: T2_FAULT_SEED=${seed}) schedule ${JSON.stringify(schedule)}`);
        const history = await run(backend, seed, schedule);
        const violations = check(history);
        const injected = history.injected.map((f) => `${f.kind}@${f.t}`).join(', ');
        console.log(`fault suite: ${backend.name} seed ${seed}: ${violations.length === 0 ? 'all invariants hold' : `VIOLATED:\n  ${violations.join('\n  ')}`} (injected ${injected})`);
        expect(violations).toEqual([]);
        // The schedule always has two job master kills; both must have met a running job.
        expect(history.injected.filter((f) => f.kind === 'kill-jobmaster').length).toBeGreaterThanOrEqual(2);
      }, 180_000);
    }
  });
}

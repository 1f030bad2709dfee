import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/protocol/messages.js';
import { fixture, isRunning, jobIds, jobProcesses, killJobMasterForGood, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

interface Rec {
  id: number;
  step: string;
  n?: number;
  pid?: number;
  child?: number;
  peers?: number[];
}

const HEARTBEAT_MS = 3000;

/** Starts a 3-worker job whose workers (and a child process each) sleep, and waits until all sleep. */
async function startSleepingJob(extra: string[] = [], spec: Record<string, unknown> = {}) {
  const home = tempHome();
  const job = makeJob(
    { name: 'sleepy', workers: 3, timeouts: { heartbeat: `${HEARTBEAT_MS}ms` }, worker: { module: 'w.mjs' }, ...spec },
    { 'w.mjs': fixture('sleep-worker.mjs') },
  );
  const cli = startCli(['submit', job, ...extra], home);
  const jobId = await waitFor('the job directory', () => jobIds(home)[0]);
  const recs = await waitFor('3 sleeping workers', () => {
    const r = testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping');
    return r.length === 3 && r;
  });
  // The worker runtimes, their programs' children and nothing else of this job's.
  expect(jobProcesses(jobId).length).toBeGreaterThanOrEqual(6);
  return { home, cli, jobId, recs };
}

// Success, `twister2 kill` and a SIGKILLed client are covered by the launcher conformance suite.
describe('local cluster: nothing is left behind', () => {
  it('Ctrl-C kills the job: KILLED, exit 130, no process left', async () => {
    const { cli, jobId } = await startSleepingJob();
    cli.kill('SIGINT');
    expect(await cli.closed).toBe(130);
    expect(cli.output().stderr).toMatch(/KILLED: interrupted \(SIGINT\)/);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('`twister2 kill` takes an ID prefix; killing an ended job is a user error', async () => {
    const { cli, jobId, home } = await startSleepingJob();
    const k = await runCli(['kill', jobId.slice(0, -2)], home);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toContain('KILLED');
    expect(await cli.closed).toBe(3);
    expect(jobProcesses(jobId)).toEqual([]);
    const again = await runCli(['kill', jobId], home);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already ended \(KILLED\)/);
  });

  it('--detach: the job master runs on its own; status, workers, logs and kill work from other shells', async () => {
    const { cli, jobId, home } = await startSleepingJob(['--detach']);
    expect(await cli.closed).toBe(0);
    // The job master refuses anyone without the job's secret.
    const { jobMaster } = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { url: string } };
    expect((await fetch(`${jobMaster.url}/v1/job`)).status).toBe(401);
    expect((await fetch(`${jobMaster.url}/v1/job/kill`, { method: 'POST', headers: { authorization: 'Bearer guess' } })).status).toBe(401);
    expect(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')).not.toMatch(/token|secret/i);
    const status = await runCli(['status', jobId, '--json'], home);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'RUNNING', numWorkers: 3, registered: 3 });
    const workers = await runCli(['workers', jobId, '--json'], home);
    expect((JSON.parse(workers.stdout) as { workers: { workerId: number }[] }).workers.map((w) => w.workerId).sort()).toEqual([0, 1, 2]);
    const logs = await runCli(['logs', jobId], home);
    expect(logs.stdout).toMatch(/^\[worker 0\] T2TEST/m);
    const list = await runCli(['list'], home);
    expect(list.stdout).toMatch(new RegExp(`${jobId}\\s+RUNNING`));
    const k = await runCli(['kill', jobId], home);
    expect(k.code).toBe(0);
    expect(jobProcesses(jobId)).toEqual([]);
    const after = await runCli(['status', jobId, '--json'], home);
    expect(JSON.parse(after.stdout)).toMatchObject({ state: 'KILLED' });
  });

  it('a job master paused (SIGSTOP) twice for less than half the heartbeat timeout: the job goes on, nothing restarted', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'paused', workers: 3, timeouts: { heartbeat: '8s' }, worker: { module: 'w.mjs', args: ['12', '250'] } },
      { 'w.mjs': fixture('paced-barrier-worker.mjs') },
    );
    const cli = startCli(['submit', job, '--detach'], home);
    expect(await cli.closed).toBe(0);
    const jobId = jobIds(home)[0]!;
    const { jobMaster } = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { pid: number } };
    const passed = () => testRecords<{ id: number; n: number; restart: number }>(readLogs(home, jobId));
    for (const round of [2, 6]) {
      await waitFor(`barrier ${round}`, () => passed().some((r) => r.n >= round));
      process.kill(jobMaster.pid, 'SIGSTOP'); // barriers, heartbeats and events wait in the kernel meanwhile
      await new Promise((r) => setTimeout(r, 2500));
      process.kill(jobMaster.pid, 'SIGCONT');
    }
    const status = await waitFor('the job to end', async () => {
      const s = JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout) as { state: string; workers: { restarts: number }[] };
      return s.state !== 'RUNNING' && s;
    });
    expect(status.state).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0]);
    const recs = passed();
    for (const id of [0, 1, 2]) expect(recs.filter((r) => r.id === id).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(recs.every((r) => r.restart === 0)).toBe(true);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a detached job master SIGKILLed twice is restarted: 4 command workers pass 8 barriers, none restarted, SUCCEEDED, nothing left', async () => {
    const home = tempHome();
    const loop = 'for i in 1 2 3 4 5 6 7 8; do sleep 0.3; twister2 barrier b$i || exit 1; echo "T2TEST {\\"id\\":$TWISTER2_WORKER_ID,\\"n\\":$i}"; done';
    const job = makeJob({ name: 'jm-restarts', workers: 4, timeouts: { heartbeat: `${HEARTBEAT_MS}ms` }, worker: { command: ['sh', '-c', loop] } });
    const cli = startCli(['submit', job, '--detach'], home);
    expect(await cli.closed).toBe(0);
    const jobId = jobIds(home)[0]!;
    const jobDir = path.join(home, 'jobs', jobId);
    const record = () => JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as { jobMaster: { pid: number; supervisorPid: number } };
    const passed = () => testRecords<{ id: number; n: number }>(readLogs(home, jobId));
    // A client following the job goes on through both restarts.
    const follower = startCli(['logs', '-f', jobId], home);
    const killed: number[] = [];
    for (const round of [2, 5]) {
      await waitFor(`barrier ${round}`, () => passed().some((r) => r.n >= round));
      const pid = await waitFor('the running job master', () => record().jobMaster.pid !== killed.at(-1) && record().jobMaster.pid);
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    const status = await waitFor('the job to end', () => {
      try {
        return JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as JobStatus;
      } catch {
        return undefined;
      }
    }, 60_000);
    expect(status.state, status.message).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0, 0]);
    expect(status.jobMaster).toMatchObject({ epoch: 3, restarts: 2 });
    expect(killed).not.toContain(status.jobMaster!.pid);
    for (const id of [0, 1, 2, 3]) expect(passed().filter((r) => r.id === id).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(readFileSync(path.join(jobDir, 'jobmaster.log'), 'utf8').match(/was killed by SIGKILL; restarting it/g)).toHaveLength(2);
    expect(await follower.closed).toBe(0);
    expect(testRecords(follower.output().stdout)).toHaveLength(32);
    // `status` says where the job master ran and how often it was restarted.
    expect((await runCli(['status', jobId], home)).stdout).toMatch(/jobmaster pid \d+ on \S+, epoch 3, restarted 2 times after a crash/);
    await waitFor('the supervisor to exit', () => !isRunning(record().jobMaster.supervisorPid), 10_000);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a job master SIGKILLed with its supervisor is not restarted: workers exit within the recovery time; LOST', async () => {
    const { cli, jobId, home } = await startSleepingJob(['--detach'], { timeouts: { heartbeat: `${HEARTBEAT_MS}ms`, jobMasterRecovery: '1s' } });
    await cli.closed;
    killJobMasterForGood(home, jobId);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, HEARTBEAT_MS);
    const list = await runCli(['list', '--json'], home);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ jobId, state: 'LOST' })]);
  });
});

describe('local cluster: scaling', () => {
  it('scales 4 -> 6 -> 3 while running: IDs stay contiguous and workers are told', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'scale', workers: 4, worker: { module: 'w.mjs' } }, { 'w.mjs': fixture('scale-worker.mjs') });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job directory', () => jobIds(home)[0]);
    const recs = () => testRecords<Rec>(readLogs(home, jobId));
    await waitFor('4 workers started', () => recs().filter((r) => r.step === 'start').length === 4);

    expect((await runCli(['scale', jobId, '6'], home)).code).toBe(0);
    await waitFor('workers 4 and 5 started and 0..3 told', () => {
      const r = recs();
      return r.filter((x) => x.step === 'start').length === 6 && r.filter((x) => x.step === 'scaled' && x.n === 6).length === 4;
    });
    const six = JSON.parse((await runCli(['workers', jobId, '--json', '--wait'], home)).stdout) as { numWorkers: number; workers: { workerId: number }[] };
    expect(six.numWorkers).toBe(6);
    expect(six.workers.map((w) => w.workerId).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(recs().filter((x) => x.id >= 4 && x.step === 'start').every((x) => x.n === 6)).toBe(true);

    expect((await runCli(['scale', jobId, '3'], home)).code).toBe(0);
    expect(await cli.closed).toBe(0);
    const done = recs().filter((r) => r.step === 'done');
    expect(done.map((r) => r.id).sort()).toEqual([0, 1, 2]);
    for (const d of done) expect(d.peers).toEqual([0, 1, 2]);
    const status = JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout) as { state: string; numWorkers: number; workers: { workerId: number }[] };
    expect(status.state).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.workerId)).toEqual([0, 1, 2]);
    expect(jobProcesses(jobId)).toEqual([]);
  });
});

describe('local cluster: heartbeats do not depend on the program', () => {
  const busyJob = (busyMs: number, extraArg: string[] = []) =>
    makeJob({ name: 'busy', workers: 2, timeouts: { heartbeat: '2s', jobMasterRecovery: '1s' }, worker: { module: 'w.mjs', args: [String(busyMs), ...extraArg] } }, { 'w.mjs': fixture('busy-worker.mjs') });

  it('a module worker computing 5 s without yielding under a 2 s heartbeat timeout: SUCCEEDED', async () => {
    const home = tempHome();
    const r = await runCli(['submit', busyJob(5000)], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 2 workers completed/);
    expect(testRecords<Rec>(r.stdout).filter((x) => x.step === 'done')).toHaveLength(2);
  });

  it('a worker whose main thread is busy still ends, with its detached child, when its job master is SIGKILLed', async () => {
    const home = tempHome();
    const cli = startCli(['submit', busyJob(60_000, ['child']), '--detach'], home);
    expect(await cli.closed).toBe(0);
    const jobId = jobIds(home)[0]!;
    await waitFor('2 busy workers', () => testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'busy').length === 2);
    expect(jobProcesses(jobId).length).toBeGreaterThanOrEqual(4); // 2 runtimes, 2 children
    killJobMasterForGood(home, jobId);
    // Well before the 60 s of computing ends.
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
    expect(readLogs(home, jobId)).toMatch(/ended from the heartbeat thread/);
  });
});

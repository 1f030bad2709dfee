import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/protocol/messages.js';
import { fixture, isRunning, jobIds, jobProcesses, makeJob, readLogs, runCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

// A detached local job master journals its state and is restarted by its supervisor: the restarted one
// takes over the workers, whatever moment the crash came at. (Kills mid-run, pauses: the fault suite.)

/** Joins (a restarted one need not: the others are past that), then sleeps. */
const SLEEPER = `export default async function (ctx) {
  if (ctx.restartCount === 0) { await ctx.workers(); await ctx.barrier('ready'); }
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'sleeping', pid: process.pid }));
  await new Promise((r) => setTimeout(r, 300_000));
}
`;

interface Record {
  jobMaster: { pid: number; supervisorPid: number };
}

async function detached(spec: { [k: string]: unknown }, files: { [f: string]: string } = {}) {
  const home = tempHome();
  const r = await runCli(['submit', makeJob(spec, files), '--detach'], home);
  expect(r.code, r.stderr).toBe(0);
  const jobId = jobIds(home)[0]!;
  const jobDir = path.join(home, 'jobs', jobId);
  const record = () => JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as Record;
  const killJobMaster = async () => {
    const { pid } = record().jobMaster;
    process.kill(pid, 'SIGKILL');
    await waitFor('the restarted job master', () => record().jobMaster.pid !== pid && isRunning(record().jobMaster.pid) && record().jobMaster.pid);
  };
  const final = () => waitFor('the job to end', () => existsSync(path.join(jobDir, 'status.json')) && (JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as JobStatus), 60_000);
  const status = async () => JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout) as JobStatus;
  const nothingLeft = async () => {
    await waitFor('the supervisor to exit', () => !isRunning(record().jobMaster.supervisorPid), 10_000);
    expect(jobProcesses(jobId)).toEqual([]);
  };
  return { home, jobId, record, killJobMaster, final, status, nothingLeft };
}

describe('local cluster: the job master restarted at any moment', () => {
  it('killed as soon as submit returned (workers still starting): the restarted one starts or adopts each of them once; SUCCEEDED', async () => {
    const job = await detached(
      { name: 'early-kill', workers: 6, worker: { module: 'w.mjs', args: ['3', '100'] } },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    await job.killJobMaster();
    const status = await job.final();
    expect(status.state, status.message).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0, 0, 0, 0]);
    const recs = testRecords<{ id: number; step: string; pid: number }>(readLogs(job.home, job.jobId));
    // One process per ID: nobody was started twice.
    for (let id = 0; id < 6; id++) expect(new Set(recs.filter((r) => r.id === id).map((r) => r.pid)).size, `worker ${id}`).toBe(1);
    await job.nothingLeft();
  });

  it('a worker SIGKILLed while the job master was down: its failure is counted and it is restarted with its ID', async () => {
    const job = await detached({ name: 'worker-killed-meanwhile', workers: 3, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs' } }, { 'w.mjs': SLEEPER });
    const sleeping = () => testRecords<{ id: number; step: string; pid: number }>(readLogs(job.home, job.jobId)).filter((r) => r.step === 'sleeping');
    await waitFor('3 sleeping workers', () => sleeping().length === 3);
    const victim = sleeping().find((r) => r.id === 1)!.pid;
    // Stopped first, so that it is down exactly while the job master is: killed before the new one looks.
    process.kill(job.record().jobMaster.supervisorPid, 'SIGSTOP');
    process.kill(job.record().jobMaster.pid, 'SIGKILL');
    process.kill(victim, 'SIGKILL');
    process.kill(job.record().jobMaster.supervisorPid, 'SIGCONT');
    await waitFor('worker 1 restarted', async () => (await job.status()).workers.find((w) => w.workerId === 1)?.restarts === 1, 30_000);
    await waitFor('worker 1 sleeping again', () => sleeping().filter((r) => r.id === 1).length === 2, 30_000);
    const running = await job.status();
    expect(running.state).toBe('RUNNING');
    expect(running.workers.map((w) => [w.workerId, w.restarts])).toEqual([[0, 0], [1, 1], [2, 0]]);
    expect(running.jobMaster).toMatchObject({ epoch: 2, restarts: 1 });
    expect((await runCli(['kill', job.jobId], job.home)).code).toBe(0);
    expect((await job.final()).state).toBe('KILLED');
    await job.nothingLeft();
  });

  it('a worker paused (SIGSTOP) for longer than the heartbeat timeout is replaced: the paused one is killed, never two live workers with one ID', async () => {
    const job = await detached(
      { name: 'worker-paused', workers: 3, restart: { maxRestarts: 1 }, timeouts: { heartbeat: '1s' }, worker: { module: 'w.mjs' } },
      { 'w.mjs': SLEEPER },
    );
    const sleeping = () => testRecords<{ id: number; step: string; pid: number }>(readLogs(job.home, job.jobId)).filter((r) => r.step === 'sleeping');
    await waitFor('3 sleeping workers', () => sleeping().length === 3);
    const paused = sleeping().find((r) => r.id === 2)!.pid;
    process.kill(paused, 'SIGSTOP');
    await waitFor('worker 2 replaced', () => sleeping().filter((r) => r.id === 2).length === 2, 30_000);
    // The job master ended the paused process before it started the new one (stopped processes die of SIGKILL).
    expect(isRunning(paused)).toBe(false);
    const status = await job.status();
    expect(status.workers.map((w) => [w.workerId, w.state, w.restarts])).toEqual([[0, 'RUNNING', 0], [1, 'RUNNING', 0], [2, 'RUNNING', 1]]);
    expect(status.workers[2]!.info?.pid).toBe(sleeping().filter((r) => r.id === 2)[1]!.pid);
    expect((await runCli(['kill', job.jobId], job.home)).code).toBe(0);
    await job.final();
    await job.nothingLeft();
  });

  it('with a driver that had not returned: the restarted job master starts it again (ctx.jobMasterRestarts 1), the workers waiting in messages() get its message; its result is the job\'s', async () => {
    const driver = `export default async (ctx) => {
  console.log('driver run ' + ctx.jobMasterRestarts);
  await ctx.waitForWorkers();
  if (ctx.jobMasterRestarts === 0) await new Promise(() => {}); // until its job master is killed
  await ctx.broadcast('go');
  let n = 0;
  for await (const m of ctx.messages()) n += m.data;
  return { restarts: ctx.jobMasterRestarts, sum: n };
};\n`;
    const worker = `export default async (ctx) => {
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'waiting', pid: process.pid }));
  for await (const m of ctx.messages()) { await ctx.send(ctx.workerId + 1); return; }
};\n`;
    const job = await detached({ name: 'driver-restart', workers: 3, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs' } }, { 'w.mjs': worker, 'd.mjs': driver });
    const waiting = () => testRecords<{ id: number; step: string; pid: number }>(readLogs(job.home, job.jobId)).filter((r) => r.step === 'waiting');
    await waitFor('3 workers waiting for messages', () => waiting().length === 3);
    await waitFor('the driver\'s first run', () => readLogs(job.home, job.jobId).includes('driver run 0'));
    await job.killJobMaster();
    const status = await job.final();
    expect(status.state, status.message).toBe('SUCCEEDED');
    expect(status.driver).toEqual({ state: 'RETURNED', result: { restarts: 1, sum: 6 } });
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0]);
    expect(waiting()).toHaveLength(3); // the same worker processes throughout
    expect(readLogs(job.home, job.jobId)).toContain('driver run 1');
    await job.nothingLeft();
  });

  it('killed right after a scale: the restarted one keeps the new size, IDs stay 0..N-1, and the job succeeds', async () => {
    const job = await detached({ name: 'scale-then-kill', workers: 4, worker: { command: 'sleep 4' } });
    await waitFor('4 running workers', async () => (await job.status()).registered === 4);
    expect((await runCli(['scale', job.jobId, '6'], job.home)).code).toBe(0);
    await job.killJobMaster();
    const down = await runCli(['scale', job.jobId, '3'], job.home);
    expect(down.code, down.stderr).toBe(0);
    await job.killJobMaster();
    const status = await job.final();
    expect(status.state, status.message).toBe('SUCCEEDED');
    expect(status.numWorkers).toBe(3);
    expect(status.workers.map((w) => w.workerId)).toEqual([0, 1, 2]);
    expect(status.jobMaster).toMatchObject({ epoch: 3, restarts: 2 });
    await job.nothingLeft();
  });
});

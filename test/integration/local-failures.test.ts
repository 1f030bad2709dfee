import { describe, expect, it } from 'vitest';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

interface Rec {
  id: number;
  step: string;
  restart?: number;
  pid?: number;
  code?: string;
  message?: string;
  failed?: number;
}

async function runKillingWorker1(killsWanted: number, maxRestarts: number) {
  const home = tempHome();
  const job = makeJob(
    { name: 'restart', workers: 3, restart: { maxRestarts }, worker: { module: 'w.mjs', args: [String(killsWanted)] } },
    { 'w.mjs': fixture('restart-worker.mjs') },
  );
  const cli = startCli(['submit', job], home);
  const jobId = await waitFor('the job directory', () => jobIds(home)[0]);
  const killed: number[] = [];
  for (let k = 0; k < Math.min(killsWanted, maxRestarts + 1); k++) {
    const rec = await waitFor(`worker 1 computing (run ${k})`, () =>
      testRecords<Rec>(readLogs(home, jobId)).find((r) => r.step === 'computing' && r.restart === k),
    );
    process.kill(rec.pid!, 'SIGKILL');
    killed.push(rec.pid!);
  }
  const code = await cli.closed;
  return { code, out: cli.output(), jobId, home, killed };
}

describe('local cluster: failures', () => {
  it('restarts a SIGKILLed worker with the same ID; it rejoins and the job succeeds', async () => {
    const { code, out, jobId, home } = await runKillingWorker1(1, 1);
    expect(out.stderr).toContain('SUCCEEDED');
    expect(code).toBe(0);
    const recs = testRecords<Rec>(readLogs(home, jobId));
    const starts = recs.filter((r) => r.id === 1 && r.step === 'start');
    expect(starts.map((r) => r.restart)).toEqual([0, 1]);
    expect(starts[0]!.pid).not.toBe(starts[1]!.pid);
    expect(recs.filter((r) => r.step === 'done').map((r) => r.id).sort()).toEqual([0, 1, 2]);
    expect(out.stdout).toContain('restarting worker 1 (restart 1)');
    const told = recs.filter((r) => r.step === 'peer-failed');
    expect(told.map((r) => r.id).sort()).toEqual([0, 2]);
    for (const t of told) expect(t).toMatchObject({ failed: 1, message: 'worker process killed by SIGKILL' });
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('fails the job naming the worker once its restarts are used up', async () => {
    const { code, out, jobId } = await runKillingWorker1(5, 1);
    expect(code).toBe(1);
    expect(out.stderr).toMatch(/FAILED: worker 1 failed: worker process killed by SIGKILL; it used all 1 restart/);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a barrier one worker never reaches fails for every waiter, naming the missing worker', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'stuck', workers: 4, timeouts: { barrier: '2s' }, worker: { module: 'w.mjs' } },
      { 'w.mjs': fixture('missing-barrier-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const code = await cli.closed;
    const recs = testRecords<Rec>(cli.output().stdout);
    const errors = recs.filter((r) => r.step === 'barrier-error');
    expect(errors.map((r) => r.id).sort()).toEqual([0, 1, 2]);
    for (const e of errors) {
      expect(e.code).toBe('T2_BARRIER_TIMEOUT');
      expect(e.message).toBe("barrier 'never-complete' timed out after 2s: worker 3 never arrived (arrived: 0, 1, 2)");
    }
    expect(recs.some((r) => r.step === 'released')).toBe(false);
    expect(code).toBe(1);
    expect(jobProcesses(jobIds(home)[0]!)).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/protocol/messages.js';
import { isRunning, jobIds, jobProcesses, killJobMasterForGood, makeJob, runCli, tempHome, waitFor } from '../helpers/cli.js';

/** What `status`, `scale` and `kill` say about jobs that ended, or whose job master vanished. */
const noStack = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);

describe('job and worker states', () => {
  it('after a job FAILED, status shows every other worker STOPPED, and scale and kill say the job ended', async () => {
    const home = tempHome();
    const job = makeJob({
      name: 'fails',
      workers: 3,
      worker: { command: 'if [ "$TWISTER2_WORKER_ID" = 0 ]; then twister2 barrier ready; exit 7; else twister2 barrier ready; sleep 60; fi' },
    });
    const submitted = await runCli(['submit', job], home);
    expect(submitted.code).toBe(1);
    const jobId = jobIds(home)[0]!;
    const status = await runCli(['status', jobId, '--json'], home);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as JobStatus;
    expect(s.state).toBe('FAILED');
    expect(s.workers.map((w) => `${w.workerId}:${w.state}`)).toEqual(['0:FAILED', '1:STOPPED', '2:STOPPED']);
    expect(s.workers[1]!.message).toBe('stopped: the job ended (FAILED)');

    const scale = await runCli(['scale', jobId, '5'], home);
    expect(scale.stderr).toMatch(/job fails-\S+ already ended \(FAILED\); nothing to scale/);
    expect(scale.code).toBe(2);
    noStack(scale.stderr);
    const kill = await runCli(['kill', jobId], home);
    expect(kill.stderr).toMatch(/already ended \(FAILED\); nothing to kill/);
    expect(kill.code).toBe(2);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a LOST job: status, scale and kill say LOST (exit 4), never just "cannot reach the job master"', async () => {
    const home = tempHome();
    // The workers stop on their own soon after their job master is gone (what becomes of a command's own
    // children then is another test's business); `exec` leaves no shell in between.
    const job = makeJob({ name: 'lost', workers: 2, timeouts: { heartbeat: '1s', jobMasterRecovery: '1s' }, worker: { command: 'exec sleep 20' } });
    const detached = await runCli(['submit', '--detach', job], home);
    expect(detached.code).toBe(0);
    const jobId = jobIds(home)[0]!;
    const record = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { pid: number } };
    // Once the workers registered: a runtime that never reached its job master keeps trying for the registration timeout.
    await waitFor('the job to run', async () => (JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout) as JobStatus).state === 'RUNNING');
    killJobMasterForGood(home, jobId); // and what would restart it
    await waitFor('the job master to be gone', () => !isRunning(record.jobMaster.pid));
    for (const args of [['status', jobId], ['scale', jobId, '3'], ['kill', jobId]]) {
      const r = await runCli(args, home);
      expect(r.stderr, args[0]).toMatch(new RegExp(`^twister2: job ${jobId} is LOST: its job master \\(pid ${record.jobMaster.pid}\\) is gone and recorded no final state`));
      expect(r.stderr, args[0]).not.toMatch(/cannot reach/);
      expect(r.code, args[0]).toBe(4);
      noStack(r.stderr);
    }
    const list = await runCli(['list'], home);
    expect(list.stdout).toMatch(new RegExp(`${jobId}\\s+LOST`));
    await waitFor('the workers to stop without their job master', () => jobProcesses(jobId).length === 0);
  });

  it('a barrier timeout: `twister2 barrier` exits 1, and the job FAILED naming the barrier (submit exits 1)', async () => {
    const home = tempHome();
    const job = makeJob({
      name: 'barrier',
      workers: 2,
      worker: { command: 'if [ "$TWISTER2_WORKER_ID" = 0 ]; then twister2 barrier start --timeout 1s; code=$?; echo "barrier-exit $code"; exit $code; else sleep 60; fi' },
    });
    const r = await runCli(['submit', job], home);
    expect(r.stdout).toMatch(/\[worker 0\] barrier-exit 1$/m);
    expect(r.stderr).toMatch(/FAILED: worker 0 failed: .* exited with code 1, after barrier 'start' timed out after 1s: worker 1 never arrived/);
    expect(r.code).toBe(1);
    await waitFor('no process of the job', () => jobProcesses(jobIds(home)[0]!).length === 0);
  });
});

import { describe, expect, it } from 'vitest';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import type { Launcher } from '../../../src/launchers/launcher.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { registration } from '../../helpers/registration.js';

// A cluster that restarts workers by itself (Kubernetes) reports the end of every run of a worker, also of a
// run whose failure the job master counted first (missed heartbeats, a failure the worker reported). That late
// report is the same failure: it must not spend a second restart, nor fail the run registered since.

/** A cluster that restarts workers itself: no restartWorker. */
const selfRestarting = (): Launcher => ({ start: async () => {}, release: async () => {} });


function setup() {
  let clock = 1_000_000;
  const spec = parseSpec({ name: 'unit', workers: 2, worker: { command: 'true' }, restart: { maxRestarts: 1 }, timeouts: { heartbeat: '1s' } });
  const jm = new JobMaster({ jobId: 'unit-runs', spec, launcher: selfRestarting(), now: () => clock });
  jm.start();
  const worker = (id: number) => jm.status().workers.find((w) => w.workerId === id)!;
  return { jm, worker, advance: (ms: number) => (clock += ms) };
}

describe('job master: exit reports of runs already counted', () => {
  it('a missed heartbeat, then the worker registers again, then the crashed run\'s end is reported: one restart spent, the new run keeps running', async () => {
    const { jm, worker, advance } = setup();
    const s0 = jm.register(registration(0)).session;
    jm.register(registration(1));
    advance(1500);
    jm.heartbeat(0, s0);
    // The deadline check runs on a timer.
    while (worker(1).state !== 'FAILED') await new Promise((r) => setTimeout(r, 20));
    expect(worker(1)).toMatchObject({ state: 'FAILED', restarts: 1 });
    expect(jm.register(registration(1)).restartCount).toBe(1);
    jm.workerExited({ workerId: 1, code: 137, signal: null, run: 'pod-uid/worker-0/0' });
    expect(worker(1)).toMatchObject({ state: 'RUNNING', restarts: 1 });
    expect(jm.state).toBe('RUNNING');
    // The new run's own crash is a new failure, and this one is over the budget.
    jm.workerExited({ workerId: 1, code: 137, signal: null, run: 'pod-uid/worker-0/1' });
    const final = await jm.whenEnded();
    expect(final.state).toBe('FAILED');
    expect(final.message).toMatch(/worker 1 failed: worker process exited with code 137; it used all 1 restart/);
  });

  it('a failure the worker reported, then its run\'s end: counted once; a report that names no run counts as before', async () => {
    const { jm, worker } = setup();
    jm.register(registration(0));
    const s1 = jm.register(registration(1)).session;
    jm.complete(1, s1, false, 'the program threw');
    jm.register(registration(1));
    jm.workerExited({ workerId: 1, code: 1, signal: null, run: 'pod-uid/worker-0/0' });
    expect(worker(1)).toMatchObject({ state: 'RUNNING', restarts: 1 });
    jm.workerExited({ workerId: 1, code: null, signal: 'SIGTERM' });
    expect((await jm.whenEnded()).message).toMatch(/worker 1 failed: worker process killed by SIGTERM; it used all 1 restart/);
  });

  it('a run\'s end reported first is counted once; the run that follows is a new one', async () => {
    const { jm, worker } = setup();
    jm.register(registration(0));
    jm.register(registration(1));
    jm.workerExited({ workerId: 1, code: 137, signal: null, run: 'pod-uid/worker-0/0' });
    expect(worker(1)).toMatchObject({ state: 'FAILED', restarts: 1 });
    jm.register(registration(1));
    jm.workerExited({ workerId: 1, code: 137, signal: null, run: 'pod-uid/worker-0/1' });
    expect((await jm.whenEnded()).state).toBe('FAILED');
  });
});

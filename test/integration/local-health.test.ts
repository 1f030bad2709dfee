import { describe, expect, it } from 'vitest';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, startCli, tempHome, testRecords } from '../helpers/cli.js';

interface Rec {
  id: number;
  restart: number;
  pid: number;
  step: string;
}

// worker.health on real worker processes of the local cluster: a worker that fails its check
// failureThreshold times in a row is failed and restarted like a crashed one, with the reason shown.
async function run(spec: Record<string, unknown>, files: Record<string, string>) {
  const home = tempHome();
  const cli = startCli(['submit', makeJob({ name: 'health', restart: { maxRestarts: 1 }, ...spec }, files)], home);
  const code = await cli.closed;
  const jobId = jobIds(home)[0]!;
  return { code, out: cli.output(), jobId, recs: testRecords<Rec>(readLogs(home, jobId)) };
}

describe('local cluster: worker health checks', () => {
  it('an http check that starts failing on worker 2 gets worker 2 restarted with the same ID, the reason shown', async () => {
    const { code, out, jobId, recs } = await run(
      {
        workers: 4,
        worker: { module: 'w.mjs', args: ['2', 'await'], ports: ['health'], health: { http: { port: 'health', path: '/healthz' }, interval: '300ms', failureThreshold: 2 } },
      },
      { 'w.mjs': fixture('health-worker.mjs') },
    );
    expect(out.stderr).toContain('SUCCEEDED');
    expect(code).toBe(0);
    const starts = recs.filter((r) => r.step === 'start' && r.id === 2);
    expect(starts.map((r) => r.restart)).toEqual([0, 1]);
    expect(starts[0]!.pid).not.toBe(starts[1]!.pid);
    expect(recs.filter((r) => r.step === 'done').map((r) => r.id).sort()).toEqual([0, 1, 2, 3]);
    // The reason, in the worker's output as the client shows it.
    expect(out.stdout).toMatch(/\[worker 2\] \[twister2 worker 2\] failed: health check failed 2 times in a row: GET http:\/\/127\.0\.0\.1:\d+\/healthz answered 503\n/);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a program that keeps its main thread busy is still checked, and ended from the heartbeat thread', async () => {
    const { code, out, jobId, recs } = await run(
      {
        workers: 2,
        worker: {
          module: 'w.mjs',
          args: ['0', 'busy'],
          health: { command: 'test "$TWISTER2_WORKER_ID$TWISTER2_RESTART_COUNT" != 00', interval: '300ms', failureThreshold: 2 },
        },
      },
      { 'w.mjs': fixture('health-worker.mjs') },
    );
    expect(out.stderr).toContain('SUCCEEDED');
    expect(code).toBe(0);
    expect(recs.filter((r) => r.step === 'start' && r.id === 0).map((r) => r.restart)).toEqual([0, 1]);
    expect(out.stderr + out.stdout).toMatch(/worker 0\] failed: health check failed 2 times in a row: "test .*" exited with code 1 \(the program keeps the main thread busy, so it is ended from the heartbeat thread\)/);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a command worker whose check keeps failing uses up its restarts: the job fails naming the health check, nothing left', async () => {
    const { code, out, jobId } = await run(
      {
        workers: 3,
        worker: {
          command: 'if [ "$TWISTER2_WORKER_ID" = 1 ]; then sleep 60; fi',
          health: { command: ['sh', '-c', 'echo "no progress on worker $TWISTER2_WORKER_ID"; [ "$TWISTER2_WORKER_ID" != 1 ]'], interval: '200ms', timeout: '2s', failureThreshold: 3, startPeriod: '200ms' },
        },
      },
      {},
    );
    expect(code).toBe(1);
    expect(out.stderr).toMatch(/FAILED: worker 1 failed: health check failed 3 times in a row: "sh -c .*" exited with code 1 \(no progress on worker 1\); it used all 1 restart/);
    expect(jobProcesses(jobId)).toEqual([]);
  });
});

import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixture, jobIds, killJobMasterForGood, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import type { ConformanceTarget } from './launcher-conformance.js';

const MARK = 'T2_GRANDCHILD_MARK';
const WORKERS = 2;

/**
 * A command worker as in issue 13: after a barrier it leaves a background child, a double-forked one (re-parented
 * to init) and one in a session of its own, then waits for them (`sleep`) or exits at once (`exit`).
 */
const command = (then: 'wait' | 'exit') =>
  `export T2_GRANDCHILD_OF=$TWISTER2_WORKER_ID; twister2 barrier ready; sleep 300 & (sleep 300 &); setsid sleep 300 & echo "T2TEST {\\"id\\":$TWISTER2_WORKER_ID,\\"step\\":\\"sleeping\\"}"; ${then === 'wait' ? 'wait' : 'exit 0'}`;

/** Every process on this machine carrying the mark (test hosts and pods share this PID namespace), or only a command worker's. */
function marked(mark: string, workerId?: number): number[] {
  const needles = [Buffer.from(`${MARK}=${mark}\0`), ...(workerId === undefined ? [] : [Buffer.from(`T2_GRANDCHILD_OF=${workerId}\0`)])];
  return readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const environ = readFileSync(`/proc/${entry}/environ`);
      return needles.every((n) => environ.includes(n)) ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

/**
 * What a worker's program started dies with the worker on every exit path: whatever its grandchildren did
 * to leave its process tree or group. Each job's programs carry a unique mark in their environment
 * (worker.env), so a scan of /proc finds any survivor wherever the backend ran it.
 */
export function grandchildCases(t: ConformanceTarget): void {
  const where = t.outlivesClient ? `${t.cluster}, job master in the cluster` : t.cluster;
  const output = (home: string, jobId: string) => (t.workerOutput ? t.workerOutput(home, jobId) : readLogs(home, jobId));
  const gone = (mark: string) => waitFor('no process carrying the mark', () => marked(mark).length === 0, t.cleanupWithinMs);

  const job = (name: string, mark: string, worker: Record<string, unknown>) =>
    makeJob(
      {
        name,
        cluster: t.cluster,
        workers: WORKERS,
        worker: { ...worker, env: { [MARK]: mark } },
        // A job master killed for good is waited for no longer than a silent worker.
        timeouts: { heartbeat: `${t.cleanupWithinMs}ms`, jobMasterRecovery: `${t.cleanupWithinMs / 2}ms` },
        ...t.spec,
      },
      { 'w.mjs': fixture('grandchild-worker.mjs') },
    );

  /** Starts the job and returns once every worker's program started its children. */
  const sleepingJob = async (name: string, worker: Record<string, unknown>, extra: string[] = []) => {
    const home = tempHome();
    const mark = randomUUID();
    const cli = startCli(['submit', job(name, mark, worker), ...extra], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor(`${WORKERS} sleeping workers`, () => testRecords<{ step: string }>(output(home, jobId)).filter((x) => x.step === 'sleeping').length === WORKERS);
    expect(marked(mark).length).toBeGreaterThanOrEqual(3 * WORKERS);
    return { home, cli, jobId, mark };
  };

  describe(`grandchildren of workers: ${where}`, () => {
    it('a command worker that exits leaving background, double-forked and setsid children: SUCCEEDED, none left', async () => {
      const home = tempHome();
      const mark = randomUUID();
      const r = await runCli(['submit', job('gc-exit', mark, { command: command('exit') })], home);
      expect(r.code, r.stderr).toBe(0);
      // The runtime ends them before it reports completion, so none is left when the job has ended.
      expect(marked(mark)).toEqual([]);
    });

    it('a module worker that returns leaving a detached child and escaped grandchildren: SUCCEEDED, none left', async () => {
      const home = tempHome();
      const mark = randomUUID();
      const r = await runCli(['submit', job('gc-module-exit', mark, { module: 'w.mjs', args: ['return'] })], home);
      expect(r.code, r.stderr).toBe(0);
      expect(marked(mark)).toEqual([]);
    });

    it('`twister2 kill` of a command worker leaves none', async () => {
      const { home, cli, jobId, mark } = await sleepingJob('gc-kill', { command: command('wait') });
      expect((await runCli(['kill', jobId], home)).code).toBe(0);
      expect(await cli.closed).toBe(3);
      await gone(mark);
    });

    it('Ctrl-C to the client of a module worker leaves none', async () => {
      const { cli, mark } = await sleepingJob('gc-int', { module: 'w.mjs' });
      cli.kill('SIGINT');
      expect(await cli.closed).toBe(130);
      await gone(mark);
    });

    it(`a SIGKILLed client of a command worker leaves none${t.outlivesClient ? ' once the job is killed' : ''}`, async () => {
      const { home, cli, jobId, mark } = await sleepingJob('gc-sigkill', { command: command('wait') });
      cli.kill('SIGKILL');
      await cli.closed;
      if (t.outlivesClient) expect((await runCli(['kill', jobId], home)).code).toBe(0);
      await gone(mark);
    });

    if (t.cluster === 'local') {
      it('a command worker removed by scaling leaves none; the other keeps its own', async () => {
        const { home, cli, jobId, mark } = await sleepingJob('gc-scale', { command: command('wait') });
        expect((await runCli(['scale', jobId, '1'], home)).code).toBe(0);
        await waitFor("no process of worker 1's program", () => marked(mark, 1).length === 0, t.cleanupWithinMs);
        expect(marked(mark, 0).length).toBeGreaterThanOrEqual(3);
        expect((await runCli(['kill', jobId], home)).code).toBe(0);
        expect(await cli.closed).toBe(3);
        await gone(mark);
      });

      it('a SIGKILLed detached job master of a command worker leaves none', async () => {
        const { home, cli, jobId, mark } = await sleepingJob('gc-jm', { command: command('wait') }, ['--detach']);
        expect(await cli.closed).toBe(0);
        killJobMasterForGood(home, jobId);
        await gone(mark);
      });
    }
  });
}

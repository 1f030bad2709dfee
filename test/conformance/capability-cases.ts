import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { capabilitiesOf } from '../../src/launchers/registry.js';
import { fixture, jobIds, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { startDashboard } from '../helpers/dashboard.js';
import type { ConformanceTarget } from './launcher-conformance.js';

interface Rec {
  id: number;
  restart: number;
  step: string;
  n?: number;
  pid?: number;
  peers?: number[];
}

/**
 * Cases every backend runs, chosen by what its registry entry says it can do (src/launchers/registry.ts):
 * scaling up and down or a refused scale, the restart of one killed worker, and a job master placed in
 * the cluster. What a backend cannot do is tested as refused, so the capability table cannot lie.
 */
export function capabilityConformance(t: ConformanceTarget): void {
  const caps = capabilitiesOf(t.cluster);
  const where = t.outlivesClient ? `${t.cluster}, job master in the cluster` : t.cluster;
  // Read in the tests only: a target's spec may need its cluster, which starts in a beforeAll.
  const spec = () => t.spec ?? {};
  const output = (home: string, jobId: string) => (t.workerOutput ? t.workerOutput(home, jobId) : readLogs(home, jobId));
  // Kubernetes scales in whole pods: every count here is a multiple of workersPerPod.
  const step = () => ((spec().kubernetes as { workersPerPod?: number } | undefined)?.workersPerPod ?? 1);

  const submit = (name: string, workers: number, args: string[], extra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}) => {
    const home = tempHome();
    const dir = makeJob(
      { name, cluster: t.cluster, workers, worker: { module: 'w.mjs', args }, timeouts: { heartbeat: `${t.cleanupWithinMs}ms` }, ...spec(), ...extra },
      { 'w.mjs': fixture('capability-worker.mjs') },
    );
    const cli = startCli(['submit', dir], home, env);
    return { home, cli, dir };
  };
  const started = (home: string, jobId: string) => testRecords<Rec>(output(home, jobId)).filter((r) => r.step === 'start');

  describe(`capability conformance: ${where}`, () => {
    const refusesScale = caps.scale.fixed === true;
    if (!refusesScale) {
      it('scales up and down: IDs stay 0..N-1, scaling down removes the highest, the job succeeds', async () => {
        const [from, peak, final] = [2 * step(), 4 * step(), 3 * step()];
        const { home, cli } = submit('cap-scale', from, ['scale', String(peak), String(final)]);
        const jobId = await waitFor('the job', () => jobIds(home)[0]);
        await waitFor(`${from} workers`, () => started(home, jobId).length === from, 60_000);
        const up = await runCli(['scale', jobId, String(peak)], home);
        expect(up.code, up.stderr).toBe(0);
        await waitFor(`${peak} workers`, () => started(home, jobId).length === peak, 60_000);
        const down = await runCli(['scale', jobId, String(final)], home);
        expect(down.code, down.stderr).toBe(0);
        expect(await cli.closed, cli.output().stderr).toBe(0);
        const recs = testRecords<Rec>(output(home, jobId));
        const ids = (n: number) => Array.from({ length: n }, (_, i) => i);
        expect(started(home, jobId).map((r) => r.id).sort((a, b) => a - b)).toEqual(ids(peak));
        const done = recs.filter((r) => r.step === 'done');
        expect(done.map((r) => r.id).sort((a, b) => a - b)).toEqual(ids(final));
        expect(done.every((r) => r.peers?.join() === ids(final).join())).toBe(true);
        expect(await t.leftovers(jobId)).toEqual([]);
      });
    } else {
      it('refuses a scale (exit 2, naming the cluster) before anything changes; the job keeps running and succeeds', async () => {
        const trigger = path.join(tempHome(), 'finish');
        const { home, cli } = submit('cap-noscale', 2, ['wait', trigger]);
        const jobId = await waitFor('the job', () => jobIds(home)[0]);
        await waitFor('2 workers', () => started(home, jobId).length === 2, 60_000);
        const r = await runCli(['scale', jobId, '3'], home);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toMatch(new RegExp(`cluster "${t.cluster}" cannot scale this job from 2 to 3 workers: .*; the job keeps running with 2`));
        expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
        const status = await runCli(['status', jobId, '--json'], home);
        expect(JSON.parse(status.stdout || '{}'), status.stderr).toMatchObject({ state: 'RUNNING', numWorkers: 2, registered: 2 });
        writeFileSync(trigger, '');
        expect(await cli.closed, cli.output().stderr).toBe(0);
        expect(await t.leftovers(jobId)).toEqual([]);
      });
    }

    if (caps.restartOneWorker.by !== 'none') {
      it('restarts one killed worker with the same ID (restart.maxRestarts: 1); the job succeeds', async () => {
        const trigger = path.join(tempHome(), 'finish');
        const { home, cli } = submit('cap-restart', 3, ['restart', trigger], { restart: { maxRestarts: 1 } });
        const jobId = await waitFor('the job', () => jobIds(home)[0]);
        const computing = await waitFor('worker 1 computing', () => testRecords<Rec>(output(home, jobId)).find((r) => r.step === 'computing'), 60_000);
        process.kill(computing.pid!, 'SIGKILL');
        const again = await waitFor('worker 1 restarted', () => started(home, jobId).find((r) => r.id === 1 && r.restart === 1), 90_000);
        expect(again.pid).not.toBe(computing.pid);
        writeFileSync(trigger, '');
        expect(await cli.closed, cli.output().stderr).toBe(0);
        const done = testRecords<Rec>(output(home, jobId)).filter((r) => r.step === 'done');
        expect(done.map((r) => `${r.id}#${r.restart}`).sort()).toEqual(['0#0', '1#1', '2#0']);
        expect(await t.leftovers(jobId)).toEqual([]);
      });
    }

    // worker.health runs in the worker runtime, so it behaves the same everywhere: the failing worker is
    // restarted where the cluster restarts one worker, and fails the job where it cannot.
    const restartsOne = caps.restartOneWorker.by !== 'none';
    it(
      restartsOne
        ? 'a worker whose health check fails twice in a row is restarted with the same ID, the reason in its output; the job succeeds'
        : 'a worker whose health check fails twice in a row fails the job, naming the check; nothing left',
      async () => {
        const home = tempHome();
        const dir = makeJob(
          {
            name: 'cap-health',
            cluster: t.cluster,
            workers: 3,
            worker: { module: 'w.mjs', args: ['1', 'await'], ports: ['health'], health: { http: { port: 'health', path: '/healthz' }, interval: '300ms', failureThreshold: 2 } },
            timeouts: { heartbeat: `${t.cleanupWithinMs}ms` },
            ...spec(),
            restart: { maxRestarts: restartsOne ? 1 : 0 },
          },
          { 'w.mjs': fixture('health-worker.mjs') },
        );
        const cli = startCli(['submit', dir], home);
        const code = await cli.closed;
        const jobId = jobIds(home)[0]!;
        const out = output(home, jobId);
        expect(out).toMatch(/\[twister2 worker 1\] failed: health check failed 2 times in a row: GET http:\/\/127\.0\.0\.1:\d+\/healthz answered 503/);
        if (restartsOne) {
          expect(code, cli.output().stderr).toBe(0);
          const done = testRecords<Rec>(output(home, jobId)).filter((r) => r.step === 'done');
          expect(done.map((r) => `${r.id}#${r.restart}`).sort()).toEqual(['0#0', '1#1', '2#0']);
        } else {
          expect(code, cli.output().stderr).toBe(1);
          expect(cli.output().stderr).toMatch(/FAILED: .*health check failed 2 times in a row/);
        }
        expect(await t.leftovers(jobId)).toEqual([]);
      },
    );

    // The driver runs in the job master, wherever that runs: the target's placement, and the cluster's own too.
    const placements = caps.placements.cluster && !t.outlivesClient ? [undefined, 'cluster'] : [undefined];
    for (const placement of placements) {
      const scales = !refusesScale;
      it(`a driver${placement ? ' (job master in the cluster)' : ''} broadcasts to 4 workers and gets exactly their 4 answers; ${scales ? 'it scales to 6 and the new workers answer too' : 'its scale is refused clearly and the job still succeeds'} (sizes in whole pods on Kubernetes)`, async () => {
        const [n, more] = [4 * step(), 6 * step()];
        const home = tempHome();
        const dir = makeJob(
          {
            name: 'cap-driver',
            cluster: t.cluster,
            workers: n,
            worker: { module: 'w.mjs' },
            driver: { module: 'd.mjs', args: [String(more)] },
            timeouts: { heartbeat: `${t.cleanupWithinMs}ms` },
            ...spec(),
            ...(placement ? { jobMaster: { placement } } : {}),
          },
          { 'w.mjs': fixture('driver-answer-worker.mjs'), 'd.mjs': fixture('driver-scale.mjs') },
        );
        const cli = startCli(['submit', dir], home);
        const code = await cli.closed;
        const jobId = jobIds(home)[0]!;
        const { stdout, stderr } = cli.output();
        expect(code, `${stderr}\n${output(home, jobId)}`).toBe(0);
        // The driver's output reaches the client, wherever its job master ran.
        expect(stdout).toContain(`[driver] asked ${n} workers\n`);
        const returned = /^twister2: the driver returned (.*)$/m.exec(stderr)?.[1];
        const result = JSON.parse(returned ?? 'null') as { answers: number[]; scaleRefused?: string } | null;
        const ids = (k: number) => Array.from({ length: k }, (_, i) => i);
        expect(result?.answers).toEqual(ids(scales ? more : n));
        if (scales) expect(result?.scaleRefused).toBeUndefined();
        else expect(result?.scaleRefused).toMatch(new RegExp(`^T2_CAPABILITY: cluster "${t.cluster}" cannot scale this job from ${n} to ${more} workers: .*; the job keeps running with ${n}$`));
        await waitFor('nothing left', async () => (await t.leftovers(jobId)).length === 0, t.cleanupWithinMs);
      });
    }

    // A target whose job master is in the cluster already (outlivesClient) runs every case above that way.
    if (caps.placements.cluster && !t.outlivesClient) {
      it('runs with the job master in the cluster (jobMaster.placement: cluster): IDs 0..N-1, SUCCEEDED, reported to a dashboard (dashboard.url), nothing left', async () => {
        const trigger = path.join(tempHome(), 'finish');
        writeFileSync(trigger, '');
        // The target's jobMaster.host is an address of this machine that the cluster's hosts reach: the
        // dashboard listens there. It has a home of its own, so it knows the job by its reports only.
        const d = await startDashboard(tempHome(), { host: (spec().jobMaster as { host?: string } | undefined)?.host ?? '127.0.0.1' });
        try {
          // The cluster picks the job master's own address.
          const { home, cli } = submit('cap-jm', 2, ['wait', trigger], { jobMaster: { placement: 'cluster' }, dashboard: { url: d.url } }, { TWISTER2_DASHBOARD_TOKEN: d.token });
          expect(await cli.closed, cli.output().stderr).toBe(0);
          const jobId = jobIds(home)[0]!;
          expect(testRecords<Rec>(output(home, jobId)).filter((r) => r.step === 'done').map((r) => r.id).sort()).toEqual([0, 1]);
          const shown = await waitFor('the job SUCCEEDED on the dashboard', async () => {
            const { body } = await d.api<{ state: string; via: string; timeline: Array<{ event: { type: string; workerId?: number; state?: string } }> }>(`/api/jobs/${jobId}`);
            return body?.state === 'SUCCEEDED' ? body : undefined;
          }, 30_000);
          expect(shown.via).toBe('report');
          const ran = shown.timeline.filter((e) => e.event.type === 'worker-state' && e.event.state === 'RUNNING').map((e) => e.event.workerId);
          expect(ran.sort()).toEqual([0, 1]);
          // The client hears the outcome from the job master, before the cluster ends the job master's own
          // process (Slurm's batch step ends after it, so Slurm records the job COMPLETED).
          await waitFor('nothing left', async () => (await t.leftovers(jobId)).length === 0, t.cleanupWithinMs);
        } finally {
          await d.stop();
        }
      });
    }
  });
}

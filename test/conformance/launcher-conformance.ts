import { describe, expect, it } from 'vitest';
import type { ClusterKind } from '../../src/spec/schema.js';
import { capabilityConformance } from './capability-cases.js';
import { fixture, jobIds, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { heavyOutputCases } from './output-cases.js';
import { grandchildCases } from './process-tree-cases.js';

export interface ConformanceTarget {
  cluster: ClusterKind;
  /** Extra spec fields the cluster needs (its own section, an uploader, ...). */
  spec?: Record<string, unknown>;
  /** Everything of the job still alive on the cluster: processes, pods, Slurm or Nomad jobs. Empty when clean. */
  leftovers(jobId: string): Promise<string[]>;
  /** How long the cluster may take to clean up after the client was SIGKILLed. */
  cleanupWithinMs: number;
  /**
   * The job master runs in the cluster (Kubernetes' default): a SIGKILLed client leaves the job running,
   * reachable by `twister2 status` and `kill`, instead of ending it.
   */
  outlivesClient?: boolean;
  /** The workers' output, where a test cluster keeps it; default the job's logs on the client. */
  workerOutput?(home: string, jobId: string): string;
}

interface Rec {
  id: number;
  step: string;
  n?: number;
  peers?: number[];
  name?: string;
}

/**
 * The contract every launcher passes, run by each launcher's integration tests: IDs 0..N-1, full
 * discovery, barriers, and nothing left behind by success, `twister2 kill`, Ctrl-C or a SIGKILLed client.
 */
export function launcherConformance(t: ConformanceTarget): void {
  const where = t.outlivesClient ? `${t.cluster}, job master in the cluster` : t.cluster;
  const job = (name: string, fixtureName: string) =>
    makeJob(
      {
        name,
        cluster: t.cluster,
        workers: 4,
        worker: { module: 'w.mjs', args: ['3'] },
        timeouts: { heartbeat: `${t.cleanupWithinMs}ms` },
        ...t.spec,
      },
      { 'w.mjs': fixture(fixtureName) },
    );

  const output = (home: string, jobId: string) => (t.workerOutput ? t.workerOutput(home, jobId) : readLogs(home, jobId));

  /** Submits 4 sleeping workers from a CLI process and returns once all 4 say they sleep. */
  const sleepingJob = async (name: string) => {
    const home = tempHome();
    const cli = startCli(['submit', job(name, 'sleep-worker.mjs')], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping workers', () => testRecords<Rec>(output(home, jobId)).filter((x) => x.step === 'sleeping').length === 4);
    return { home, cli, jobId };
  };

  describe(`launcher conformance: ${where}`, () => {
    it('IDs are 0..N-1, every worker discovers all N, 3 barriers pass, SUCCEEDED, nothing left', async () => {
      const home = tempHome();
      const r = await runCli(['submit', job('conform', 'barrier-worker.mjs')], home);
      expect(r.code, r.stderr).toBe(0);
      const recs = testRecords<Rec>(t.workerOutput ? t.workerOutput(home, jobIds(home)[0]!) : r.stdout);
      const found = recs.filter((x) => x.step === 'discovered');
      expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
      expect(found.every((x) => x.n === 4 && x.peers?.join() === '0,1,2,3')).toBe(true);
      expect(recs.filter((x) => x.step === 'barrier')).toHaveLength(12);
      expect(await t.leftovers(jobIds(home)[0]!)).toEqual([]);
    });

    it('`twister2 kill` leaves nothing', async () => {
      const { home, cli, jobId } = await sleepingJob('conform-kill');
      expect((await runCli(['kill', jobId], home)).code).toBe(0);
      expect(await cli.closed).toBe(3);
      expect(await t.leftovers(jobId)).toEqual([]);
    });

    it('Ctrl-C (SIGINT to the client) ends the job KILLED with exit 130 and leaves nothing', async () => {
      const { cli, jobId } = await sleepingJob('conform-int');
      cli.kill('SIGINT');
      expect(await cli.closed).toBe(130);
      expect(cli.output().stderr).toMatch(/KILLED: interrupted \(SIGINT\)/);
      expect(await t.leftovers(jobId)).toEqual([]);
    });

    if (t.outlivesClient) {
      it('a SIGKILLed client leaves the job running; `twister2 status` and `kill` still reach it; nothing left', async () => {
        const { home, cli, jobId } = await sleepingJob('conform-sigkill');
        cli.kill('SIGKILL');
        await cli.closed;
        await new Promise((r) => setTimeout(r, 2000));
        const status = await runCli(['status', jobId, '--json'], home);
        expect(JSON.parse(status.stdout || '{}'), status.stderr).toMatchObject({ state: 'RUNNING', registered: 4 });
        expect((await runCli(['kill', jobId], home)).code).toBe(0);
        expect(await t.leftovers(jobId)).toEqual([]);
      });
    } else {
      it('a SIGKILLed client leaves nothing once the workers noticed', async () => {
        const { cli, jobId } = await sleepingJob('conform-sigkill');
        cli.kill('SIGKILL');
        await waitFor('nothing left', async () => (await t.leftovers(jobId)).length === 0, t.cleanupWithinMs);
      });
    }

    heavyOutputCases(t);
  });
  capabilityConformance(t);
  grandchildCases(t);
}

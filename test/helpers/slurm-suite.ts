import { afterAll, beforeAll } from 'vitest';
import { ensureSlurm, startSlurmCluster, type SlurmCluster, type SlurmClusterOptions } from '../env/slurm-cluster.js';

/**
 * A Slurm cluster for one test file: started before its tests (handed to `started`), its client
 * environment put in process.env as a login node has it (the CLI the tests start finds the cluster), and
 * stopped after them.
 */
export function useSlurmCluster(opts: SlurmClusterOptions, started: (cluster: SlurmCluster) => void): void {
  ensureSlurm();
  let cluster: SlurmCluster | undefined;
  const saved = { ...process.env };
  beforeAll(async () => {
    cluster = await startSlurmCluster(opts);
    Object.assign(process.env, cluster.env);
    started(cluster);
  }, 180_000);
  afterAll(async () => {
    for (const k of Object.keys(cluster?.env ?? {})) if (saved[k] === undefined) delete process.env[k];
    await cluster?.stop();
  });
}

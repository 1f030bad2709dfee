import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';
import { ensureSlurm, startSlurmCluster, type SlurmCluster } from '../env/slurm-cluster.js';
import { faultSuite } from './harness.js';

// The fault suite on a real Slurm cluster (README.md): the job master runs in the job's allocation
// (`jobMaster.placement: cluster`), under its supervisor in the batch step; the workers are an srun step
// on two nodes, each in its own network namespace.
ensureSlurm();
let cluster: SlurmCluster;
const saved = { ...process.env };
beforeAll(async () => {
  cluster = await startSlurmCluster({ nodes: 2, cpusPerNode: 8 });
  Object.assign(process.env, cluster.env);
}, 180_000);
afterAll(async () => {
  for (const k of Object.keys(cluster?.env ?? {})) if (saved[k] === undefined) delete process.env[k];
  await cluster?.stop();
});

faultSuite(
  {
    name: 'slurm',
    spec: { cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 } },
    async leftovers(jobId) {
      const queued = execFileSync('squeue', ['-h', '-n', jobId, '-o', '%i %T'], { env: { ...process.env, ...cluster.env }, encoding: 'utf8' }).trim();
      return queued ? [`squeue: ${queued}`] : [];
    },
  },
  12,
);

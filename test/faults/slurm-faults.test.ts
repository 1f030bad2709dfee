import { execFileSync } from 'node:child_process';
import type { SlurmCluster } from '../env/slurm-cluster.js';
import { useSlurmCluster } from '../helpers/slurm-suite.js';
import { faultSuite } from './harness.js';

// The fault suite on a real Slurm cluster (README.md): the job master runs in the job's allocation
// (`jobMaster.placement: cluster`), under its supervisor in the batch step; the workers are an srun step
// on two nodes, each in its own network namespace.
let cluster: SlurmCluster;
useSlurmCluster({ nodes: 2, cpusPerNode: 8 }, (c) => (cluster = c));

faultSuite(
  {
    name: 'slurm',
    spec: { cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 } },
    async leftovers(jobId) {
      const queued = execFileSync('squeue', ['-h', '-n', jobId, '-o', '%i %T'], { env: { ...process.env, ...cluster.env }, encoding: 'utf8' }).trim();
      return queued ? [`squeue: ${queued}`] : [];
    },
  },
  8,
);

import { execFileSync } from 'node:child_process';
import type { SlurmCluster } from '../env/slurm-cluster.js';
import { useSlurmCluster } from '../helpers/slurm-suite.js';
import { faultSuite, type FaultBackend } from './harness.js';
import { partitionSuite } from './partition.js';

// The fault suite on a real Slurm cluster (README.md): the job master runs in the job's allocation
// (`jobMaster.placement: cluster`), under its supervisor in the batch step; the workers are an srun step
// on two nodes, each in its own network namespace.
let cluster: SlurmCluster;
useSlurmCluster({ nodes: 2, cpusPerNode: 8 }, (c) => (cluster = c));

const slurm: FaultBackend = {
  name: 'slurm',
  spec: { cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 } },
  async leftovers(jobId) {
    const queued = execFileSync('squeue', ['-h', '-n', jobId, '-o', '%i %T'], { env: { ...process.env, ...cluster.env }, encoding: 'utf8' }).trim();
    return queued ? [`squeue: ${queued}`] : [];
  },
};

faultSuite(slurm, 8);

// The second node (workers 2 and 3; the job master is in the batch step on the first) is cut off. Slurm
// restarts the unheard workers in the allocation; once the link is back, the old ones are refused and exit.
partitionSuite(
  {
    ...slurm,
    expect: 'replace',
    cutHost: () => ({ namespace: cluster.nodes[1]!.namespace!, link: cluster.nodes[1]!.link! }),
  },
  3,
);

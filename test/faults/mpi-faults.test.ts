import { afterAll, beforeAll } from 'vitest';
import { ensureOpenMpi } from '../env/openmpi.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';
import { processesNaming } from '../helpers/cli.js';
import { faultSuite, type FaultBackend } from './harness.js';
import { partitionSuite } from './partition.js';

// The fault suite on OpenMPI (README.md): two hosts, each an sshd in its own network namespace; the job
// master runs on the first (`jobMaster.placement: cluster`) under its supervisor there, mpirun beside it.
ensureOpenMpi();
let env: SshHosts;
beforeAll(async () => {
  env = await startSshHosts(2, { prefix: 't2mpf' });
});
afterAll(async () => {
  await env?.stop();
});

const mpi: FaultBackend = {
    name: 'mpi',
    spec: () => ({
      cluster: 'mpi',
      jobMaster: { placement: 'cluster' },
      mpi: { hosts: env.hosts.map((h) => ({ host: h.address, slots: 2 })), ssh: { identityFile: env.keyFile, user: 'root' }, interfaces: env.subnet },
    }),
    // mpirun, orted and ssh name the job only on their command lines (the job directory), not in their environment.
    leftovers: async (jobId) => processesNaming(jobId),
};

faultSuite(mpi, 8);

// The second host (ranks 2 and 3) is cut off from the first (the job master, mpirun). OpenMPI cannot
// restart one rank: the job fails naming an unheard worker, and nothing is left on either host once the
// link is back.
partitionSuite({ ...mpi, expect: 'fail', cutHost: () => ({ namespace: env.hosts[1]!.name, link: env.hosts[1]!.link }) }, 3);

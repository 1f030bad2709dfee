import { afterAll, beforeAll } from 'vitest';
import { ensureOpenMpi } from '../env/openmpi.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';
import { processesNaming } from '../helpers/cli.js';
import { faultSuite } from './harness.js';

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

faultSuite(
  {
    name: 'mpi',
    spec: () => ({
      cluster: 'mpi',
      jobMaster: { placement: 'cluster' },
      mpi: { hosts: env.hosts.map((h) => ({ host: h.address, slots: 2 })), ssh: { identityFile: env.keyFile, user: 'root' }, interfaces: env.subnet },
    }),
    // mpirun, orted and ssh name the job only on their command lines (the job directory), not in their environment.
    leftovers: async (jobId) => processesNaming(jobId),
  },
  8,
);

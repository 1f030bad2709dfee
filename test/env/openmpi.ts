import { ensureDebianPackages } from './debian.js';

/** OpenMPI (mpirun, orted) and mpi4py from Debian, plus the ssh client mpirun uses; idempotent. */
export function ensureOpenMpi(): void {
  ensureDebianPackages(['openmpi-bin', 'python3-mpi4py', 'openssh-client']);
}

import { idFrom, type WorkerSide } from '../worker-side.js';

/** Where OpenMPI (and PMIx/PMI launchers) put a process's rank: the worker ID. */
export const MPI_RANK_SOURCES = ['OMPI_COMM_WORLD_RANK', 'PMIX_RANK', 'PMI_RANK'] as const;

/** Ranks are worker IDs; also used by Slurm's `launch: mpirun` and Kubernetes' OpenMPI mode. */
export const workerSide: WorkerSide = {
  idSources: MPI_RANK_SOURCES,
  workerId: (env) => idFrom(env, ...MPI_RANK_SOURCES),
};

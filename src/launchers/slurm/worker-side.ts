import { workerSide as mpi } from '../mpi/worker-side.js';
import { idFrom, type WorkerSide } from '../worker-side.js';

/** srun's task number is the worker ID; with `slurm.launch: mpirun`, the MPI rank is. */
export const workerSide: WorkerSide = {
  idSources: [...mpi.idSources, 'SLURM_PROCID'],
  workerId: (env) => mpi.workerId(env) ?? idFrom(env, 'SLURM_PROCID'),
  // The node's indexes of the task's GPUs (--gpus-per-task binds them per task), which CUDA_VISIBLE_DEVICES
  // may renumber (ConstrainDevices); a restart keeps them (kept-gpus.ts).
  gpuIds: (env) => env.SLURM_STEP_GPUS?.split(',').filter(Boolean),
};

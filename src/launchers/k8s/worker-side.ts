import { WorkerIdError } from '../../errors.js';
import { idFrom, type WorkerIdFound, type WorkerSide } from '../worker-side.js';
import { podOrdinal } from './names.js';

/**
 * A StatefulSet pod knows its ordinal (the pod name's suffix) and which of its containers it is; the worker
 * ID is ordinal × workers per pod + container index + the worker group's offset, so it survives pod restarts
 * and rescheduling. In OpenMPI mode (kubernetes.openmpi) the MPI rank is the ID.
 */
export const workerSide: WorkerSide = {
  idSources: ['OMPI_COMM_WORLD_RANK', 'TWISTER2_POD_NAME'],
  workerId: (env) => idFrom(env, 'OMPI_COMM_WORLD_RANK') ?? podWorkerId(env),
  endOrphanedJob: async (env, log) => (await import('./orphan-cleanup.js')).deleteOrphanedRoot(env, log),
};

function podWorkerId(env: NodeJS.ProcessEnv): WorkerIdFound | undefined {
  const pod = env.TWISTER2_POD_NAME;
  if (!pod || env.TWISTER2_CONTAINER_INDEX === undefined) return undefined;
  const ordinal = podOrdinal(pod);
  const perPod = Number(env.TWISTER2_WORKERS_PER_POD ?? 1);
  const index = Number(env.TWISTER2_CONTAINER_INDEX);
  const offset = Number(env.TWISTER2_WORKER_ID_OFFSET ?? 0);
  if (ordinal === undefined || ![perPod, index, offset].every((n) => Number.isInteger(n) && n >= 0) || perPod < 1) {
    throw new WorkerIdError(`cannot tell this worker's ID from pod "${pod}" (TWISTER2_CONTAINER_INDEX=${env.TWISTER2_CONTAINER_INDEX}, TWISTER2_WORKERS_PER_POD=${env.TWISTER2_WORKERS_PER_POD})`);
  }
  return { workerId: ordinal * perPod + index + offset, source: 'TWISTER2_POD_NAME' };
}

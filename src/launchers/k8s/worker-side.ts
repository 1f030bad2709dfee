import { WorkerIdError } from '../../errors.js';
import { idFrom, type WorkerIdFound, type WorkerSide } from '../worker-side.js';
import { podOrdinal } from './names.js';
import { ENV } from '../../job/worker-environment.js';

/**
 * A StatefulSet pod knows its ordinal (the pod name's suffix) and which of its containers it is; the worker
 * ID is ordinal × workers per pod + container index + the worker group's offset, so it survives pod restarts
 * and rescheduling. In OpenMPI mode (kubernetes.openmpi) the MPI rank is the ID.
 */
export const workerSide: WorkerSide = {
  idSources: ['OMPI_COMM_WORLD_RANK', ENV.podName],
  workerId: (env) => idFrom(env, 'OMPI_COMM_WORLD_RANK') ?? podWorkerId(env),
  endOrphanedJob: async (env, log) => (await import('./orphan-cleanup.js')).deleteOrphanedRoot(env, log),
};

function podWorkerId(env: NodeJS.ProcessEnv): WorkerIdFound | undefined {
  const pod = env[ENV.podName];
  if (!pod || env[ENV.containerIndex] === undefined) return undefined;
  const ordinal = podOrdinal(pod);
  const perPod = Number(env[ENV.workersPerPod] ?? 1);
  const index = Number(env[ENV.containerIndex]);
  const offset = Number(env[ENV.workerIdOffset] ?? 0);
  if (ordinal === undefined || ![perPod, index, offset].every((n) => Number.isInteger(n) && n >= 0) || perPod < 1) {
    throw new WorkerIdError(`cannot tell this worker's ID from pod "${pod}" (${ENV.containerIndex}=${env[ENV.containerIndex]}, ${ENV.workersPerPod}=${env[ENV.workersPerPod]})`);
  }
  return { workerId: ordinal * perPod + index + offset, source: ENV.podName };
}

import { WorkerIdError } from '../errors.js';

/**
 * Where each cluster tells a process which worker it is, in order of precedence. A launcher that knows
 * the ID sets TWISTER2_WORKER_ID; MPI, Slurm and Nomad number their processes themselves.
 */
const ID_SOURCES = [
  'TWISTER2_WORKER_ID',
  'OMPI_COMM_WORLD_RANK',
  'PMIX_RANK',
  'PMI_RANK',
  'SLURM_PROCID',
  'NOMAD_ALLOC_INDEX',
] as const;

export function resolveWorkerId(env: NodeJS.ProcessEnv): { workerId: number; source: string } {
  const pod = kubernetesWorkerId(env);
  if (pod !== undefined && !env.TWISTER2_WORKER_ID && !env.OMPI_COMM_WORLD_RANK) return { workerId: pod, source: 'TWISTER2_POD_NAME' };
  for (const source of ID_SOURCES) {
    const raw = env[source];
    if (raw === undefined || raw === '') continue;
    const workerId = Number(raw);
    if (!Number.isInteger(workerId) || workerId < 0) {
      throw new WorkerIdError(`${source}="${raw}" is not a worker ID (a whole number from 0)`);
    }
    return { workerId, source };
  }
  throw new WorkerIdError(`cannot tell this worker's ID: none of ${ID_SOURCES.join(', ')} is set`);
}

/**
 * A Kubernetes StatefulSet pod knows its ordinal (the pod name's suffix) and which of its containers it
 * is; the worker ID is ordinal × workers per pod + container index + the worker group's offset, so it
 * survives pod restarts and rescheduling.
 */
function kubernetesWorkerId(env: NodeJS.ProcessEnv): number | undefined {
  const pod = env.TWISTER2_POD_NAME;
  if (!pod || env.TWISTER2_CONTAINER_INDEX === undefined) return undefined;
  const ordinal = /-(\d+)$/.exec(pod)?.[1];
  const perPod = Number(env.TWISTER2_WORKERS_PER_POD ?? 1);
  const index = Number(env.TWISTER2_CONTAINER_INDEX);
  const offset = Number(env.TWISTER2_WORKER_ID_OFFSET ?? 0);
  if (ordinal === undefined || ![perPod, index, offset].every((n) => Number.isInteger(n) && n >= 0) || perPod < 1) {
    throw new WorkerIdError(`cannot tell this worker's ID from pod "${pod}" (TWISTER2_CONTAINER_INDEX=${env.TWISTER2_CONTAINER_INDEX}, TWISTER2_WORKERS_PER_POD=${env.TWISTER2_WORKERS_PER_POD})`);
  }
  return Number(ordinal) * perPod + index + offset;
}

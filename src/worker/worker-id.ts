import { WorkerIdError } from '../errors.js';
import { ENV } from '../job/worker-environment.js';

/**
 * Where each cluster tells a process which worker it is, in order of precedence. A launcher that knows
 * the ID sets TWISTER2_WORKER_ID; MPI, Slurm and Nomad number their processes themselves.
 */
const ID_SOURCES = [
  ENV.workerId,
  'OMPI_COMM_WORLD_RANK',
  'PMIX_RANK',
  'PMI_RANK',
  'SLURM_PROCID',
  'NOMAD_ALLOC_INDEX',
] as const;

export function resolveWorkerId(env: NodeJS.ProcessEnv): { workerId: number; source: string } {
  const pod = kubernetesWorkerId(env);
  if (pod !== undefined && !env[ENV.workerId] && !env.OMPI_COMM_WORLD_RANK) return { workerId: pod, source: ENV.podName };
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
  const pod = env[ENV.podName];
  const container = env[ENV.containerIndex];
  if (!pod || container === undefined) return undefined;
  const ordinal = /-(\d+)$/.exec(pod)?.[1];
  const perPod = Number(env[ENV.workersPerPod] ?? 1);
  const index = Number(container);
  const offset = Number(env[ENV.workerIdOffset] ?? 0);
  if (ordinal === undefined || ![perPod, index, offset].every((n) => Number.isInteger(n) && n >= 0) || perPod < 1) {
    throw new WorkerIdError(`cannot tell this worker's ID from pod "${pod}" (${ENV.containerIndex}=${container}, ${ENV.workersPerPod}=${env[ENV.workersPerPod]})`);
  }
  return Number(ordinal) * perPod + index + offset;
}

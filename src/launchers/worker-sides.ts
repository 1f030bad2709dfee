import { Twister2Error, WorkerIdError } from '../errors.js';
import type { ClusterKind } from '../spec/schema.js';
import { idFrom, type WorkerIdFound, type WorkerSide } from './worker-side.js';
import { ENV } from '../job/worker-environment.js';

/**
 * The registry of worker sides (worker-side.ts): one line per cluster, each module loaded only by a worker
 * of that cluster, so a starting worker loads no other backend's code.
 */
const workerSides: Record<ClusterKind, () => Promise<{ workerSide: WorkerSide }>> = {
  local: () => import('./local/worker-side.js'),
  mpi: () => import('./mpi/worker-side.js'),
  slurm: () => import('./slurm/worker-side.js'),
  nomad: () => import('./nomad/worker-side.js'),
  kubernetes: () => import('./k8s/worker-side.js'),
};

/** The launcher sets TWISTER2_CLUSTER for every worker (launchers/worker-env.ts). */
export async function workerSideOf(env: NodeJS.ProcessEnv): Promise<WorkerSide> {
  const cluster = env[ENV.cluster];
  const load = cluster === undefined ? undefined : (workerSides as Partial<Record<string, () => Promise<{ workerSide: WorkerSide }>>>)[cluster];
  if (!load) {
    throw new WorkerIdError(
      `${ENV.cluster} is ${cluster === undefined ? 'not set' : `"${cluster}", not a cluster of this twister2 (${Object.keys(workerSides).join(', ')})`}; the worker runtime is meant to be started by a twister2 launcher`,
    );
  }
  return (await load()).workerSide;
}

/** A launcher that knows the ID sets TWISTER2_WORKER_ID (also on restarts); otherwise the cluster's own numbering. */
export async function resolveWorkerId(env: NodeJS.ProcessEnv): Promise<WorkerIdFound> {
  const given = idFrom(env, ENV.workerId);
  if (given) return given;
  const side = await workerSideOf(env);
  const found = side.workerId(env);
  if (found) return found;
  throw new WorkerIdError(`cannot tell this worker's ID: none of ${[ENV.workerId, ...side.idSources].join(', ')} is set`);
}

/** Where the job master is: the launcher says so (TWISTER2_JOB_MASTER_URL), or the cluster's discovery finds it. */
export async function jobMasterUrl(env: NodeJS.ProcessEnv, timeoutMs: number, log: (line: string) => void): Promise<string> {
  const given = env[ENV.jobMasterUrl];
  if (given) return given;
  const side = await workerSideOf(env);
  if (!side.findJobMaster) {
    throw new Twister2Error(`the worker runtime was started without ${ENV.jobMasterUrl} or ${ENV.jobMasterService}; it is meant to be started by a twister2 launcher`);
  }
  return side.findJobMaster(env, timeoutMs, log);
}

/** A worker whose job master is gone ends its job where the cluster would keep it (restarting the workers). */
export async function endOrphanedJob(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  try {
    await (await workerSideOf(env)).endOrphanedJob?.(env, log);
  } catch (err) {
    log(`could not end the orphaned job: ${(err as Error).message}`);
  }
}

/**
 * An MPI rank takes its share of its host's GPUs (ENV.gpuPlan, by its local rank) as CUDA_VISIBLE_DEVICES,
 * before its program starts; other launchers set CUDA_VISIBLE_DEVICES themselves, or the cluster does (Slurm),
 * where a restarted worker narrows what its step was given to its predecessor's GPUs (ENV.slurmKeptGpus).
 */
export async function takeGpus(env: NodeJS.ProcessEnv): Promise<void> {
  if (env[ENV.slurmKeptGpus]) (await import('./slurm/kept-gpus.js')).keepPredecessorGpus(env);
  if (!env[ENV.gpuPlan]) return;
  const { CUDA_VISIBLE_DEVICES, mpiRankGpus } = await import('./gpus.js');
  const visible = await mpiRankGpus(env, ENV.gpuPlan);
  if (visible !== undefined) env[CUDA_VISIBLE_DEVICES] = visible;
}

/** The GPUs the cluster bound to this worker (WorkerInfo.gpuIds), where its cluster tells; after takeGpus. */
export async function heldGpuIds(env: NodeJS.ProcessEnv): Promise<string[] | undefined> {
  const ids = (await workerSideOf(env)).gpuIds?.(env);
  return ids && ids.length > 0 ? ids : undefined;
}

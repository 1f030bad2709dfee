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

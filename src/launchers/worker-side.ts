import { WorkerIdError } from '../errors.js';

/**
 * The worker-side pieces of each cluster, for the worker runtime: where the cluster numbers its processes,
 * how a worker finds a job master its launcher could not name, and how a worker whose job master is gone
 * ends the job. Kept apart from registry.ts, and loaded per cluster, so a starting worker loads only its
 * own cluster's small module: no launcher, no spec schema, no zod, no cluster client library.
 */
export interface WorkerSide {
  /** The variables the cluster numbers its processes by, in order of precedence (for messages). */
  idSources: readonly string[];
  /** This process's worker ID, or undefined when none of idSources is set; a malformed one is a WorkerIdError. */
  workerId(env: NodeJS.ProcessEnv): WorkerIdFound | undefined;
  /** The job master's URL when the launcher could not give it (TWISTER2_JOB_MASTER_URL unset). */
  findJobMaster?(env: NodeJS.ProcessEnv, timeoutMs: number, log: (line: string) => void): Promise<string>;
  /** Ends the job when its job master is gone, on clusters that would otherwise keep it running. */
  endOrphanedJob?(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void>;
  /** The GPUs the cluster bound to this process, by its node's own indexes, where the cluster tells (WorkerInfo.gpuIds). */
  gpuIds?(env: NodeJS.ProcessEnv): string[] | undefined;
}

export interface WorkerIdFound {
  workerId: number;
  source: string;
}

/** The first of `sources` that is set, as a worker ID. */
export function idFrom(env: NodeJS.ProcessEnv, ...sources: string[]): WorkerIdFound | undefined {
  for (const source of sources) {
    const raw = env[source];
    if (raw === undefined || raw === '') continue;
    const workerId = Number(raw);
    if (!Number.isInteger(workerId) || workerId < 0) {
      throw new WorkerIdError(`${source}="${raw}" is not a worker ID (a whole number from 0)`);
    }
    return { workerId, source };
  }
  return undefined;
}

import { statfsSync } from 'node:fs';
import path from 'node:path';
import { formatBytes } from '../spec/units.js';
import { ENV } from './worker-environment.js';

/**
 * Where a job's storage (spec `storage`, README "Storage") is on a host, in one place: the worker runtime
 * creates it, the launchers' clean-up (the local launcher's release, the MPI sweep, the Slurm batch script)
 * removes what a killed worker left. No zod here: the worker's start-up path imports it.
 */

/** The memory-backed file system every Linux host has; /dev/shm cannot hold a per-directory quota. */
export const MEMORY_ROOT = '/dev/shm';

/** `storage.memory`: one directory per host, shared by the job's workers there, removed by the last one to end. */
export function memoryDirOf(jobId: string): string {
  return path.join(MEMORY_ROOT, `twister2-${jobId}`);
}

/** `storage.scratch`: the host's scratch directory of the job, inside its work dir (removed with it, or by its own lease). */
export function scratchDirOf(workDir: string): string {
  return path.join(workDir, 'scratch');
}

/** `storage.persistent.logs`: where every worker's log is copied at the job's end. */
export function persistentLogsDirOf(persistentDir: string, jobId: string): string {
  return path.join(persistentDir, 'logs', jobId);
}

/**
 * The job's storage volumes a cluster mounted itself (Kubernetes: emptyDirs, an NFS export, a PVC), named by
 * the worker's environment (TWISTER2_*_MOUNT); a directory the cluster did not mount is undefined, and the
 * worker makes it on its host as above.
 */
export interface MountedStorage {
  memory?: string | undefined;
  scratch?: string | undefined;
  persistent?: string | undefined;
}

export function mountedStorageOf(env: NodeJS.ProcessEnv): MountedStorage {
  return { memory: env[ENV.memoryMount] || undefined, scratch: env[ENV.scratchMount] || undefined, persistent: env[ENV.persistentMount] || undefined };
}

/** The lock file a lease of `dir` uses (worker/work-dir-lease.ts), which clean-up removes with the directory. */
export function leaseLockOf(dir: string): string {
  return `${dir}.lease-lock`;
}

/** The fixes a size that does not fit is told of. */
export const STORAGE_FIX = {
  memory: 'ask for less in storage.memory.size, or free memory there (other files in /dev/shm count)',
  scratch: 'ask for less in storage.scratch.size, or free disk there',
} as const;

/**
 * Why `size` bytes (spec field `field`) do not fit in the file system holding `dir` (or its closest existing
 * parent) on `host`; undefined when they do. Sizes are checked, not enforced: /dev/shm and a plain
 * directory hold no per-directory quota.
 */
export function sizeProblem(field: string, size: number, dir: string, host: string, fix: string): string | undefined {
  const at = nearestExisting(dir);
  let free: number;
  try {
    const s = statfsSync(at);
    free = s.bavail * s.bsize;
  } catch (err) {
    return `${field} ${formatBytes(size)} cannot be checked on host ${host}: ${dir} is not there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (size <= free) return undefined;
  return `${field} is ${formatBytes(size)}, but ${at} on host ${host} has ${formatBytes(free)} free; ${fix}`;
}

/** `dir` or the closest of its parents that exists: where its file system's free space is read. */
export function nearestExisting(dir: string): string {
  let d = dir;
  for (;;) {
    try {
      statfsSync(d);
      return d;
    } catch {
      const up = path.dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

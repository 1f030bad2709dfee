import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { WorkerEnvironmentError } from '../errors.js';
import { memoryDirOf, MEMORY_ROOT, scratchDirOf, sizeProblem, STORAGE_FIX } from '../job/storage.js';
import type { WorkerStorage } from '../job/worker-environment.js';
import type { JobSpec } from '../spec/schema.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';

/**
 * A worker's storage (spec `storage`, README "Storage"), made on its host before its program runs:
 * - scratch: `<work dir>/scratch`, held with a lease like the work dir, so the last worker on the host to
 *   end removes it (on clusters whose work dir is itself a scratch lease, it goes with that too);
 * - memory: `/dev/shm/twister2-<job>`, held the same way; the first worker on the host checks that
 *   `storage.memory.size` fits in what /dev/shm has free (it cannot hold a per-directory quota);
 * - persistent: `storage.persistent.dir`, or on Nomad the path of `storage.persistent.hostVolume` on the
 *   worker's client node (`hostVolumePath`, which the launcher found), created if missing, never removed.
 * A size that does not fit, or a directory that cannot be made, throws a message naming the host, the
 * field, the size and what is free: the worker's set-up fails with it before the program starts.
 */
export function prepareStorage(jobId: string, workDir: string, spec: Pick<JobSpec, 'storage'>, hostVolumePath?: string): WorkerStorage {
  const host = os.hostname();
  const storage = spec.storage;
  const scratch = scratchDirOf(workDir);
  releaseAtExit(
    WorkDirLease.take(scratch, {
      whenCreated: () => storage?.scratch?.size !== undefined && checkFree('storage.scratch.size', storage.scratch.size, scratch, host, STORAGE_FIX.scratch),
    }),
  );
  let memory: string | undefined;
  if (storage?.memory) {
    const size = storage.memory.size;
    memory = memoryDirOf(jobId);
    releaseAtExit(WorkDirLease.take(memory, { whenCreated: () => checkFree('storage.memory.size', size, MEMORY_ROOT, host, STORAGE_FIX.memory) }));
  }
  let persistent: string | undefined;
  if (storage?.persistent) {
    const { dir, hostVolume } = storage.persistent;
    persistent = dir ?? hostVolumePath;
    if (persistent === undefined) throw new WorkerEnvironmentError(`storage.persistent.hostVolume "${hostVolume}" has no path on host ${host}: only the nomad launcher gives it`);
    const field = dir !== undefined ? `storage.persistent.dir "${dir}"` : `storage.persistent.hostVolume "${hostVolume}" (${persistent} on this node)`;
    try {
      mkdirSync(persistent, { recursive: true });
    } catch (err) {
      throw new WorkerEnvironmentError(
        `${field} cannot be created on host ${host}: ${(err as Error).message}; give a directory of a file system every worker's host mounts, which the job's user may write`,
      );
    }
  }
  return { memory, scratch, persistent };
}

function checkFree(field: string, size: number, dir: string, host: string, fix: string): void {
  const problem = sizeProblem(field, size, dir, host, fix);
  if (problem) throw new WorkerEnvironmentError(problem);
}

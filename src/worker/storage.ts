import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { WorkerEnvironmentError } from '../errors.js';
import { memoryDirOf, MEMORY_ROOT, scratchDirOf, sizeProblem, STORAGE_FIX, type MountedStorage } from '../job/storage.js';
import { ENV, type WorkerStorage } from '../job/worker-environment.js';
import type { JobSpec } from '../spec/schema.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';

/**
 * A worker's storage (spec `storage`, README "Storage"), made on its host before its program runs:
 * - scratch: `<work dir>/scratch`, held with a lease like the work dir, so the last worker on the host to
 *   end removes it (on clusters whose work dir is itself a scratch lease, it goes with that too);
 * - memory: `/dev/shm/twister2-<job>`, held the same way; the first worker on the host checks that
 *   `storage.memory.size` fits in what /dev/shm has free (it cannot hold a per-directory quota);
 * - persistent: `storage.persistent.dir`, created if missing, never removed.
 * A directory the cluster mounted itself or found on the host (`mounted`: Kubernetes' emptyDirs, NFS export
 * or PVC, whose sizes the kubelet enforces; on Nomad the path of `storage.persistent.hostVolume` on the
 * worker's client node) is used as it is: no lease, no size check; the cluster removes (or keeps) it.
 * A size that does not fit, or a directory that cannot be made, throws a message naming the host, the
 * field, the size and what is free: the worker's set-up fails with it before the program starts.
 */
export function prepareStorage(jobId: string, workDir: string, spec: Pick<JobSpec, 'storage'>, mounted: MountedStorage = {}): WorkerStorage {
  const host = os.hostname();
  const storage = spec.storage;
  let scratch = mounted.scratch;
  if (scratch === undefined) {
    const dir = (scratch = scratchDirOf(workDir));
    releaseAtExit(
      WorkDirLease.take(dir, {
        whenCreated: () => storage?.scratch?.size !== undefined && checkFree('storage.scratch.size', storage.scratch.size, dir, host, STORAGE_FIX.scratch),
      }),
    );
  }
  let memory: string | undefined;
  if (storage?.memory) {
    const size = storage.memory.size;
    memory = mounted.memory;
    if (memory === undefined) {
      memory = memoryDirOf(jobId);
      releaseAtExit(WorkDirLease.take(memory, { whenCreated: () => checkFree('storage.memory.size', size, MEMORY_ROOT, host, STORAGE_FIX.memory) }));
    }
  }
  let persistent: string | undefined;
  if (storage?.persistent) {
    const { dir, hostVolume } = storage.persistent;
    persistent = dir ?? mounted.persistent;
    if (persistent === undefined) {
      throw new WorkerEnvironmentError(
        hostVolume !== undefined
          ? `storage.persistent.hostVolume "${hostVolume}" has no path on host ${host}: only the nomad launcher gives it`
          : `storage.persistent is a volume the cluster mounts, but ${ENV.persistentMount} does not say where: the launcher did not mount it`,
      );
    }
    const field = dir !== undefined ? `storage.persistent.dir "${dir}"` : hostVolume !== undefined ? `storage.persistent.hostVolume "${hostVolume}" (${persistent} on this node)` : undefined;
    try {
      mkdirSync(persistent, { recursive: true });
    } catch (err) {
      throw new WorkerEnvironmentError(
        field !== undefined
          ? `${field} cannot be created on host ${host}: ${(err as Error).message}; give a directory of a file system every worker's host mounts, which the job's user may write`
          : `the volume of storage.persistent mounted at ${persistent} on host ${host} cannot be written: ${(err as Error).message}; check the NFS export's or the claim's permissions`,
      );
    }
  }
  return { memory, scratch, persistent };
}

function checkFree(field: string, size: number, dir: string, host: string, fix: string): void {
  const problem = sizeProblem(field, size, dir, host, fix);
  if (problem) throw new WorkerEnvironmentError(problem);
}

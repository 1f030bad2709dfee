import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { ENV } from '../../../job/worker-environment.js';
import { STORAGE_MOUNTS } from '../storage-mounts.js';
import { bytesQuantity, type K8sJob } from './common.js';

/**
 * Spec `storage` as pod volumes (README "Storage"), with the meaning it has on every cluster:
 * - memory: an emptyDir of medium Memory (tmpfs), `size` its sizeLimit, shared by the pod's worker containers;
 * - scratch: a disk emptyDir, `size` its sizeLimit when given;
 * - persistent: the NFS export, or the job's ReadWriteMany claim (pvc.ts), kept after the job.
 * The kubelet enforces the sizeLimits and removes the emptyDirs with the pod. Each is mounted at a fixed
 * path (STORAGE_MOUNTS), which the worker runtime reads from TWISTER2_*_MOUNT and hands out as TWISTER2_*_DIR and ctx.storage.
 */

const VOLUME = { memory: 'storage-memory', scratch: 'storage-scratch', persistent: 'storage-persistent' } as const;

export interface StorageVolumes {
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
  /** TWISTER2_*_MOUNT for each volume mounted. */
  env: V1EnvVar[];
}

/** The volumes, mounts and variables of the worker pods for spec `storage`; none without it. */
export function storageVolumes(job: K8sJob): StorageVolumes {
  const s = job.spec.storage;
  const out: StorageVolumes = { volumes: [], mounts: [], env: [] };
  const add = (kind: keyof typeof VOLUME, source: Omit<V1Volume, 'name'>, variable: string) => {
    out.volumes.push({ name: VOLUME[kind], ...source });
    out.mounts.push({ name: VOLUME[kind], mountPath: STORAGE_MOUNTS[kind] });
    out.env.push({ name: variable, value: STORAGE_MOUNTS[kind] });
  };
  if (s?.memory) add('memory', { emptyDir: { medium: 'Memory', sizeLimit: bytesQuantity(s.memory.size) } }, ENV.memoryMount);
  if (s?.scratch) add('scratch', { emptyDir: s.scratch.size !== undefined ? { sizeLimit: bytesQuantity(s.scratch.size) } : {} }, ENV.scratchMount);
  const volume = persistentVolumeSource(job);
  if (volume) add('persistent', volume, ENV.persistentMount);
  return out;
}

/**
 * storage.persistent in the job master pod, for `logs: true`: the job master copies the workers' logs into
 * it at the job's end. Undefined when there is nothing to copy.
 */
export function jobMasterPersistentVolume(job: K8sJob): StorageVolumes | undefined {
  const volume = job.spec.storage?.persistent?.logs ? persistentVolumeSource(job) : undefined;
  if (!volume) return undefined;
  return {
    volumes: [{ name: VOLUME.persistent, ...volume }],
    mounts: [{ name: VOLUME.persistent, mountPath: STORAGE_MOUNTS.persistent }],
    env: [{ name: ENV.persistentMount, value: STORAGE_MOUNTS.persistent }],
  };
}

function persistentVolumeSource(job: K8sJob): Omit<V1Volume, 'name'> | undefined {
  const p = job.spec.storage?.persistent;
  if (p?.nfs) return { nfs: { server: p.nfs.server, path: p.nfs.path } };
  if (p?.pvc) return { persistentVolumeClaim: { claimName: job.names.pvc } };
  return undefined;
}

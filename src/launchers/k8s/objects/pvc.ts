import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { bytesQuantity, ownedMeta, type K8sJob } from './common.js';

/**
 * The ReadWriteMany claim of storage.persistent.pvc (or kubernetes.volumes.persistent.pvc), shared by every
 * worker pod. Owned by the root (so deleted with the job) unless keep: true, which leaves the claim and its data after the job; it still
 * carries the job's labels, so `-l twister2.io/job=<id>` finds it.
 */
export function persistentVolumeClaim(job: K8sJob): V1PersistentVolumeClaim | undefined {
  const p = claimOf(job);
  if (!p) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: ownedMeta(job, job.names.pvc, { owned: !p.keep }),
    spec: {
      accessModes: ['ReadWriteMany'],
      storageClassName: p.storageClass,
      resources: { requests: { storage: bytesQuantity(p.size) } },
    },
  };
}

function claimOf(job: K8sJob): { storageClass: string; size: number; keep: boolean } | undefined {
  const storage = job.spec.storage?.persistent?.pvc;
  if (storage) return storage;
  const volumes = job.k8s.volumes.persistent;
  return volumes?.pvc ? { ...volumes.pvc, keep: volumes.keep } : undefined;
}

import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { bytesQuantity, ownedMeta, type K8sJob } from './common.js';

/**
 * The ReadWriteMany claim of volumes.persistent.pvc, shared by every worker pod. Owned by the root (so
 * deleted with the job) unless keep: true, which leaves the claim and its data after the job; it still
 * carries the job's labels, so `-l twister2.io/job=<id>` finds it.
 */
export function persistentVolumeClaim(job: K8sJob): V1PersistentVolumeClaim | undefined {
  const p = job.k8s.volumes.persistent;
  if (!p?.pvc) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: ownedMeta(job, job.names.pvc, { owned: !p.keep }),
    spec: {
      accessModes: ['ReadWriteMany'],
      storageClassName: p.pvc.storageClass,
      resources: { requests: { storage: bytesQuantity(p.pvc.size) } },
    },
  };
}

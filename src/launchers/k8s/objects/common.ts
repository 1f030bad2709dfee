import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import type { KubernetesSpec } from '../section.js';
import { kubernetesSection } from '../section.js';
import type { JobSpec } from '../../../spec/schema.js';
import { jobLabels, jobNames, roleLabels, type JobNames, type Role } from '../names.js';

/**
 * What every builder of a job's objects needs. The root ConfigMap is created first; every other object
 * carries `owner` (a reference to it), so deleting the root deletes the whole job through Kubernetes'
 * garbage collector.
 */
export interface K8sJob {
  jobId: string;
  namespace: string;
  spec: JobSpec;
  k8s: KubernetesSpec;
  names: JobNames;
  /** rootOwnerReference(the created root ConfigMap). */
  owner: V1OwnerReference;
}

/** A K8sJob from the parsed spec (throws SpecError for kubernetes problems that need the whole spec). */
export function k8sJob(jobId: string, spec: JobSpec, owner: V1OwnerReference): K8sJob {
  const k8s = kubernetesSection(spec);
  return { jobId, namespace: k8s.namespace, spec, k8s, names: jobNames(jobId), owner };
}

/** Metadata of an object owned by the root: name, namespace, the job's labels (and role), the owner reference. */
export function ownedMeta(job: K8sJob, name: string, opts: { role?: Role; group?: number; owned?: boolean } = {}): V1ObjectMeta {
  return {
    name,
    namespace: job.namespace,
    labels: opts.role ? roleLabels(job.jobId, opts.role, opts.group) : jobLabels(job.jobId),
    ...(opts.owned === false ? {} : { ownerReferences: [{ ...job.owner }] }),
  };
}

/** CPUs as a Kubernetes quantity: 1 → "1", 0.5 → "500m", 1.25 → "1250m". */
export function cpuQuantity(cpu: number): string {
  const milli = Math.round(cpu * 1000);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/** Bytes as a Kubernetes quantity, in the largest binary unit that divides them: 536870912 → "512Mi". */
export function bytesQuantity(bytes: number): string {
  const n = Math.floor(bytes);
  for (const [unit, size] of [['Ti', 2 ** 40], ['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

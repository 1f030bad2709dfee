import type {
  V1ConfigMap,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { K8sJob } from './common.js';
import { jobSecret, type JobSecretInput } from './job-secret.js';
import { jobMasterJournal, jobMasterStatefulSet, type JobMasterInput } from './jobmaster-statefulset.js';
import { defaultGroup, type WorkerGroup, type WorkerPodInput } from './pod-spec.js';
import { persistentVolumeClaim } from './pvc.js';
import { jobMasterRole, jobMasterRoleBinding, jobMasterServiceAccount, workerAccountObjects } from './rbac.js';
import { jobMasterService, nodePortService, workerHeadlessService } from './services.js';
import { workerStatefulSet } from './worker-statefulset.js';

export * from './common.js';
export * from './job-secret.js';
export * from './jobmaster-statefulset.js';
export * from './openmpi.js';
export * from './pod-spec.js';
export * from './pods.js';
export * from './pvc.js';
export * from './rbac.js';
export * from './root-configmap.js';
export * from './services.js';
export * from './storage-volumes.js';
export * from './worker-statefulset.js';

/** Every kind of object a job creates. */
export type KubeObject = V1ConfigMap | V1Secret | V1Service | V1ServiceAccount | V1Role | V1RoleBinding | V1StatefulSet | V1Pod | V1PersistentVolumeClaim;

export interface JobObjectsInput {
  secret: JobSecretInput;
  /** The worker pods; `group` is ignored here, see `groups`. */
  workers: Omit<WorkerPodInput, 'group'>;
  /** Default: one group of all spec.workers. */
  groups?: WorkerGroup[];
  /** The in-cluster job master (ServiceAccount, Role, RoleBinding, Service, journal ConfigMap, StatefulSet); leave out when it runs in the client. */
  jobMaster?: JobMasterInput;
}

/**
 * Everything after the root, in creation order: what others refer to comes first (claim, Secret,
 * RBAC, Services before their StatefulSets). All owned by the root except a kept claim.
 */
export function jobObjects(job: K8sJob, input: JobObjectsInput): KubeObject[] {
  const groups = input.groups ?? [defaultGroup(job)];
  const out: KubeObject[] = [];
  const pvc = persistentVolumeClaim(job);
  if (pvc) out.push(pvc);
  // The job secret goes into the Secret only for a job master pod, whose container alone references it.
  out.push(jobSecret(job, { ...input.secret, withJobSecret: Boolean(input.jobMaster) }));
  if (input.jobMaster) {
    out.push(jobMasterServiceAccount(job), jobMasterRole(job, groups.map((g) => job.names.workers(g.index))), jobMasterRoleBinding(job), jobMasterService(job), jobMasterJournal(job));
  }
  out.push(...workerAccountObjects(job));
  for (const g of groups) {
    out.push(workerHeadlessService(job, g.index));
    const np = nodePortService(job, g.index);
    if (np) out.push(np);
  }
  if (input.jobMaster) out.push(jobMasterStatefulSet(job, input.jobMaster));
  for (const g of groups) out.push(workerStatefulSet(job, { ...input.workers, group: g }));
  return out;
}

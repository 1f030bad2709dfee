import type { V1PolicyRule, V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { ownedMeta, type K8sJob } from './common.js';

/** The in-cluster job master's identity. */
export function jobMasterServiceAccount(job: K8sJob): V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: ownedMeta(job, job.names.serviceAccount, { role: 'jobmaster' }),
  };
}

/**
 * Exactly what the in-cluster job master does, in its own namespace only:
 * - pods: get, list, watch — follow the workers (exits, restarts, placement);
 * - pods/log: get — the workers' output for the client;
 * - pods/exec: create and get — copy the package into pods (direct copy); exec over WebSocket is a GET that
 *   Kubernetes ≥ 1.30 also checks for create;
 * - its worker StatefulSets (by name): get, patch — scaling; and their scale subresource;
 * - the root ConfigMap (by name): get, delete — reading the job and ending it (the garbage collector does the rest);
 * - the journal ConfigMap (by name): get, update, patch — the job master's state, which outlives its pod;
 * - events: create — how the job ended, kept after the job (job-end-event.ts); a create cannot be limited by name.
 */
export function jobMasterRules(job: K8sJob, workerStatefulSets: string[] = [job.names.workers(0)]): V1PolicyRule[] {
  return [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
    { apiGroups: [''], resources: ['pods/exec'], verbs: ['create', 'get'] },
    { apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/scale'], resourceNames: [...workerStatefulSets], verbs: ['get', 'patch'] },
    { apiGroups: [''], resources: ['configmaps'], resourceNames: [job.names.root], verbs: ['get', 'delete'] },
    { apiGroups: [''], resources: ['configmaps'], resourceNames: [job.names.journal], verbs: ['get', 'update', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ];
}

export function jobMasterRole(job: K8sJob, workerStatefulSets?: string[]): V1Role {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: ownedMeta(job, job.names.role, { role: 'jobmaster' }),
    rules: jobMasterRules(job, workerStatefulSets),
  };
}

export function jobMasterRoleBinding(job: K8sJob): V1RoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: ownedMeta(job, job.names.roleBinding, { role: 'jobmaster' }),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: job.names.role },
    subjects: [{ kind: 'ServiceAccount', name: job.names.serviceAccount, namespace: job.namespace }],
  };
}

/**
 * The workers' identity can delete the job's root ConfigMap, and nothing else but, for OpenMPI, list pods.
 * A worker whose job master is gone (the client was killed) ends the job that way, and the garbage
 * collector removes the rest; without it the StatefulSet would restart the workers forever.
 */
export function workerAccountObjects(job: K8sJob): [V1ServiceAccount, V1Role, V1RoleBinding] {
  const name = job.names.workerAccount;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: ownedMeta(job, name, { role: 'worker' }) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: ownedMeta(job, name, { role: 'worker' }),
      rules: [
        { apiGroups: [''], resources: ['configmaps'], resourceNames: [job.names.root], verbs: ['delete'] },
        // OpenMPI: pod 0 writes the hostfile from the pods' IPs (a list cannot be limited to names).
        ...(job.k8s.openmpi ? [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] : []),
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: ownedMeta(job, name, { role: 'worker' }),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: job.namespace }],
    },
  ];
}

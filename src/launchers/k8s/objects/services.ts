import type { V1Service } from '@kubernetes/client-node';
import { roleLabels } from '../names.js';
import { ownedMeta, type K8sJob } from './common.js';

/** The URL workers use to reach an in-cluster job master (through its Service). */
export function jobMasterServiceUrl(job: K8sJob): string {
  return `http://${job.names.jobMasterService}.${job.namespace}.svc:${job.k8s.jobMasterPort}`;
}

/** The job master's ClusterIP Service; also the serviceName of its StatefulSet. */
export function jobMasterService(job: K8sJob): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(job, job.names.jobMasterService, { role: 'jobmaster' }),
    spec: {
      type: 'ClusterIP',
      selector: roleLabels(job.jobId, 'jobmaster'),
      ports: [{ name: 'http', port: job.k8s.jobMasterPort, targetPort: job.k8s.jobMasterPort, protocol: 'TCP' }],
    },
  };
}

/**
 * The headless Service of a worker group's StatefulSet: it gives every pod a stable DNS name,
 * `<pod>.<service>.<namespace>.svc`, published once the pod is Ready (OpenMPI's first pod waits for them).
 */
export function workerHeadlessService(job: K8sJob, group = 0): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(job, job.names.workers(group), { role: 'worker', group }),
    spec: {
      clusterIP: 'None',
      selector: roleLabels(job.jobId, 'worker', group),
      ...(job.k8s.openmpi ? { ports: [{ name: 'ssh', port: 22, targetPort: 22, protocol: 'TCP' }] } : {}),
    },
  };
}

/** With kubernetes.nodePort: outside traffic on every node's nodePort reaches containerPort of the group's pods. */
export function nodePortService(job: K8sJob, group = 0): V1Service | undefined {
  const np = job.k8s.nodePort;
  if (!np) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(job, job.names.nodePort(group), { role: 'worker', group }),
    spec: {
      type: 'NodePort',
      selector: roleLabels(job.jobId, 'worker', group),
      ports: [{ name: 'worker', port: np.containerPort, targetPort: np.containerPort, protocol: 'TCP', ...(np.nodePort ? { nodePort: np.nodePort } : {}) }],
    },
  };
}

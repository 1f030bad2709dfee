import type { V1StatefulSet } from '@kubernetes/client-node';
import { roleLabels } from '../names.js';
import { ownedMeta, type K8sJob } from './common.js';
import { defaultGroup, workerPodTemplate, type WorkerPodInput } from './pod-spec.js';

/** Pods of a group: its workers / workersPerPod (the spec checks that it divides). */
export function workerReplicas(job: K8sJob, workers: number): number {
  return Math.ceil(workers / job.k8s.workersPerPod);
}

/**
 * A worker group's StatefulSet: replicas = workers / workersPerPod pods, started and stopped all at once
 * (Parallel), each with a stable ordinal, hence stable worker IDs across restarts and rescheduling. Its
 * headless Service (workerHeadlessService) has the same name. Scaling changes replicas (in multiples of
 * workersPerPod); OnDelete keeps a changed template from rolling running workers.
 */
export function workerStatefulSet(job: K8sJob, input: WorkerPodInput): V1StatefulSet {
  const group = input.group ?? defaultGroup(job);
  const name = job.names.workers(group.index);
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: ownedMeta(job, name, { role: 'worker', group: group.index }),
    spec: {
      replicas: workerReplicas(job, group.workers),
      serviceName: name,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      revisionHistoryLimit: 1,
      selector: { matchLabels: roleLabels(job.jobId, 'worker', group.index) },
      template: workerPodTemplate(job, { ...input, group }),
    },
  };
}

import type { V1Pod } from '@kubernetes/client-node';
import { roleLabels } from '../names.js';
import { ownedMeta, type K8sJob } from './common.js';
import { defaultGroup, workerPodSpec, type WorkerPodInput } from './pod-spec.js';

export const LABEL_ORDINAL = 'twister2.io/ordinal';

/**
 * "Plain pods" mode: the pod a StatefulSet would make, as a Pod of its own named `<statefulset>-<ordinal>`
 * (so TWISTER2_POD_NAME gives the same worker IDs) with the same DNS name through the headless Service
 * (hostname + subdomain). Nothing restarts it on another node: the launcher does. restartPolicy defaults
 * to Never (the kubelet reports the exit; the launcher decides).
 */
export function workerPod(job: K8sJob, input: WorkerPodInput, ordinal: number, restartPolicy: 'Always' | 'Never' | 'OnFailure' = 'Never'): V1Pod {
  const group = input.group ?? defaultGroup(job);
  const name = job.names.workerPod(ordinal, group.index);
  const meta = ownedMeta(job, name, { role: 'worker', group: group.index });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...meta, labels: { ...roleLabels(job.jobId, 'worker', group.index), [LABEL_ORDINAL]: String(ordinal) } },
    spec: { ...workerPodSpec(job, { ...input, group }, restartPolicy), hostname: name, subdomain: job.names.workers(group.index) },
  };
}

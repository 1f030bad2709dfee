import type { CoreV1Event } from '@kubernetes/client-node';
import { JobStatusSchema, type JobStatus } from '../../protocol/messages.js';
import { kubeCall, type KubeApi } from './kube-api.js';
import { jobLabels, jobSelector, jobNames } from './names.js';

/**
 * How a job whose job master ran in a pod ended, kept after the job: the pod and every object of the job go
 * with it, so the job master records a Kubernetes Event on the job's root before deleting the root, as
 * Kubernetes' own controllers report what they did. The API server expires events itself (`--event-ttl`,
 * one hour by default), so nothing is left for good. `kubectl get events` shows it; `twister2 status` reads
 * the status from its annotation.
 */
export const JOB_ENDED_REASON = 'Twister2JobEnded';
const STATUS_ANNOTATION = 'twister2.io/status';
/** Annotations are limited to 256 KiB in all; a status with more workers than that holds keeps none of them. */
const MAX_STATUS_BYTES = 200_000;

export async function recordJobEnd(api: KubeApi, status: JobStatus, reportingInstance: string): Promise<void> {
  const root = jobNames(status.jobId).root;
  const full = JSON.stringify(status);
  const kept = Buffer.byteLength(full) <= MAX_STATUS_BYTES ? full : JSON.stringify({ ...status, workers: [] });
  const now = new Date();
  const event: CoreV1Event = {
    metadata: {
      name: `${root}.${now.getTime().toString(16)}`,
      namespace: api.namespace,
      labels: jobLabels(status.jobId),
      annotations: { [STATUS_ANNOTATION]: kept },
    },
    involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', name: root, namespace: api.namespace },
    reason: JOB_ENDED_REASON,
    type: status.state === 'SUCCEEDED' ? 'Normal' : 'Warning',
    message: `job ${status.jobId} ended ${status.state}${status.message ? `: ${status.message}` : ''}`.slice(0, 1024),
    source: { component: 'twister2-jobmaster' },
    reportingComponent: 'twister2.io/jobmaster',
    reportingInstance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
  await kubeCall(`record the end of job ${status.jobId} as an Event`, () => api.core.createNamespacedEvent({ namespace: api.namespace, body: event }));
}

/** The status the job master recorded when the job ended, while the API server keeps the event. */
export async function findJobEnd(api: KubeApi, jobId: string): Promise<JobStatus | undefined> {
  const events = await kubeCall(`list the events of job ${jobId}`, () => api.core.listNamespacedEvent({ namespace: api.namespace, labelSelector: jobSelector(jobId) }));
  for (const e of events.items) {
    if (e.reason !== JOB_ENDED_REASON) continue;
    try {
      const parsed = JobStatusSchema.safeParse(JSON.parse(e.metadata?.annotations?.[STATUS_ANNOTATION] ?? ''));
      if (parsed.success && parsed.data.jobId === jobId) return parsed.data;
    } catch {
      // Not one of ours after all.
    }
  }
  return undefined;
}

import type { V1ConfigMap, V1ResourceRequirements, V1StatefulSet } from '@kubernetes/client-node';
import { ENV } from '../../../job/worker-environment.js';
import { roleLabels } from '../names.js';
import { ownedMeta, type K8sJob } from './common.js';
import { SECRET_KEYS } from './job-secret.js';
import { affinity, commonPodSpec, POD_ENV, SERVICE_ACCOUNT_DIR } from './pod-spec.js';
import { ROOT_KEYS } from './root-configmap.js';
import { jobMasterPersistentVolume } from './storage-volumes.js';

export const DEFAULT_JOB_MASTER_COMMAND = ['node', '/opt/twister2/bin/twister2.js', 'jobmaster', '--in-cluster'];
/** Where the job master finds the root ConfigMap's keys as files (spec.json, job-id). */
export const JOB_MOUNT = '/etc/twister2/job';
/** The job master's own directory (logs, the package copied in by the client); survives container restarts. */
export const JOB_MASTER_WORK_DIR = '/var/twister2/jobmaster';
export const JOB_MASTER_CONTAINER = 'jobmaster';

export interface JobMasterInput {
  /** Default DEFAULT_JOB_MASTER_COMMAND. */
  command?: string[];
  /** More plain environment. */
  env?: Record<string, string>;
  /** Default: requests 250m CPU and 256Mi, limit 512Mi. */
  resources?: V1ResourceRequirements;
}

/**
 * The in-cluster job master's journal (configmap-journal.ts), empty until its first job master claims it.
 * Owned by the root like the rest, so ending the job still deletes everything.
 */
export function jobMasterJournal(job: K8sJob): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: ownedMeta(job, job.names.journal, { role: 'jobmaster' }), data: {} };
}

/**
 * The in-cluster job master: one pod, restarted in place by Kubernetes, running as the job's
 * ServiceAccount (jobMasterRole), listening on its pod IP. It reads the spec from the root ConfigMap (its spec key and
 * /etc/twister2/job/spec.json), the job's admin secret, package reference and uploader credentials from the Secret,
 * and listens on kubernetes.jobMasterPort behind jobMasterService.
 */
export function jobMasterStatefulSet(job: K8sJob, input: JobMasterInput = {}): V1StatefulSet {
  const name = job.names.jobMaster;
  const labels = roleLabels(job.jobId, 'jobmaster');
  const port = job.k8s.jobMasterPort;
  const aff = affinity(job, { workers: false });
  const secret = (envName: string, key: string, optional = false) => ({ name: envName, valueFrom: { secretKeyRef: { name: job.names.secret, key, ...(optional ? { optional: true } : {}) } } });
  const field = (envName: string, fieldPath: string) => ({ name: envName, valueFrom: { fieldRef: { fieldPath } } });
  // storage.persistent.logs: the job master copies the workers' logs into the volume at the job's end.
  const persistent = jobMasterPersistentVolume(job);
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: ownedMeta(job, name, { role: 'jobmaster' }),
    spec: {
      replicas: 1,
      serviceName: job.names.jobMasterService,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      revisionHistoryLimit: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: job.names.serviceAccount,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: JOB_MASTER_CONTAINER,
              image: job.k8s.image,
              imagePullPolicy: job.k8s.imagePullPolicy,
              command: [...(input.command ?? DEFAULT_JOB_MASTER_COMMAND)],
              env: [
                { name: ENV.jobId, value: job.jobId },
                { name: ENV.cluster, value: 'kubernetes' },
                { name: ENV.jobMasterPort, value: String(port) },
                { name: ENV.jobSpecFile, value: `${JOB_MOUNT}/${ROOT_KEYS.spec}` },
                { name: ENV.workDir, value: JOB_MASTER_WORK_DIR },
                { name: ENV.k8sRoot, value: job.names.root },
                { name: ENV.k8sAccountDir, value: SERVICE_ACCOUNT_DIR },
                ...Object.entries(input.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
                { name: ENV.jobSpec, valueFrom: { configMapKeyRef: { name: job.names.root, key: ROOT_KEYS.spec } } },
                secret(ENV.jobSecret, SECRET_KEYS.jobSecret),
                secret(ENV.packageRef, SECRET_KEYS.packageRef),
                secret(ENV.uploaderSecrets, SECRET_KEYS.uploaderSecrets, true),
                field(POD_ENV.podName, 'metadata.name'),
                field(POD_ENV.namespace, 'metadata.namespace'),
                field(POD_ENV.podIp, 'status.podIP'),
                field(POD_ENV.node, 'spec.nodeName'),
                ...(persistent?.env ?? []),
              ],
              ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
              readinessProbe: { tcpSocket: { port }, periodSeconds: 2 },
              resources: input.resources ?? { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
              volumeMounts: [
                { name: 'job', mountPath: JOB_MOUNT, readOnly: true },
                { name: 'work', mountPath: JOB_MASTER_WORK_DIR },
                ...(persistent?.mounts ?? []),
              ],
            },
          ],
          volumes: [
            { name: 'job', configMap: { name: job.names.root } },
            { name: 'work', emptyDir: {} },
            ...(persistent?.volumes ?? []),
          ],
          ...(aff ? { affinity: aff } : {}),
          ...commonPodSpec(job),
        },
      },
    },
  };
}

import type {
  V1Affinity,
  V1Container,
  V1EnvVar,
  V1NodeSelectorRequirement,
  V1PodSpec,
  V1PodTemplateSpec,
  V1ResourceRequirements,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { ENV } from '../../../job/worker-environment.js';
import { DISK_MOUNT, SHARED_MOUNT } from '../section.js';
import { LABEL_JOB, LABEL_ROLE, roleLabels } from '../names.js';
import { bytesQuantity, cpuQuantity, type K8sJob } from './common.js';
import { SECRET_KEYS } from './job-secret.js';
import { openmpiScript } from './openmpi.js';
import { storageVolumes } from './storage-volumes.js';

export { DISK_MOUNT, SHARED_MOUNT };

/** The worker runtime in the worker image (docker/worker.Dockerfile). */
export const DEFAULT_WORKER_COMMAND = ['node', '/opt/twister2/dist/worker/main.js'];
/** Where OpenMPI pods find the job's SSH key pair (copied to /root/.ssh at start). */
export const SSH_MOUNT = '/etc/twister2/ssh';
export const SSH_KEY_FILES = { privateKey: 'id_ed25519', publicKey: 'id_ed25519.pub', authorizedKeys: 'authorized_keys' } as const;
export const HOSTNAME_TOPOLOGY = 'kubernetes.io/hostname';
/** Where Kubernetes mounts a pod's service account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Variables the builder sets from the pod itself; the worker runtime derives its ID from them. */
export const POD_ENV = {
  podName: ENV.podName,
  podIp: ENV.podIp,
  node: ENV.node,
  namespace: ENV.namespace,
  containerIndex: ENV.containerIndex,
  workersPerPod: ENV.workersPerPod,
  workerIdOffset: ENV.workerIdOffset,
} as const;

/** A worker group: `workers` workers with IDs offset..offset+workers-1, one StatefulSet. */
export interface WorkerGroup {
  index: number;
  workers: number;
  offset: number;
}

export interface WorkerPodInput {
  /**
   * The worker runtime's environment as the launcher computes it (workerEnvironment with the `cluster`
   * secret transport). The package reference is dropped from it: pods read it and the worker token from the job Secret.
   */
  env: Record<string, string>;
  /** The worker runtime inside the image; default DEFAULT_WORKER_COMMAND. */
  workerCommand?: string[];
  /** Default: group 0, all spec.workers, offset 0. */
  group?: WorkerGroup;
}

export function defaultGroup(job: K8sJob): WorkerGroup {
  return { index: 0, workers: job.spec.workers, offset: 0 };
}

/** Env values that must never be written into an object (they come from the Secret). */
const SECRET_ENV: string[] = [ENV.workerToken, ENV.packageRef];

function secretEnv(job: K8sJob, name: string, key: string, optional = false): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: job.names.secret, key, ...(optional ? { optional: true } : {}) } } };
}

function fieldEnv(name: string, fieldPath: string): V1EnvVar {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/** Names and values every container of a pod gets: the job's plain values, secrets by reference, the pod's own facts. */
export function podEnv(job: K8sJob, env: Record<string, string>): V1EnvVar[] {
  const plain = Object.entries({ ...env, [ENV.workDir]: SHARED_MOUNT })
    .filter(([k]) => !SECRET_ENV.includes(k))
    .map(([name, value]) => ({ name, value }));
  return [
    ...plain,
    secretEnv(job, ENV.workerToken, SECRET_KEYS.workerToken),
    secretEnv(job, ENV.packageRef, SECRET_KEYS.packageRef),
    fieldEnv(POD_ENV.podName, 'metadata.name'),
    fieldEnv(POD_ENV.namespace, 'metadata.namespace'),
    fieldEnv(POD_ENV.podIp, 'status.podIP'),
    fieldEnv(POD_ENV.node, 'spec.nodeName'),
    { name: ENV.k8sRoot, value: job.names.root },
    { name: ENV.k8sAccountDir, value: SERVICE_ACCOUNT_DIR },
    ...storageVolumes(job).env,
  ];
}

/**
 * Per-container requests and limits for `workers` workers (1, or a pod's workers in one OpenMPI
 * container). Memory is always limited; CPU is limited only with cpuPinning, which makes requests equal
 * limits with whole CPUs (Guaranteed QoS: the static CPU manager pins them). GPUs are extended resources
 * (requests = limits). resources.disk becomes ephemeral-storage.
 */
export function workerResources(job: K8sJob, workers = 1): V1ResourceRequirements {
  const r = job.spec.resources;
  const cpu = cpuQuantity(r.cpu * workers);
  const memory = bytesQuantity(r.memory * workers);
  const requests: Record<string, string> = { cpu, memory };
  const limits: Record<string, string> = { memory };
  if (job.k8s.cpuPinning) limits.cpu = cpu;
  if (r.gpus > 0) requests[job.k8s.gpuResource] = limits[job.k8s.gpuResource] = String(r.gpus * workers);
  if (r.disk !== undefined) requests['ephemeral-storage'] = limits['ephemeral-storage'] = bytesQuantity(r.disk * workers);
  return { requests, limits };
}

function requirement(r: { key: string; operator: string; values?: string[] | undefined }): V1NodeSelectorRequirement {
  return { key: r.key, operator: r.operator, ...(r.values && r.values.length > 0 ? { values: [...r.values] } : {}) };
}

/** Node affinity from the spec; with `workers: true`, also the pod (anti-)affinity of podPlacement.workers. */
export function affinity(job: K8sJob, opts: { workers: boolean }): V1Affinity | undefined {
  const p = job.k8s.podPlacement;
  const a: V1Affinity = {};
  if (p.requiredNodeAffinity.length > 0 || p.preferredNodeAffinity.length > 0) {
    a.nodeAffinity = {
      ...(p.requiredNodeAffinity.length > 0
        ? { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: p.requiredNodeAffinity.map(requirement) }] } }
        : {}),
      ...(p.preferredNodeAffinity.length > 0
        ? { preferredDuringSchedulingIgnoredDuringExecution: p.preferredNodeAffinity.map((r) => ({ weight: r.weight, preference: { matchExpressions: [requirement(r)] } })) }
        : {}),
    };
  }
  if (opts.workers && p.workers !== 'any') {
    // Every worker pod of the job (all groups): on one node, or each on its own.
    const term = { labelSelector: { matchLabels: { [LABEL_JOB]: job.jobId, [LABEL_ROLE]: 'worker' } }, topologyKey: HOSTNAME_TOPOLOGY };
    if (p.workers === 'same-node') a.podAffinity = { requiredDuringSchedulingIgnoredDuringExecution: [term] };
    else a.podAntiAffinity = { requiredDuringSchedulingIgnoredDuringExecution: [term] };
  }
  return Object.keys(a).length > 0 ? a : undefined;
}

export function tolerations(job: K8sJob): V1Toleration[] | undefined {
  const t = job.k8s.podPlacement.tolerations;
  if (t.length === 0) return undefined;
  return t.map((x) => ({
    ...(x.key !== undefined ? { key: x.key } : {}),
    operator: x.operator,
    ...(x.value !== undefined ? { value: x.value } : {}),
    ...(x.effect !== undefined ? { effect: x.effect } : {}),
    ...(x.tolerationSeconds !== undefined ? { tolerationSeconds: x.tolerationSeconds } : {}),
  }));
}

/** Scheduling fields every pod of the job shares (the job master's too): node selection, tolerations, priority, pull secrets. */
export function commonPodSpec(job: K8sJob): Partial<V1PodSpec> {
  const p = job.k8s.podPlacement;
  const tol = tolerations(job);
  return {
    ...(Object.keys(p.nodeSelector).length > 0 ? { nodeSelector: { ...p.nodeSelector } } : {}),
    ...(tol ? { tolerations: tol } : {}),
    ...(p.priorityClassName ? { priorityClassName: p.priorityClassName } : {}),
    ...(job.k8s.imagePullSecrets.length > 0 ? { imagePullSecrets: job.k8s.imagePullSecrets.map((name) => ({ name })) } : {}),
  };
}

/** The volumes of a worker pod: the shared directory always, the rest as the spec asks (`storage`: storage-volumes.ts). */
export function workerVolumes(job: K8sJob): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const v = job.k8s.volumes;
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  // The package is unpacked here once per pod; RAM-backed with volumes.memory.
  volumes.push({
    name: 'shared',
    emptyDir: v.memory ? { medium: 'Memory', ...(v.memory.sizeLimit !== undefined ? { sizeLimit: bytesQuantity(v.memory.sizeLimit) } : {}) } : {},
  });
  mounts.push({ name: 'shared', mountPath: SHARED_MOUNT });
  if (v.disk) {
    volumes.push({ name: 'scratch', emptyDir: { sizeLimit: bytesQuantity(v.disk.sizeLimit) } });
    mounts.push({ name: 'scratch', mountPath: v.disk.mountPath });
  }
  const pv = v.persistent;
  if (pv?.nfs) {
    volumes.push({ name: 'persistent', nfs: { server: pv.nfs.server, path: pv.nfs.path, ...(pv.nfs.readOnly ? { readOnly: true } : {}) } });
    mounts.push({ name: 'persistent', mountPath: pv.mountPath, ...(pv.nfs.readOnly ? { readOnly: true } : {}) });
  } else if (pv?.pvc) {
    volumes.push({ name: 'persistent', persistentVolumeClaim: { claimName: job.names.pvc } });
    mounts.push({ name: 'persistent', mountPath: pv.mountPath });
  }
  const storage = storageVolumes(job);
  volumes.push(...storage.volumes);
  mounts.push(...storage.mounts);
  if (job.k8s.openmpi) {
    volumes.push({
      name: 'ssh',
      secret: {
        secretName: job.names.secret,
        defaultMode: 0o400,
        items: [
          { key: SECRET_KEYS.sshPrivateKey, path: SSH_KEY_FILES.privateKey },
          { key: SECRET_KEYS.sshPublicKey, path: SSH_KEY_FILES.publicKey },
          { key: SECRET_KEYS.sshPublicKey, path: SSH_KEY_FILES.authorizedKeys },
        ],
      },
    });
    mounts.push({ name: 'ssh', mountPath: SSH_MOUNT, readOnly: true });
  }
  return { volumes, mounts };
}

/**
 * The containers of a worker pod. Normally workersPerPod containers named worker-<i>, each one worker:
 * its ID is offset + ordinal × workersPerPod + i, which the runtime computes from TWISTER2_POD_NAME's
 * ordinal and TWISTER2_CONTAINER_INDEX / _WORKERS_PER_POD / _WORKER_ID_OFFSET. With openmpi one
 * container "mpi" per pod runs sshd (and, in pod 0, mpirun): ranks are worker IDs.
 */
export function workerContainers(job: K8sJob, input: WorkerPodInput): V1Container[] {
  const group = input.group ?? defaultGroup(job);
  const command = input.workerCommand ?? DEFAULT_WORKER_COMMAND;
  const wpp = job.k8s.workersPerPod;
  const env = podEnv(job, input.env);
  const { mounts } = workerVolumes(job);
  const base = { image: job.k8s.image, imagePullPolicy: job.k8s.imagePullPolicy, volumeMounts: mounts };
  const np = job.k8s.nodePort;
  if (job.k8s.openmpi) {
    const forwarded = [...new Set([...Object.keys(input.env), ENV.workDir, ...SECRET_ENV, ...storageVolumes(job).env.map((e) => e.name)])];
    return [
      {
        name: 'mpi',
        ...base,
        command: ['/bin/sh', '-c', openmpiScript(job, { group, program: command, envNames: forwarded })],
        env,
        resources: workerResources(job, wpp),
        ports: [{ name: 'ssh', containerPort: 22, protocol: 'TCP' }, ...(np ? [{ name: 'worker', containerPort: np.containerPort, protocol: 'TCP' }] : [])],
        readinessProbe: { tcpSocket: { port: 22 }, periodSeconds: 2 },
      },
    ];
  }
  return Array.from({ length: wpp }, (_, i) => ({
    name: `worker-${i}`,
    ...base,
    command: [...command],
    env: [
      ...env,
      { name: POD_ENV.containerIndex, value: String(i) },
      { name: POD_ENV.workersPerPod, value: String(wpp) },
      { name: POD_ENV.workerIdOffset, value: String(group.offset) },
    ],
    resources: workerResources(job),
    // The containers of a pod share its network: only the first declares the outside port.
    ...(np && i === 0 ? { ports: [{ name: 'worker', containerPort: np.containerPort, protocol: 'TCP' }] } : {}),
  }));
}

/** The spec of a worker pod, for the StatefulSet's template and for plain pods. */
export function workerPodSpec(job: K8sJob, input: WorkerPodInput, restartPolicy: 'Always' | 'Never' | 'OnFailure' = 'Always'): V1PodSpec {
  const aff = affinity(job, { workers: true });
  return {
    containers: workerContainers(job, input),
    volumes: workerVolumes(job).volumes,
    restartPolicy,
    // Workers may only delete the job's root, when their job master is gone (workerAccountObjects).
    serviceAccountName: job.names.workerAccount,
    automountServiceAccountToken: true,
    enableServiceLinks: false,
    // Several workers of a pod take turns on the once-per-pod package fetch; its lock checks holders by PID.
    ...(job.k8s.workersPerPod > 1 && !job.k8s.openmpi ? { shareProcessNamespace: true } : {}),
    terminationGracePeriodSeconds: 15,
    ...(aff ? { affinity: aff } : {}),
    ...commonPodSpec(job),
  };
}

export function workerPodTemplate(job: K8sJob, input: WorkerPodInput): V1PodTemplateSpec {
  const group = input.group ?? defaultGroup(job);
  return { metadata: { labels: roleLabels(job.jobId, 'worker', group.index) }, spec: workerPodSpec(job, input) };
}

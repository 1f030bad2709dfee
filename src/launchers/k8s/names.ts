import { createHash } from 'node:crypto';

/**
 * Names and labels of a job's Kubernetes objects, all derived from the job ID
 * (`<name>-<yyyymmddhhmmss>-<4 hex>`, at most 60 characters, a DNS-1123 label).
 *
 * Every name is a DNS-1035 label (Services need one: lowercase, starting with a letter), so a job ID
 * that starts with a digit gets a "t2-" prefix. StatefulSet names stay within 52 characters: the
 * controller-revision-hash label of their pods is `<name>-<hash of up to 10>` and must fit 63. A name
 * too long is shortened by cutting the job name, keeping the job ID's unique timestamp-and-random tail.
 */

export const MANAGED_BY = 'twister2';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_JOB = 'twister2.io/job';
export const LABEL_ROLE = 'twister2.io/role';
export const LABEL_GROUP = 'twister2.io/worker-group';

export const MAX_NAME = 63;
export const MAX_STATEFULSET_NAME = 52;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const JOB_ID_TAIL = /-\d{14}-[0-9a-f]{4}$/;

export type Role = 'jobmaster' | 'worker';

/** `base` cut to at most `max` characters, still unique per job and still a DNS label. */
export function shorten(base: string, max: number): string {
  if (base.length <= max) return base;
  const tail = JOB_ID_TAIL.exec(base)?.[0];
  if (tail && max > tail.length + 1) {
    return `${trimDashes(base.slice(0, max - tail.length))}${tail}`;
  }
  const hash = createHash('sha256').update(base).digest('hex').slice(0, 8);
  return `${trimDashes(base.slice(0, max - hash.length - 1))}-${hash}`;
}

function trimDashes(s: string): string {
  return s.replace(/-+$/, '');
}

export function isDnsLabel(s: string): boolean {
  return s.length <= MAX_NAME && DNS_LABEL.test(s);
}

export interface JobNames {
  jobId: string;
  /** The root ConfigMap (holds the spec; every other object is owned by it). */
  root: string;
  /** Job token, package reference, uploader credentials, the OpenMPI SSH key pair. */
  secret: string;
  jobMaster: string;
  /** The job master's Service; workers reach it at http://<jobMasterService>.<namespace>.svc:<port>. */
  jobMasterService: string;
  /** The job master's ServiceAccount, Role and RoleBinding. */
  serviceAccount: string;
  /** The workers' ServiceAccount, Role and RoleBinding (one name for the three). */
  workerAccount: string;
  role: string;
  roleBinding: string;
  /** The RWX claim of storage.persistent.pvc or kubernetes.volumes.persistent.pvc (never both). */
  pvc: string;
  /** The in-cluster job master's journal (a ConfigMap): its state outlives its pod. */
  journal: string;
  /** The worker StatefulSet of a group; its headless Service has the same name. */
  workers(group?: number): string;
  /** The NodePort Service of a group. */
  nodePort(group?: number): string;
  /** Pod `ordinal` of a group's StatefulSet (or the plain Pod of that ordinal). */
  workerPod(ordinal: number, group?: number): string;
}

export function jobNames(jobId: string): JobNames {
  if (!isDnsLabel(jobId)) {
    throw new Error(`job ID "${jobId}" is not a DNS-1123 label (lowercase letters, digits and "-", at most 63)`);
  }
  const base = /^[a-z]/.test(jobId) ? jobId : `t2-${jobId}`;
  const named = (suffix: string, max = MAX_NAME) => `${shorten(base, max - suffix.length - 1)}-${suffix}`;
  const workers = (group = 0) => named(`w${group}`, MAX_STATEFULSET_NAME);
  return {
    jobId,
    root: shorten(base, MAX_NAME),
    secret: named('secret'),
    jobMaster: named('jm', MAX_STATEFULSET_NAME),
    jobMasterService: named('jm', MAX_STATEFULSET_NAME),
    serviceAccount: named('jm'),
    workerAccount: named('worker'),
    role: named('jm'),
    roleBinding: named('jm'),
    pvc: named('data'),
    journal: named('journal'),
    workers,
    nodePort: (group = 0) => named(`w${group}-np`),
    workerPod: (ordinal, group = 0) => `${workers(group)}-${ordinal}`,
  };
}

/** Labels every object of the job carries; `kubectl get all -l twister2.io/job=<id>` lists them. */
export function jobLabels(jobId: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_JOB]: shorten(jobId, MAX_NAME) };
}

export function roleLabels(jobId: string, role: Role, group?: number): Record<string, string> {
  return { ...jobLabels(jobId), [LABEL_ROLE]: role, ...(role === 'worker' ? { [LABEL_GROUP]: String(group ?? 0) } : {}) };
}

/** The label selector string of a job (all objects), of one role, or of one worker group, for list calls. */
export function jobSelector(jobId: string, role?: Role, group?: number): string {
  const labels = !role ? jobLabels(jobId) : group === undefined ? { ...jobLabels(jobId), [LABEL_ROLE]: role } : roleLabels(jobId, role, group);
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/**
 * A worker's ID from where it runs: pod `ordinal` of its group's StatefulSet, container `container`
 * (worker-<container>) of that pod. IDs stay the same across pod restarts and rescheduling because the
 * StatefulSet keeps ordinals.
 */
export function workerId(ordinal: number, container: number, workersPerPod: number, offset = 0): number {
  if (!Number.isInteger(ordinal) || ordinal < 0) throw new RangeError(`pod ordinal ${ordinal} is not a whole number from 0`);
  if (!Number.isInteger(container) || container < 0 || container >= workersPerPod) throw new RangeError(`container index ${container} is not within 0..${workersPerPod - 1}`);
  return offset + ordinal * workersPerPod + container;
}

/** The inverse of workerId: where worker `id` runs. */
export function workerSlot(id: number, workersPerPod: number, offset = 0): { ordinal: number; container: number } {
  const local = id - offset;
  if (!Number.isInteger(local) || local < 0) throw new RangeError(`worker ${id} is not in the group starting at ${offset}`);
  return { ordinal: Math.floor(local / workersPerPod), container: local % workersPerPod };
}

/** The ordinal of a StatefulSet pod from its name (`<statefulset>-<ordinal>`), or undefined. */
export function podOrdinal(podName: string): number | undefined {
  const m = /-(\d+)$/.exec(podName);
  return m ? Number(m[1]) : undefined;
}

/** Pods a group needs for `workers` workers. */
export function podsFor(workers: number, workersPerPod: number): number {
  return Math.ceil(workers / workersPerPod);
}

import os from 'node:os';
import path from 'node:path';
import { MEMORY_ROOT, sizeProblem, STORAGE_FIX } from '../job/storage.js';
import { twister2Home } from '../job/job-store.js';
import type { SpecProblem } from '../errors.js';
import { listText, slotsOf } from './gpus.js';
import { PERSISTENT_FORMS, UPLOADER_KINDS, type ClusterKind, type JobSpec, type PersistentForm, type UploaderSpec } from '../spec/schema.js';

export type PlacementKind = JobSpec['jobMaster']['placement'];
export type UploaderKind = UploaderSpec['kind'];

/**
 * What a cluster can do, declared once in its registry entry (registry.ts). The job master, the client,
 * the CLI and spec validation ask these before anything changes, so a job is never left half changed by
 * a launcher that throws "not supported" halfway.
 */
export interface ClusterCapabilities {
  /** Changing the worker count of a running job. */
  scale: {
    /** For the capability table in the README. */
    summary: string;
    /** Why this job cannot go to `to` workers, or undefined when it can. */
    refusal(spec: JobSpec, to: number): string | undefined;
    /** No job of this cluster ever changes its worker count (its launcher has no addWorkers/removeWorkers). */
    fixed?: true;
  };
  /**
   * Who brings a failed worker back with the same ID: the launcher (restartWorker), the cluster itself
   * (the job master waits for the re-registration), or nobody (the whole job fails with it).
   */
  restartOneWorker: {
    by: 'launcher' | 'cluster' | 'none';
    /** Why this job's workers cannot be restarted one by one although the cluster can restart others. */
    refusal?(spec: JobSpec): string | undefined;
    /** When `refusal` applies, for the capability table. */
    except?: string;
  };
  /**
   * A job master process of the `cluster` placement is restarted after a crash and carries on from its
   * journal: the launcher can take over the workers an earlier job master started (Launcher.resume).
   */
  jobMasterRecovery?: true;
  /** The job master placements the cluster has, each with the uploaders it accepts. */
  placements: Partial<Record<PlacementKind, readonly UploaderKind[]>>;
  /**
   * How resources.gpus is honoured: every cluster gives each worker its GPUs or refuses the job, none ignores
   * the request. `problems` says why a job of `workers` workers cannot have them (checked before anything is
   * created, and before a scale).
   */
  gpus: {
    /** For the capability table in the README. */
    summary: string;
    problems?(spec: JobSpec, workers: number): SpecProblem[];
  };
  /**
   * How spec `storage` is given (README "Storage"): `problems` says why this job's storage cannot be had,
   * checked before anything is created. A cluster without `storage` support refuses the section.
   */
  storage: {
    /** For the capability table in the README. */
    summary: string;
    problems?(spec: JobSpec): SpecProblem[];
  };
}

export const ALL_UPLOADERS = UPLOADER_KINDS;

export const anyScale: ClusterCapabilities['scale'] = { summary: 'yes', refusal: () => undefined };

export function fixedSize(why: string): ClusterCapabilities['scale'] {
  return { summary: `no (${why})`, refusal: () => why, fixed: true };
}

/** Why a job of `spec` cannot go from `from` to `to` workers, naming the cluster and what it can do; undefined when it can. */
export function scaleRefusal(caps: ClusterCapabilities, spec: JobSpec, from: number, to: number): string | undefined {
  const why = caps.scale.refusal(spec, to) ?? caps.gpus.problems?.(spec, to)[0]?.message;
  return why === undefined ? undefined : `cluster "${spec.cluster}" cannot scale this job from ${from} to ${to} workers: ${why}; the job keeps running with ${from}`;
}

/** The spec's job master placement, uploader and restarts checked against what its cluster can do. */
export function capabilityProblems(caps: ClusterCapabilities, spec: JobSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const cluster: ClusterKind = spec.cluster;
  const placement = spec.jobMaster.placement;
  const uploaders = caps.placements[placement];
  const placements = Object.keys(caps.placements).map((p) => `"${p}"`).join(', ');
  if (!uploaders) {
    const none = placement === 'none' ? ' ("none", no job master, is for plain MPI programs)' : '';
    problems.push({ path: 'jobMaster.placement', message: `cluster "${cluster}" has no job master placement "${placement}"${none}; it has ${placements}` });
  } else if (!uploaders.includes(spec.uploader.kind)) {
    const others = Object.entries(caps.placements)
      .filter(([, kinds]) => kinds.includes(spec.uploader.kind))
      .map(([p]) => `"${p}"`);
    problems.push({
      path: 'uploader.kind',
      message:
        `cluster "${cluster}" with jobMaster.placement "${placement}" does not take uploader "${spec.uploader.kind}"; use ${uploaders.map((u) => `"${u}"`).join(', ')}` +
        (others.length > 0 ? `, or jobMaster.placement ${others.join(' or ')}` : ''),
    });
  }
  if (spec.restart.maxRestarts > 0) {
    const why = caps.restartOneWorker.by === 'none' ? `cluster "${cluster}" cannot restart one worker` : caps.restartOneWorker.refusal?.(spec);
    if (why) problems.push({ path: 'restart.maxRestarts', message: `${why}, so restart.maxRestarts must be 0 (got ${spec.restart.maxRestarts})` });
  }
  problems.push(...(caps.gpus.problems?.(spec, spec.workers) ?? []));
  if (spec.storage) problems.push(...(caps.storage.problems?.(spec) ?? []));
  return problems;
}

/**
 * The local cluster: `local.gpus` lists this machine's GPUs, divided among the workers by worker ID
 * (launchers/gpus.ts). Asking for GPUs without a list, or for more than it has, is refused.
 */
export function localGpuProblems(spec: JobSpec, workers: number): SpecProblem[] {
  const g = spec.resources.gpus;
  const list = spec.local.gpus;
  if (g === 0) return [];
  const host = `this machine (${os.hostname()})`;
  if (!list) {
    return [{ path: 'resources.gpus', message: `each worker asks for ${g} GPU(s) but local.gpus does not list the GPUs of ${host}; set local.gpus to their indexes (e.g. [0, 1, 2, 3]), or resources.gpus to 0` }];
  }
  if (workers * g <= list.length) return [];
  const fit = slotsOf(list, g);
  return [
    {
      path: 'resources.gpus',
      message:
        `${workers} workers × ${g} GPU(s) each (resources.gpus) need ${workers * g} GPUs, but local.gpus lists ${list.length} on ${host} ${listText(list)}, and workers never share one; ` +
        `use at most ${fit} worker(s)${g > 1 ? ', fewer GPUs per worker' : ''}, or list more GPUs in local.gpus`,
    },
  ];
}

/**
 * The local cluster: the client checks that storage.memory.size fits in what /dev/shm has free, and
 * storage.scratch.size in the free disk where the workers' work dir goes, before the job starts.
 */
export function localStorageProblems(spec: JobSpec): SpecProblem[] {
  const host = `${os.hostname()} (this machine)`;
  const problems: SpecProblem[] = persistentFormProblems(spec);
  const memory = spec.storage?.memory && sizeProblem('storage.memory.size', spec.storage.memory.size, MEMORY_ROOT, host, STORAGE_FIX.memory);
  if (memory) problems.push({ path: 'storage.memory.size', message: memory });
  const scratchSize = spec.storage?.scratch?.size;
  const workDir = spec.local.workDir ? path.resolve(spec.local.workDir) : twister2Home();
  const scratch = scratchSize !== undefined && sizeProblem('storage.scratch.size', scratchSize, workDir, host, `${STORAGE_FIX.scratch} (local.workDir sets where)`);
  if (scratch) problems.push({ path: 'storage.scratch.size', message: scratch });
  return problems;
}

/**
 * storage.persistent in a form another cluster has (PERSISTENT_FORMS): named with its value, the clusters it
 * is for, and the form this cluster takes instead. Every cluster giving `storage` checks this first.
 */
export function persistentFormProblems(spec: JobSpec): SpecProblem[] {
  const persistent = spec.storage?.persistent;
  if (!persistent) return [];
  const forms = Object.keys(PERSISTENT_FORMS) as PersistentForm[];
  const given = forms.find((f) => persistent[f] !== undefined);
  const mine = forms.filter((f) => (PERSISTENT_FORMS[f].clusters as readonly ClusterKind[]).includes(spec.cluster));
  if (!given || mine.includes(given)) return [];
  const instead = mine.map((f) => `storage.persistent.${f} (${PERSISTENT_FORMS[f].what})`).join(' or ');
  return [
    {
      path: `storage.persistent.${given}`,
      message: `storage.persistent.${given} ${JSON.stringify(persistent[given])} is for cluster ${PERSISTENT_FORMS[given].clusters.map((c) => `"${c}"`).join(', ')}, not "${spec.cluster}"; use ${instead || 'no storage.persistent'}`,
    },
  ];
}

/**
 * Nomad: storage is the client node's own /dev/shm and /tmp, shared by the job's workers there, which only
 * driver raw_exec gives (exec and docker give each task its own); its persistent form is hostVolume.
 */
export function nomadStorageProblems(spec: JobSpec): SpecProblem[] {
  const driver = spec.nomad?.driver ?? 'raw_exec';
  const problems = persistentFormProblems(spec);
  if (driver !== 'raw_exec') {
    problems.push({
      path: 'nomad.driver',
      message: `storage on nomad is each client node's /dev/shm and /tmp, shared by the job's workers there, which driver "${driver}" does not give (each task has its own); use nomad.driver "raw_exec", or remove storage`,
    });
  }
  return problems;
}

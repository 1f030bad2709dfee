import type { SpecProblem } from '../errors.js';
import { UPLOADER_KINDS, type ClusterKind, type JobSpec, type UploaderSpec } from '../spec/schema.js';

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
}

export const ALL_UPLOADERS = UPLOADER_KINDS;

export const anyScale: ClusterCapabilities['scale'] = { summary: 'yes', refusal: () => undefined };

export function fixedSize(why: string): ClusterCapabilities['scale'] {
  return { summary: `no (${why})`, refusal: () => why, fixed: true };
}

/** Why a job of `spec` cannot go from `from` to `to` workers, naming the cluster and what it can do; undefined when it can. */
export function scaleRefusal(caps: ClusterCapabilities, spec: JobSpec, from: number, to: number): string | undefined {
  const why = caps.scale.refusal(spec, to);
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
  return problems;
}

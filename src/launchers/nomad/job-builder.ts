import { createHash } from 'node:crypto';
import { ENV } from '../../job/worker-environment.js';
import type { JobSpec } from '../../spec/schema.js';
import type { NomadSpec } from './section.js';

const NS_PER_MS = 1_000_000;
const MB = 1024 * 1024;
export const WORKER_GROUP = 'workers';
export const WORKER_TASK = 'worker';
/** The post-stop task of a worker allocation with spec `storage`. */
export const STORAGE_CLEANUP_TASK = 'storage-cleanup';
/** The group's `volume` block of storage.persistent.hostVolume. */
export const PERSISTENT_VOLUME = 'persistent';
export const JOB_MASTER_GROUP = 'jobmaster';
/** The dynamic port the job master listens on inside its allocation. */
export const JOB_MASTER_PORT = 'jm';
/** Where the worker token lives in Nomad Variables: tasks of the job may read it, the job spec never holds it. */
export const tokenVariablePath = (jobId: string) => `nomad/jobs/${jobId}`;

export interface NomadJobInput {
  jobId: string;
  spec: JobSpec;
  nomad: NomadSpec;
  /** The worker runtime's environment, without the worker token (that comes from the variable). */
  env: Record<string, string>;
  /** The worker runtime: [node, main.js] on the hosts (raw_exec, exec) or inside the image (docker). */
  workerCommand: string[];
  /**
   * spec `storage`: the command of the post-stop task that cleans each allocation's node after its worker
   * ([node, worker/storage-cleanup-main.js]), and where storage.persistent.hostVolume is on each node (by ID).
   */
  storage?: { cleanupCommand: string[]; hostVolumePaths?: Record<string, string> };
  /** With the job master in the cluster: one more allocation running it, registered as a Nomad service. */
  jobMaster?: { command: string[]; service: string; env: Record<string, string> };
}

/**
 * The Nomad job (API JSON) for a twister2 job: one task group of N allocations, allocation index =
 * worker ID. Restarts of a failed task stay in its allocation (same index, same ID) up to
 * restart.maxRestarts; rescheduling to a new allocation is off, since the job master owns that budget.
 * The token reaches the task through a template reading the job's Nomad Variable into the task's
 * private secrets directory.
 */
export function nomadJob(input: NomadJobInput): Record<string, unknown> {
  const { spec, nomad, jobId } = input;
  const [command, ...args] = input.workerCommand;
  const resources: Record<string, unknown> = {
    CPU: Math.max(1, Math.round(spec.resources.cpu * nomad.mhzPerCore)),
    MemoryMB: Math.max(10, Math.ceil(spec.resources.memory / MB)),
    ...(spec.resources.gpus > 0 ? { Devices: [{ Name: nomad.gpuDevice, Count: spec.resources.gpus }] } : {}),
  };
  const config: Record<string, unknown> = {
    ...(nomad.driver === 'docker' ? { image: nomad.image, network_mode: 'host' } : {}),
    ...nomad.taskConfig,
    command,
    args,
  };
  const storage = storageOf(input);
  return {
    ID: jobId,
    Name: jobId,
    Type: nomad.type,
    Datacenters: nomad.datacenters,
    ...(nomad.namespace ? { Namespace: nomad.namespace } : {}),
    ...(nomad.region ? { Region: nomad.region } : {}),
    ...(nomad.nodePool ? { NodePool: nomad.nodePool } : {}),
    Meta: { 'twister2.job': jobId, 'twister2.name': spec.name },
    Constraints: nomad.constraints.map((c) => ({ LTarget: c.attribute ?? '', Operand: c.operator, RTarget: c.value })),
    Affinities: nomad.affinities.map((a) => ({ LTarget: a.attribute, Operand: a.operator, RTarget: a.value, Weight: a.weight })),
    Spreads: nomad.spread.map((s) => ({ Attribute: s.attribute, Weight: s.weight, SpreadTarget: s.targets.map((t) => ({ Value: t.value, Percent: t.percent })) })),
    TaskGroups: [
      ...(input.jobMaster ? [jobMasterGroup(input, input.jobMaster)] : []),
      {
        Name: WORKER_GROUP,
        Count: spec.workers,
        RestartPolicy: { Attempts: spec.restart.maxRestarts, Interval: 24 * 3600 * 1000 * NS_PER_MS, Delay: 1000 * NS_PER_MS, Mode: 'fail' },
        ReschedulePolicy: { Attempts: 0, Unlimited: false },
        ...(spec.resources.disk ? { EphemeralDisk: { SizeMB: Math.ceil(spec.resources.disk / MB) } } : {}),
        ...storage.group,
        Tasks: [
          {
            Name: WORKER_TASK,
            Driver: nomad.driver,
            Config: config,
            Env: { ...input.env, ...storage.env },
            Resources: resources,
            Templates: [
              {
                EmbeddedTmpl: `${ENV.workerToken}={{ with nomadVar "${tokenVariablePath(jobId)}" }}{{ .token }}{{ end }}\n`,
                DestPath: 'secrets/twister2.env',
                Envvars: true,
                ChangeMode: 'noop',
              },
            ],
            KillSignal: 'SIGTERM',
            KillTimeout: 5000 * NS_PER_MS,
            LogConfig: { MaxFiles: 3, MaxFileSizeMB: 10 },
            // NOMAD_TOKEN: the workload identity, to find the job master's service and purge an orphaned job.
            Identity: { Env: true },
          },
          ...storage.tasks,
        ],
      },
    ],
  };
}

/**
 * spec `storage` in the worker group: storage.persistent.hostVolume as a `volume` block, which places the
 * workers on nodes declaring it (not mounted: raw_exec cannot, and needs not: the worker is told the path on its
 * node); and a post-stop task, which Nomad runs on the node once the worker task has ended however it ended,
 * removing the job's memory and scratch directories there unless a live worker holds them, and with
 * persistent.logs copying the worker's log into the volume (worker/storage-cleanup-main.ts).
 */
function storageOf(input: NomadJobInput): { group: Record<string, unknown>; env: Record<string, string>; tasks: Record<string, unknown>[] } {
  const storage = input.spec.storage;
  if (!storage || !input.storage) return { group: {}, env: {}, tasks: [] };
  const volume = storage.persistent?.hostVolume;
  const paths = input.storage.hostVolumePaths;
  const env: Record<string, string> = volume && paths ? { [ENV.hostVolumePaths]: JSON.stringify(paths), [ENV.nodeId]: '${node.unique.id}' } : {};
  const [command, ...args] = input.storage.cleanupCommand;
  const cleanup = {
    Name: STORAGE_CLEANUP_TASK,
    Driver: input.nomad.driver,
    Config: { command, args },
    Env: { ...input.env, ...env, ...(volume && storage.persistent?.logs ? { [ENV.copyLogs]: WORKER_TASK } : {}) },
    Lifecycle: { Hook: 'poststop', Sidecar: false },
    Resources: { CPU: 20, MemoryMB: 64 },
    KillTimeout: 5000 * NS_PER_MS,
    LogConfig: { MaxFiles: 1, MaxFileSizeMB: 1 },
  };
  return {
    group: volume ? { Volumes: { [PERSISTENT_VOLUME]: { Name: PERSISTENT_VOLUME, Type: 'host', Source: volume, ReadOnly: false } } } : {},
    env,
    tasks: [cleanup],
  };
}

/**
 * The job master's allocation: `twister2 jobmaster` on a dynamic port, registered in Nomad's own service
 * discovery, where workers find it. It ends the job itself (stop and purge), so Nomad must not restart it,
 * and it gets time after the stop signal to write the final status.
 */
function jobMasterGroup(input: NomadJobInput, jm: NonNullable<NomadJobInput['jobMaster']>): Record<string, unknown> {
  const [command, ...args] = jm.command;
  return {
    Name: JOB_MASTER_GROUP,
    Count: 1,
    Networks: [{ DynamicPorts: [{ Label: JOB_MASTER_PORT }] }],
    Services: [{ Name: jm.service, PortLabel: JOB_MASTER_PORT, Provider: 'nomad', Tags: ['twister2', input.jobId] }],
    RestartPolicy: { Attempts: 0, Interval: 24 * 3600 * 1000 * NS_PER_MS, Delay: 1000 * NS_PER_MS, Mode: 'fail' },
    ReschedulePolicy: { Attempts: 0, Unlimited: false },
    Tasks: [
      {
        Name: JOB_MASTER_GROUP,
        Driver: input.nomad.driver,
        Config: { command, args },
        Env: jm.env,
        Resources: { CPU: 200, MemoryMB: 256 },
        KillSignal: 'SIGTERM',
        KillTimeout: 20_000 * NS_PER_MS,
      },
    ],
  };
}

/** Nomad service names: at most 63 of [a-z0-9-]; job IDs can be longer, so a digest of the ID. */
export function jobMasterServiceName(jobId: string): string {
  return `twister2-jm-${createHash('sha256').update(jobId).digest('hex').slice(0, 16)}`;
}

/** "job-1.workers[3]" → 3: Nomad's allocation index, which is the worker ID. */
export function allocationIndex(name: string): number | undefined {
  const m = /\[(\d+)\]$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

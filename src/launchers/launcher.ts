import type { WorkerInfo, WorkerState } from '../protocol/messages.js';
import type { JobRecord } from '../job/job-store.js';
import type { JournalStore } from '../job/journal-store.js';
import type { JobSecrets } from '../job/secrets.js';
import type { JobSpec } from '../spec/schema.js';
import type { PackageRef } from '../uploader/uploader.js';

/**
 * The contract every cluster implements, defined once. A launcher turns job-master decisions into
 * cluster actions (start, add, remove, restart, release) and reports what the cluster did (worker
 * exits). It never decides policy: restarts budgets, job state and barriers belong to the job master.
 */
export interface LaunchContext {
  jobId: string;
  spec: JobSpec;
  /** The job's directory on the client machine: package, logs, records. */
  jobDir: string;
  /** Where workers get the job package (the uploader's reference); the worker runtime verifies its sha256. */
  packageRef: PackageRef;
  jobMasterUrl: string;
  /** The per-job secret. Launchers pass it to workers and must never log it. */
  token: string;
}

export interface WorkerExit {
  workerId: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /**
   * Which run of the worker ended (Kubernetes: pod uid, container, restart count; Slurm: the step), from launchers that
   * report the end of every run, including runs whose failure the job master saw first (a missed heartbeat).
   */
  run?: string;
}

/** A worker as a restarted job master knows it (Launcher.resume). */
export interface ResumedWorker {
  workerId: number;
  state: WorkerState;
  restarts: number;
  /** What the worker (or the run before a restart it waits for) registered, when it did. */
  info?: WorkerInfo;
}

export interface LauncherListener {
  /** A worker process (or container, allocation, rank) ended on its own or was killed from outside. */
  workerExited(exit: WorkerExit): void;
  /** The cluster holds the workers in its queue (a batch system); `reason` is the cluster's own. */
  queued?(reason: string): void;
  /** The cluster gave the job its resources: the workers are starting now. */
  allocated?(): void;
  /** The cluster ended the job by itself (time limit, node failure, cancelled by an administrator...). */
  clusterEnded?(message: string): void;
  /**
   * Keeps `value` under `key` durably, for `resume` after a crash of the job master (how far each log was
   * read, say). Only a job master that can be restarted has it; the last value of each key is kept.
   */
  remember?(key: string, value: unknown): void;
}

/** How the job ended, for launchers whose clean-up differs (let a finished batch job end by itself). */
export type JobEnding = 'succeeded' | 'failed' | 'killed';

export interface Launcher {
  /** Starts workers 0..spec.workers-1. Resolves once the cluster accepted them, not once they registered. */
  start(ctx: LaunchContext, listener: LauncherListener): Promise<void>;
  /** Scale up: starts workers with these IDs. Only clusters whose capabilities allow scaling (registry.ts) have it. */
  addWorkers?(ids: number[]): Promise<void>;
  /** Scale down: stops these workers. Their exits are expected and are not reported as failures. */
  removeWorkers?(ids: number[]): Promise<void>;
  /**
   * Replaces a failed worker with a new one of the same ID. Optional: clusters that restart workers
   * by themselves (Kubernetes, Nomad) leave it out and the job master waits for the re-registration.
   * `predecessor`: what the failed worker registered (its node, its GPUs), when it did.
   */
  restartWorker?(id: number, restartCount: number, predecessor?: WorkerInfo): Promise<void>;
  /** Releases everything the job created. Idempotent; resolves only when nothing is left. */
  release(ending?: JobEnding): Promise<void>;
  /**
   * Takes over the workers an earlier job master of this job started, which crashed, given the workers as
   * the new job master knows them: a running worker that is gone is reported as an exit, a starting one
   * that has no process is started, one that should not run is stopped.
   */
  resume?(ctx: LaunchContext, listener: LauncherListener, workers: ResumedWorker[], remembered: Record<string, unknown>): Promise<void>;
  /** This job master was replaced by another (fencing): forget the workers without stopping any of them. */
  abandon?(): void;
}

export type LauncherFactory = () => Launcher;

/** How to start a detached job master process (`twister2 jobmaster --job-dir D`), and where. */
export interface JobMasterCommand {
  program: string;
  args: string[];
  /** The host it runs on, or undefined for this machine. */
  host?: string;
}

/** A job master that a cluster's queue will start (Slurm: a batch job running `twister2 jobmaster`). */
export interface QueuedJobMaster {
  /** E.g. "Slurm job 42". */
  name: string;
  /** Undefined while the job master may still come; once it cannot, why (the queue refused or ended the job). */
  whyGone(): Promise<string | undefined>;
  /** The queue's word on the wait, e.g. "PENDING (Resources: ...)", for the user watching. */
  waiting(): Promise<string | undefined>;
  /** Takes the job out of the queue. */
  cancel(): Promise<void>;
  /**
   * For a job master that cannot write the job directory (in a Kubernetes pod): where it answers, once it
   * does; the client records it. Without it the job master records its own address.
   */
  address?(): Promise<JobRecord['jobMaster']>;
}

/**
 * Where a cluster runs a job master of the `cluster` placement. The default is a process on this
 * machine; a cluster may run it on one of its own hosts instead (MPI: the first host).
 */
export interface JobMasterPlacement {
  jobMasterCommand(spec: JobSpec, jobDir: string, node: string, cli: string): Promise<JobMasterCommand>;
  /** The spec as that process runs it (e.g. listening on the host's own address). */
  jobMasterProcessSpec(spec: JobSpec): Promise<JobSpec>;
  /** Clusters with a queue submit the job master to it instead: the client then waits for its record. */
  queueJobMaster?(spec: JobSpec, jobDir: string, node: string, cli: string, secrets: JobSecrets): Promise<QueuedJobMaster>;
  /** Where that process journals its state (default: a file in the job directory). */
  journalStore?(spec: JobSpec, jobId: string): Promise<JournalStore>;
}

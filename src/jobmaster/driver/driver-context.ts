import type { JobState, JobStatus, WorkerInfo } from '../../protocol/messages.js';
import type { WorkerLogger } from '../../worker/context.js';

export interface DriverContextEvents {
  /** A worker registered for the first time. */
  workerJoined: (workerId: number) => void;
  /** A worker that had failed registered again (same ID); `restarts` counts its failures so far. */
  workerRestarted: (workerId: number, restarts: number) => void;
  /** A worker failed; it is restarted within restart.maxRestarts, or the job fails. */
  workerFailed: (workerId: number, message: string) => void;
  workerCompleted: (workerId: number) => void;
  /** The job was scaled (by the driver, the CLI or the library). */
  scaled: (numWorkers: number, previous: number) => void;
  jobState: (state: JobState, message: string | undefined) => void;
}

/**
 * What the driver's default export receives: `export default async (ctx) => result`. The driver runs in the
 * job master, wherever that runs; see README, "Driver and messages".
 */
export interface DriverContext {
  readonly jobId: string;
  readonly jobName: string;
  /** The job's current size; changes when the job is scaled. */
  readonly numWorkers: number;
  /** driver.args from the spec. */
  readonly args: readonly string[];
  /** Where the job package was unpacked for the driver. */
  readonly packageDir: string;
  /** 0; more when a job master restarted after a crash started the driver again (its messages in flight were lost). */
  readonly jobMasterRestarts: number;
  readonly log: WorkerLogger;
  /** Aborted when the job ended before the driver returned; the driver is stopped shortly after. */
  readonly signal: AbortSignal;
  /** Resolves once `n` workers (default: all) registered, with every registered worker; rejects if the job ends first or `timeoutMs` passes. */
  waitForWorkers(n?: number, opts?: { timeoutMs?: number }): Promise<WorkerInfo[]>;
  /** The workers registered now (running or completed), with host, IP and published ports. */
  workers(): Promise<WorkerInfo[]>;
  /** Sends `data` (any JSON, at most 256 KiB) to a worker that is starting, running or restarting; it waits in the worker's inbox until taken. */
  send(workerId: number, data: unknown): Promise<void>;
  /** Sends `data` to every worker that may still receive; resolves with their IDs. */
  broadcast(data: unknown): Promise<number[]>;
  /** The workers' messages, `{ from: workerId, data }`, each worker's in the order it sent them. Ends once every worker completed (or the job ended) and nothing is left. */
  messages(): AsyncIterable<{ from: number; data: unknown }>;
  /** Scales the job to `n` workers; refused (CapabilityError) where the cluster cannot, and the job runs on as it was. */
  scale(n: number): Promise<void>;
  /** Kills the job with `reason`. */
  kill(reason?: string): Promise<void>;
  status(): Promise<JobStatus>;
  on<E extends keyof DriverContextEvents>(event: E, listener: DriverContextEvents[E]): void;
}

export type DriverFunction = (ctx: DriverContext) => unknown;

/** What the job master gives the driver's thread to start with. */
export interface DriverThreadData {
  jobId: string;
  jobName: string;
  numWorkers: number;
  module: string;
  args: string[];
  packageDir: string;
  jobMasterRestarts: number;
}

export type DriverOp = 'workers' | 'waitForWorkers' | 'send' | 'broadcast' | 'receive' | 'scale' | 'kill' | 'status';

/** The driver's thread to the job master. */
export type FromDriver =
  | { type: 'call'; id: number; op: DriverOp; args: Record<string, unknown> }
  | { type: 'returned'; result: unknown }
  | { type: 'failed'; message: string };

/** The job master to the driver's thread. */
export type ToDriver =
  | { type: 'answer'; id: number; result?: unknown; error?: { code: string; message: string } }
  | { type: 'event'; event: keyof DriverContextEvents; args: unknown[] }
  | { type: 'stop'; reason: string };

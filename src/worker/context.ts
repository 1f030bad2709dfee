import type { WorkerInfo } from '../protocol/messages.js';
import type { JobSpec } from '../spec/schema.js';
import type { WorkerStorage } from '../job/worker-environment.js';

export interface WorkerLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface WorkerContextEvents {
  /** The job was scaled; `numWorkers` already holds the new size. */
  scaled: (numWorkers: number, previous: number) => void;
  /** Another worker failed; barriers it was part of have failed too. */
  workerFailed: (workerId: number, message: string) => void;
}

/** What a JS/TS worker's default export receives: `export default async (ctx) => { ... }`. */
export interface WorkerContext {
  readonly jobId: string;
  readonly jobName: string;
  /** Stable 0..N-1; a restarted worker keeps its ID. */
  readonly workerId: number;
  /** The job's current size; changes when the job is scaled. */
  readonly numWorkers: number;
  /** 0 on the first run; counts up each time this worker ID was restarted. */
  readonly restartCount: number;
  /** The resolved job spec. */
  readonly config: JobSpec;
  /** worker.args from the spec. */
  readonly args: readonly string[];
  /** Where the job package was unpacked; relative paths in the package resolve from here. */
  readonly packageDir: string;
  /** `work`: this worker's scratch directory. `shared`: a directory shared by the workers on this host. */
  readonly volumes: { readonly work: string; readonly shared: string };
  /**
   * The job's storage (spec `storage`; also TWISTER2_MEMORY_DIR, TWISTER2_SCRATCH_DIR, TWISTER2_PERSISTENT_DIR):
   * `memory`, a memory-backed directory shared by the job's workers on this host (with storage.memory);
   * `scratch`, this host's node-local disk directory of the job; both are removed when the job ends.
   * `persistent`, storage.persistent.dir, seen by every worker and kept after the job.
   */
  readonly storage: WorkerStorage;
  /**
   * The GPUs this worker may use, as CUDA_VISIBLE_DEVICES names them: its share of local.gpus or of its host's
   * mpi.hosts[].gpus, or what Slurm allocated to its task. Undefined when nothing was divided (CUDA_VISIBLE_DEVICES
   * unset); empty when the worker was given none.
   */
  readonly gpus: readonly string[] | undefined;
  readonly log: WorkerLogger;
  /** Aborted when the worker must stop: the job ended, it was scaled away, or the job master was lost. */
  readonly signal: AbortSignal;
  /** The ports the runtime picked for this worker, one per name of worker.ports; peers see them in discovery. */
  readonly ports: Readonly<Record<string, number>>;
  /**
   * Publishes ports this worker opened itself (`{ name: port }`, names as in worker.ports), added to its
   * entry in discovery: peers calling workers() afterwards see them.
   */
  publishPorts(ports: Record<string, number>): Promise<void>;
  /** Discovery. By default waits until all workers joined; `{ waitForAll: false }` lists who is there now. */
  workers(opts?: { waitForAll?: boolean; timeoutMs?: number }): Promise<WorkerInfo[]>;
  /** Waits until every live worker reached the barrier `name`; rejects with a BarrierError otherwise. */
  barrier(name: string, opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * Sends `data` (any JSON, at most 256 KiB of it) to the job's driver; resolves once the job master holds
   * it. This worker's messages reach the driver in the order they were sent.
   */
  send(data: unknown): Promise<void>;
  /**
   * The driver's messages to this worker, in the order it sent them: `for await (const m of ctx.messages())`.
   * Ends when the job ends or this worker is scaled away. Iterate it as often as needed: a message not yet
   * handed out is kept for the next iteration.
   */
  messages(): AsyncIterable<{ from: 'driver'; data: unknown }>;
  on<E extends keyof WorkerContextEvents>(event: E, listener: WorkerContextEvents[E]): void;
}

export type WorkerFunction = (ctx: WorkerContext) => unknown;

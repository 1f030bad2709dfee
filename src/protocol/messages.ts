import { z } from 'zod';

/**
 * The job master's wire protocol (see docs/protocol.md). JSON over HTTP/1.1; every request carries
 * `Authorization: Bearer <job secret>`, and our clients send `Twister2-Protocol: <major>` (optional, so
 * curl works; a different major is refused). These schemas are the single source of the message types.
 */
export { JOB_TOKEN_HEADER, PORT_NAME, PROTOCOL_HEADER, PROTOCOL_VERSION, TERMINAL_JOB_STATES } from './wire.js';
import { MAX_RECEIVE_WAIT_MS, PORT_NAME } from './wire.js';

// QUEUED: the cluster holds the job in its queue (Slurm PENDING); registration deadlines wait for it.
export const JobStateSchema = z.enum(['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'KILLED']);
export type JobState = z.infer<typeof JobStateSchema>;

/**
 * STARTING: launched, not registered yet. REMOVED: scaled away (not a failure). STOPPED: the job ended
 * (FAILED or KILLED) while this worker was still starting or running, and its process was stopped with
 * the job; a worker's last state is COMPLETED, FAILED, REMOVED or STOPPED once the job has ended.
 */
export const WorkerStateSchema = z.enum(['STARTING', 'RUNNING', 'COMPLETED', 'FAILED', 'REMOVED', 'STOPPED']);
export type WorkerState = z.infer<typeof WorkerStateSchema>;

const workerId = z.number().int().min(0);

export const PortNameSchema = z.string().regex(PORT_NAME, 'a port name is 1-15 of a-z 0-9 -, starting with a letter');
/** Named ports of a worker, for its peers' communication. */
export const PortsSchema = z
  .record(PortNameSchema, z.number().int().min(1).max(65535))
  .refine((p) => Object.keys(p).length <= 64, 'at most 64 ports');

export const WorkerInfoSchema = z.object({
  workerId,
  host: z.string(),
  ip: z.string(),
  ports: PortsSchema,
  node: z.string(),
  resources: z.object({ cpu: z.number(), memoryBytes: z.number(), gpus: z.number() }),
  pid: z.number().int().optional(),
  restartCount: z.number().int().min(0),
  /**
   * The GPUs the cluster bound to this worker, by its node's own indexes (Slurm: SLURM_STEP_GPUS), where the
   * cluster tells: a restart of the worker is given the same ones.
   */
  gpuIds: z.array(z.string().max(64)).max(64).optional(),
});
export type WorkerInfo = z.infer<typeof WorkerInfoSchema>;

export const RegisterRequestSchema = WorkerInfoSchema.extend({
  /**
   * Drawn once by the registering process and sent with each attempt: a retry whose first answer was lost
   * (the job master died after the registration was journaled, before the answer went out) gets the same
   * session back instead of being taken for a second process claiming the ID. Kept from peers.
   */
  incarnation: z.string().min(8).max(64).optional(),
});
export type RegisterRequest = z.infer<typeof RegisterRequestSchema>;

export const RegisterResponseSchema = z.object({
  session: z.string(),
  jobId: z.string(),
  numWorkers: z.number().int(),
  restartCount: z.number().int(),
  heartbeatIntervalMs: z.number().int(),
  heartbeatTimeoutMs: z.number().int(),
  barrierTimeoutMs: z.number().int(),
  registrationTimeoutMs: z.number().int(),
  /**
   * How long a worker waits for a job master it lost to come back (a restarted one keeps its session);
   * 0 or absent: this job master is not restarted, so a lost one is gone.
   */
  jobMasterRecoveryMs: z.number().int().optional(),
});
export type RegisterResponse = z.infer<typeof RegisterResponseSchema>;

export const SessionRequestSchema = z.object({ session: z.string() });

export const HeartbeatResponseSchema = z.object({ numWorkers: z.number().int(), jobState: JobStateSchema });
export type HeartbeatResponse = z.infer<typeof HeartbeatResponseSchema>;

export const CompleteRequestSchema = z.object({ session: z.string(), ok: z.boolean(), message: z.string().max(4000).optional() });
export type CompleteRequest = z.infer<typeof CompleteRequestSchema>;

/** POST /v1/workers/{id}/ports: ports a running worker opened itself, added to (or replacing) those it published before. */
export const PublishPortsRequestSchema = z.object({ session: z.string(), ports: PortsSchema });

export const SetupFailedRequestSchema = z.object({ message: z.string().max(4000) });

export const BarrierRequestSchema = z.object({
  workerId,
  session: z.string(),
  timeoutMs: z.number().int().positive().max(2 ** 31 - 1).optional(),
  /** Names this arrival, the same when it is sent again: one whose barrier already ended gets its answer at once. */
  key: z.string().max(100).optional(),
});
export type BarrierRequest = z.infer<typeof BarrierRequestSchema>;

export const BarrierResponseSchema = z.object({ name: z.string(), generation: z.number().int(), numWorkers: z.number().int() });
export type BarrierResponse = z.infer<typeof BarrierResponseSchema>;

export const WorkerListSchema = z.object({ numWorkers: z.number().int(), workers: z.array(WorkerInfoSchema) });
export type WorkerList = z.infer<typeof WorkerListSchema>;

export const WorkerStatusSchema = z.object({
  workerId,
  state: WorkerStateSchema,
  restarts: z.number().int(),
  info: WorkerInfoSchema.optional(),
  message: z.string().optional(),
  /** While it runs: when the job master last heard its heartbeat (ISO time). */
  lastHeartbeatAt: z.string().optional(),
});
export type WorkerStatus = z.infer<typeof WorkerStatusSchema>;

/** RUNNING until its function returns (RETURNED) or throws (FAILED); STOPPED: the job ended first. */
export const DriverStateSchema = z.enum(['RUNNING', 'RETURNED', 'FAILED', 'STOPPED']);
export type DriverState = z.infer<typeof DriverStateSchema>;
export const DriverStatusSchema = z.object({ state: DriverStateSchema, result: z.unknown().optional(), message: z.string().optional() });
export type DriverStatus = z.infer<typeof DriverStatusSchema>;

/** A barrier some workers wait at: who arrived, and which live workers it still waits for. */
export const BarrierProgressSchema = z.object({
  name: z.string(),
  generation: z.number().int(),
  arrived: z.array(z.number().int()),
  missing: z.array(z.number().int()),
});
export type BarrierProgress = z.infer<typeof BarrierProgressSchema>;

export const JobStatusSchema = z.object({
  jobId: z.string(),
  name: z.string(),
  cluster: z.string(),
  state: JobStateSchema,
  numWorkers: z.number().int(),
  registered: z.number().int(),
  workers: z.array(WorkerStatusSchema),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  message: z.string().optional(),
  /** Where the job master runs now and how often it was restarted (a job master process that journals its state). */
  jobMaster: z.object({ pid: z.number().int(), host: z.string(), epoch: z.number().int(), restarts: z.number().int() }).optional(),
  /** The job's driver (spec `driver`), if it has one: its state, and what it returned. */
  driver: DriverStatusSchema.optional(),
  /** Barriers in progress (absent when none), and the heartbeat timeout, for a view of the job such as the dashboard. */
  barriers: z.array(BarrierProgressSchema).optional(),
  heartbeatTimeoutMs: z.number().int().optional(),
});
export type JobStatus = z.infer<typeof JobStatusSchema>;

/** A message as its receiver takes it: numbered in its inbox, from a worker ID or the driver. */
export interface Envelope {
  seq: number;
  from: number | 'driver';
  data: unknown;
}

const messageData = z.unknown().refine((d) => d !== undefined, 'a message needs data (any JSON)');
/** POST /v1/workers/{id}/messages: a worker's message to the driver. `id` names it, the same when sent again: it is kept once. */
export const SendMessageRequestSchema = z.object({ session: z.string(), id: z.string().min(1).max(64), data: messageData });
/** POST /v1/workers/{id}/inbox: acknowledges what it consumed (up to `ack`), takes up to `max` of the rest, waiting up to `timeoutMs` for one. */
export const ReceiveRequestSchema = z.object({
  session: z.string(),
  ack: z.number().int().min(0).optional(),
  max: z.number().int().min(0).max(1000).default(100),
  timeoutMs: z.number().int().min(0).max(MAX_RECEIVE_WAIT_MS).default(0),
});

/**
 * The channel (protocol 2, GET /v1/channel upgraded to `twister2-channel`): one connection carries a
 * worker's calls as newline-delimited JSON frames, `{id, op, args}` answered by `{id, result}` or
 * `{id, error}`, answers in any order (a barrier waits while a heartbeat is answered).
 */
export const ChannelFrameSchema = z.object({ id: z.number().int().min(0), op: z.string(), args: z.unknown() });
export const ChannelArgsSchemas = {
  register: RegisterRequestSchema,
  heartbeat: SessionRequestSchema.extend({ workerId }),
  complete: CompleteRequestSchema.extend({ workerId }),
  setupFailed: SetupFailedRequestSchema.extend({ workerId }),
  ports: PublishPortsRequestSchema.extend({ workerId }),
  barrier: BarrierRequestSchema.extend({ name: z.string().min(1).max(1000) }),
  workers: z.object({ waitForAll: z.boolean().optional(), timeoutMs: z.number().int().positive().max(2 ** 31 - 1).optional() }),
  send: SendMessageRequestSchema.extend({ workerId }),
  receive: ReceiveRequestSchema.extend({ workerId }),
  /** From now on, the job's events come on this connection as `{seq, event}` frames, a snapshot first. */
  follow: z.object({}),
} as const;
export type ChannelOp = keyof typeof ChannelArgsSchemas;

export const ScaleRequestSchema = z.object({ workers: z.number().int().min(1).max(100_000) });
export const KillRequestSchema = z.object({ reason: z.string().max(1000).optional() });

export const ErrorResponseSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** Pushed on GET /v1/events as Server-Sent Events; `event:` is the type, `data:` the JSON below. */
export const JobEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), status: JobStatusSchema }),
  z.object({ type: z.literal('job-state'), state: JobStateSchema, message: z.string().optional() }),
  z.object({
    type: z.literal('worker-state'),
    workerId,
    state: WorkerStateSchema,
    restarts: z.number().int(),
    message: z.string().optional(),
  }),
  z.object({ type: z.literal('scaled'), from: z.number().int(), to: z.number().int() }),
  z.object({ type: z.literal('driver-state'), state: DriverStateSchema, message: z.string().optional() }),
]);
export type JobEvent = z.infer<typeof JobEventSchema>;

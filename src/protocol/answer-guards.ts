import type { BarrierResponse, Envelope, HeartbeatResponse, JobEvent, JobStatus, RegisterResponse, WorkerInfo, WorkerList } from './messages.js';

/**
 * Shape checks of the job master's answers, by hand instead of with the zod schemas: the answers come from
 * the job master that holds the job's secret (the schemas guard what it receives), and a worker's client
 * must not load zod. What they catch is an answer from something else: a proxy's page, another version.
 */

type Kind = 'string' | 'number' | 'boolean' | 'object';
type Fields = Record<string, Kind>;

export class AnswerShapeError extends Error {}

function has(json: unknown, fields: Fields, what: string): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new AnswerShapeError(`${what} is not a JSON object`);
  const o = json as Record<string, unknown>;
  for (const [key, kind] of Object.entries(fields)) {
    const v = o[key];
    const ok = kind === 'object' ? typeof v === 'object' && v !== null : typeof v === kind;
    if (!ok) throw new AnswerShapeError(`${what}: "${key}" is not a ${kind}`);
  }
  return o;
}

const WORKER_INFO: Fields = { workerId: 'number', host: 'string', ip: 'string', ports: 'object', node: 'string', restartCount: 'number' };

export const answers = {
  register: (j: unknown) =>
    has(j, { session: 'string', jobId: 'string', numWorkers: 'number', restartCount: 'number', heartbeatIntervalMs: 'number', heartbeatTimeoutMs: 'number', barrierTimeoutMs: 'number', registrationTimeoutMs: 'number' }, 'registration answer') as RegisterResponse,
  heartbeat: (j: unknown) => has(j, { numWorkers: 'number', jobState: 'string' }, 'heartbeat answer') as HeartbeatResponse,
  barrier: (j: unknown) => has(j, { name: 'string', generation: 'number', numWorkers: 'number' }, 'barrier answer') as BarrierResponse,
  workerInfo: (j: unknown) => has(j, WORKER_INFO, 'worker') as WorkerInfo,
  workerList: (j: unknown) => {
    const o = has(j, { numWorkers: 'number', workers: 'object' }, 'worker list');
    if (!Array.isArray(o.workers)) throw new AnswerShapeError('worker list: "workers" is not an array');
    for (const w of o.workers) has(w, WORKER_INFO, 'worker list entry');
    return o as WorkerList;
  },
  status: (j: unknown) => {
    const o = has(j, { jobId: 'string', name: 'string', cluster: 'string', state: 'string', numWorkers: 'number', registered: 'number', workers: 'object', startedAt: 'string' }, 'job status');
    if (!Array.isArray(o.workers)) throw new AnswerShapeError('job status: "workers" is not an array');
    for (const w of o.workers) has(w, { workerId: 'number', state: 'string', restarts: 'number' }, 'job status worker');
    return o as JobStatus;
  },
  event: (j: unknown) => {
    const o = has(j, { type: 'string' }, 'event');
    if (o.type === 'snapshot') answers.status(o.status);
    else if (o.type === 'job-state') has(o, { state: 'string' }, 'job-state event');
    else if (o.type === 'worker-state') has(o, { workerId: 'number', state: 'string', restarts: 'number' }, 'worker-state event');
    else if (o.type === 'scaled') has(o, { from: 'number', to: 'number' }, 'scaled event');
    else if (o.type === 'driver-state') has(o, { state: 'string' }, 'driver-state event');
    else throw new AnswerShapeError(`event of unknown type "${String(o.type)}"`);
    return o as JobEvent;
  },
  sent: (j: unknown) => has(j, { seq: 'number' }, 'send answer') as { seq: number },
  received: (j: unknown) => {
    const o = has(j, { messages: 'object' }, 'receive answer');
    if (!Array.isArray(o.messages)) throw new AnswerShapeError('receive answer: "messages" is not an array');
    for (const m of o.messages) has(m, { seq: 'number' }, 'received message');
    return o as { messages: Envelope[]; ended?: string };
  },
  error: (j: unknown): { code: string; message: string } | undefined => {
    try {
      return has(has(j, { error: 'object' }, 'error').error, { code: 'string', message: 'string' }, 'error') as { code: string; message: string };
    } catch {
      return undefined;
    }
  },
};

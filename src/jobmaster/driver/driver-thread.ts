import { parentPort, workerData } from 'node:worker_threads';
import { errorFromWire } from '../../errors.js';
import { InboxReader } from '../../protocol/inbox-reader.js';
import type { Envelope, JobStatus, WorkerInfo } from '../../protocol/messages.js';
import { messageBytes } from '../../protocol/wire.js';
import { importDefaultFunction } from '../../worker/program-runner.js';
import type { DriverContext, DriverContextEvents, DriverFunction, DriverOp, DriverThreadData, FromDriver, ToDriver } from './driver-context.js';

/**
 * The driver's thread in the job master's process: a thread of its own, so that a driver computing without
 * a pause does not hold up the job master's heartbeats and answers. Its calls go to the job master as
 * messages (driver-host.ts); its output is the thread's, which the job master writes to the driver's log.
 */

const d = workerData as DriverThreadData;
const port = parentPort!;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const listeners = new Map<keyof DriverContextEvents, ((...args: never[]) => void)[]>();
const abort = new AbortController();
let nextId = 1;
let numWorkers = d.numWorkers;

function call<T>(op: DriverOp, args: Record<string, unknown> = {}): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    port.postMessage({ type: 'call', id, op, args } satisfies FromDriver);
  });
}

port.on('message', (m: ToDriver) => {
  if (m.type === 'answer') {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(errorFromWire(m.error.code, m.error.message));
    else p?.resolve(m.result);
  } else if (m.type === 'event') {
    if (m.event === 'scaled') numWorkers = m.args[0] as number;
    for (const l of listeners.get(m.event) ?? []) (l as (...a: unknown[]) => void)(...m.args);
  } else {
    abort.abort(new Error(m.reason));
  }
});

const inbox = new InboxReader((ack, timeoutMs) => call<{ messages: Envelope[]; ended?: string }>('receive', { ack, timeoutMs }));

const ctx: DriverContext = {
  jobId: d.jobId,
  jobName: d.jobName,
  get numWorkers() {
    return numWorkers;
  },
  args: d.args,
  packageDir: d.packageDir,
  jobMasterRestarts: d.jobMasterRestarts,
  log: { info: (...a) => console.log(...a), warn: (...a) => console.warn(...a), error: (...a) => console.error(...a) },
  signal: abort.signal,
  waitForWorkers: (n, opts = {}) => call<WorkerInfo[]>('waitForWorkers', { n: n ?? numWorkers, timeoutMs: opts.timeoutMs }),
  workers: () => call<WorkerInfo[]>('workers'),
  async send(workerId, data) {
    messageBytes(data);
    await call('send', { workerId, data });
  },
  async broadcast(data) {
    messageBytes(data);
    return call<number[]>('broadcast', { data });
  },
  messages: () => inbox.messages() as AsyncGenerator<{ from: number; data: unknown }>,
  async scale(n) {
    await call('scale', { n });
  },
  async kill(reason) {
    await call('kill', { reason });
  },
  status: () => call<JobStatus>('status'),
  on(event, listener) {
    listeners.set(event, [...(listeners.get(event) ?? []), listener as (...args: never[]) => void]);
  },
};

async function main(): Promise<void> {
  let done: FromDriver;
  try {
    const run = await importDefaultFunction<DriverFunction>(d.packageDir, d.module, 'driver module', 'async (ctx) => result');
    const result = await run(ctx);
    try {
      messageBytes(result === undefined ? null : result); // what the client gets must be JSON, and small
    } catch (err) {
      throw new Error(`its result cannot be kept: ${(err as Error).message}`);
    }
    done = { type: 'returned', result };
  } catch (err) {
    done = { type: 'failed', message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(done);
}

void main();

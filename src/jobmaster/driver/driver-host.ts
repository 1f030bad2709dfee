import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { JobStateError, UsageError } from '../../errors.js';
import { DRIVER_LOG, files } from '../../job/job-store.js';
import { LineSplitter } from '../../line-splitter.js';
import { extractPackage } from '../../package/index.js';
import { TERMINAL_JOB_STATES, type JobEvent, type WorkerInfo } from '../../protocol/messages.js';
import type { JobMaster } from '../job-master.js';
import { toHttpError } from '../wire-errors.js';
import type { DriverContextEvents, DriverOp, DriverThreadData, FromDriver, ToDriver } from './driver-context.js';

// From the sources (the unit tests), the thread is a .ts file that tsx compiles.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const DRIVER_THREAD = new URL(FROM_SOURCE ? './driver-thread.ts' : './driver-thread.js', import.meta.url);
/** How long a driver still running when the job ended has, after its ctx.signal is aborted, before its thread is ended. */
const STOP_GRACE_MS = 2000;

export interface DriverRun {
  /** Resolves once the driver's thread ended and its output is in its log. */
  stopped: Promise<void>;
}

/**
 * Runs the job's driver (spec `driver`) next to the job master: unpacks the package into the job directory,
 * starts the driver's module on a thread of its own with the job's environment minus twister2's own
 * variables (the job master's secrets), answers its calls, and tells it the job's events. Its output goes to
 * `logs/driver.log`, which clients show tagged `[driver]`; `echo` gets each line too (a job master whose
 * directory the client cannot read). How it ends is the job master's to decide (driverReturned, driverFailed).
 */
export async function startDriver(jm: JobMaster, o: { jobDir: string; packageFile: string; jobMasterRestarts: number; echo?: (line: string) => void }): Promise<DriverRun> {
  const spec = jm.spec.driver!;
  if (TERMINAL_JOB_STATES.includes(jm.state)) return { stopped: Promise.resolve() };
  const packageDir = path.join(o.jobDir, files.driverPackage);
  const logDir = path.join(o.jobDir, files.logs);
  try {
    await rm(packageDir, { recursive: true, force: true });
    await extractPackage(o.packageFile, packageDir);
    await mkdir(logDir, { recursive: true });
  } catch (err) {
    jm.driverFailed(`could not unpack the job package for it: ${(err as Error).message}`);
    return { stopped: Promise.resolve() };
  }
  const log = createWriteStream(path.join(logDir, DRIVER_LOG), { flags: 'a' });
  const data: DriverThreadData = {
    jobId: jm.jobId,
    jobName: jm.spec.name,
    numWorkers: jm.status().numWorkers,
    module: spec.module,
    args: spec.args,
    packageDir,
    jobMasterRestarts: o.jobMasterRestarts,
  };
  // The job master's own variables hold its secrets (in a pod, the job's admin secret): the driver gets none.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TWISTER2_')));
  const thread = new Worker(DRIVER_THREAD, { workerData: data, stdout: true, stderr: true, env, ...(FROM_SOURCE ? { execArgv: ['--import', 'tsx'] } : {}) });
  const outputs = [copyLines(thread.stdout, log, o.echo), copyLines(thread.stderr, log, o.echo)];
  const post = (m: ToDriver) => thread.postMessage(m);
  let finished = false;
  let stopTimer: NodeJS.Timeout | undefined;
  const onEvent = (e: JobEvent) => {
    const forwarded = driverEvent(e);
    if (forwarded) post({ type: 'event', event: forwarded[0], args: forwarded[1] });
    if (e.type === 'job-state' && TERMINAL_JOB_STATES.includes(e.state)) {
      post({ type: 'stop', reason: `the job ended (${e.state})` });
      // A driver that returned has nothing more to do; one still running gets a moment for its ctx.signal.
      stopTimer ??= setTimeout(() => void thread.terminate(), finished ? 200 : STOP_GRACE_MS);
    }
  };
  jm.on('event', onEvent);
  // Ended while the package was unpacked: the driver is stopped at once.
  if (TERMINAL_JOB_STATES.includes(jm.state)) onEvent({ type: 'job-state', state: jm.state });
  thread.on('message', (m: FromDriver) => {
    if (m.type === 'call') {
      answer(jm, m.op, m.args).then(
        (result) => post({ type: 'answer', id: m.id, result: result ?? null }),
        (err: unknown) => {
          const e = toHttpError(err);
          post({ type: 'answer', id: m.id, error: { code: e.code, message: e.message } });
        },
      );
      return;
    }
    finished = true;
    if (m.type === 'returned') jm.driverReturned(m.result);
    else jm.driverFailed(m.message);
  });
  thread.once('error', (err) => {
    finished = true;
    jm.driverFailed(err.message);
  });
  const stopped = new Promise<void>((resolve) =>
    thread.once('exit', (code) => {
      clearTimeout(stopTimer);
      jm.off('event', onEvent);
      if (!finished) jm.driverFailed(`its thread exited (code ${code}) before the driver returned`);
      // The thread's streams end with it; should one not, its output so far is what there is.
      void Promise.race([Promise.all(outputs), new Promise((r) => setTimeout(r, 2000))])
        .then(() => new Promise<void>((r) => log.end(r)))
        .then(() => rm(packageDir, { recursive: true, force: true }))
        .catch(() => undefined)
        .then(() => resolve());
    }),
  );
  jm.driverStarted();
  return { stopped };
}

/** A call of the driver's context, answered from the job master. Arguments come from user code: checked. */
async function answer(jm: JobMaster, op: DriverOp, a: Record<string, unknown>): Promise<unknown> {
  switch (op) {
    case 'workers':
      return jm.listWorkers().workers;
    case 'waitForWorkers':
      return waitForWorkers(jm, count('ctx.waitForWorkers(n)', a.n), a.timeoutMs === undefined ? undefined : count('ctx.waitForWorkers(n, { timeoutMs })', a.timeoutMs));
    case 'send':
      jm.sendToWorker(count('ctx.send(workerId, data)', a.workerId, 0), a.data);
      return null;
    case 'broadcast':
      return jm.broadcast(a.data);
    case 'receive':
      return jm.driverReceive(a.ack as number | undefined, 100, a.timeoutMs as number);
    case 'scale':
      await jm.scale(count('ctx.scale(n)', a.n));
      return null;
    case 'kill':
      jm.kill(typeof a.reason === 'string' && a.reason ? a.reason : 'killed by the driver');
      return null;
    case 'status':
      return jm.status();
  }
}

function count(what: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 31 - 1) throw new UsageError(`${what}: expected a whole number from ${min}, got ${JSON.stringify(v)}`);
  return v;
}

/** Resolves once `n` workers registered (running or completed); rejects when the job ends first, or after `timeoutMs`. */
function waitForWorkers(jm: JobMaster, n: number, timeoutMs: number | undefined): Promise<WorkerInfo[]> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      jm.off('event', check);
    };
    function check(): void {
      const list = jm.listWorkers().workers;
      if (list.length >= n) {
        done();
        resolve(list);
      } else if (TERMINAL_JOB_STATES.includes(jm.state)) {
        done();
        reject(new JobStateError(`the job ended (${jm.state}) while the driver waited for ${n} workers (${list.length} registered)`));
      }
    }
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        done();
        reject(new JobStateError(`${jm.listWorkers().workers.length} of ${n} workers registered within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    jm.on('event', check);
    check();
  });
}

/** The driver's event for a job event, if it has one. */
function driverEvent(e: JobEvent): [keyof DriverContextEvents, unknown[]] | undefined {
  switch (e.type) {
    case 'worker-state':
      if (e.state === 'RUNNING') return e.restarts > 0 ? ['workerRestarted', [e.workerId, e.restarts]] : ['workerJoined', [e.workerId]];
      if (e.state === 'FAILED') return ['workerFailed', [e.workerId, e.message ?? '']];
      if (e.state === 'COMPLETED') return ['workerCompleted', [e.workerId]];
      return undefined;
    case 'scaled':
      return ['scaled', [e.to, e.from]];
    case 'job-state':
      return ['jobState', [e.state, e.message]];
    default:
      return undefined;
  }
}

/** Copies a stream's complete lines into the log (with its backpressure); resolves at the stream's end. */
function copyLines(from: Readable, to: WriteStream, echo: ((line: string) => void) | undefined): Promise<void> {
  const lines = new LineSplitter();
  const write = (batch: string[]) => {
    if (batch.length === 0) return;
    for (const l of batch) echo?.(l);
    if (!to.write(batch.join('\n') + '\n')) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  };
  from.on('data', (chunk: Buffer) => write(lines.push(chunk)));
  return new Promise((resolve) =>
    from.once('end', () => {
      const rest = lines.end();
      write(rest === undefined ? [] : [rest]);
      resolve();
    }),
  );
}

import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Channel, ChannelRefusedError } from '../protocol/channel.js';
import { httpCall, jsonOf, openStream, serverSentData } from '../protocol/http-call.js';

/**
 * The worker's heartbeats, event stream and lost-job-master detection, on a thread of their own so that a
 * worker program keeping the main thread busy (a long synchronous computation) is not taken for dead,
 * and is still ended, with everything it started, when the job master is gone. Heartbeats and events go
 * over a channel of this thread's own (protocol 2), or as HTTP requests and an event stream to a job master
 * that does not upgrade. Imports as little as possible (node's http, no validation library): it starts with
 * every worker.
 */

export interface HeartbeatThreadData {
  url: string;
  /** Authorization and protocol version, as the main thread's client sends them. */
  headers: Record<string, string>;
  workerId: number;
  session: string;
  numWorkers: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  terminalStates: readonly string[];
  /** The run's process marker (ProgramTree), for ending the program when the main thread cannot. */
  marker: string;
  /** How long the main thread has to answer a stop before this thread ends the program and the process. */
  mainThreadAnswerMs: number;
}

export type ThreadMessage =
  /** The event stream is connected (its snapshot arrived): no event from now on is missed. */
  | { type: 'following' }
  | { type: 'size'; numWorkers: number; previous: number }
  | { type: 'workerFailed'; workerId: number; message: string }
  | { type: 'stop'; reason: string; lost: boolean };

/** The main thread's answer to a stop: it ends the program itself. */
export type MainMessage = { type: 'stopping' };

interface WireEvent {
  type?: string;
  status?: { numWorkers?: unknown };
  to?: unknown;
  state?: string;
  workerId?: unknown;
  message?: string;
}

const d = workerData as HeartbeatThreadData;
const port = parentPort!;
const abort = new AbortController();
let stopped = false;
let unreachableSince: number | undefined;
let numWorkers = d.numWorkers;
let takeOverTimer: NodeJS.Timeout | undefined;

/** Resolves when the channel's connection is gone: the events it carried stop with it. */
let disconnected: (() => void) | undefined;
const channel = new Channel(d.url, d.headers, {
  onEvent: (e) => {
    reachable();
    try {
      onEvent(e as WireEvent);
    } catch {
      // An event this worker does not understand is skipped, as the protocol allows.
    }
  },
  onDisconnect: () => disconnected?.(),
});
/** The job master refused the channel (not the secret): HTTP from now on. */
let overHttp = false;

const heartbeatTimer = setInterval(() => void beat(), d.heartbeatIntervalMs);
void followEvents();
port.on('message', (m: MainMessage) => {
  if (m.type === 'stopping') clearTimeout(takeOverTimer);
});

async function beat(): Promise<void> {
  if (overHttp) return beatOverHttp();
  let answer;
  try {
    answer = await channel.call('heartbeat', { workerId: d.workerId, session: d.session }, { timeoutMs: 5000 });
  } catch (err) {
    if (refused(err)) return overHttp ? beatOverHttp() : undefined;
    return unreachable(`cannot reach the job master at ${d.url}: ${(err as Error).message}`);
  }
  if (answer.error) return stop(`the job master no longer accepts this worker: ${answer.error.message}`, false);
  heard(answer.result as HeartbeatAnswer);
}

/** A refused channel: stops on a refused secret, else switches to HTTP. False for any other error. */
function refused(err: unknown): boolean {
  if (!(err instanceof ChannelRefusedError)) return false;
  if (err.status === 401) stop('the job master refused this worker: the job master refused the job secret', false);
  else overHttp = true;
  return true;
}

type HeartbeatAnswer = { numWorkers?: unknown; jobState?: string } | undefined;

function heard(body: HeartbeatAnswer): void {
  reachable();
  if (typeof body?.numWorkers === 'number') setSize(body.numWorkers);
  if (body?.jobState && d.terminalStates.includes(body.jobState)) stop(`the job ended (${body.jobState})`, false);
}

async function beatOverHttp(): Promise<void> {
  let status: number;
  let body: { numWorkers?: unknown; jobState?: string; error?: { message?: string } } | undefined;
  try {
    const res = await httpCall(`${d.url}/v1/workers/${d.workerId}/heartbeat`, { method: 'POST', headers: d.headers, body: { session: d.session }, timeoutMs: 5000 });
    status = res.status;
    body = jsonOf(res.text) as typeof body;
  } catch (err) {
    return unreachable(`cannot reach the job master at ${d.url}: ${(err as Error).message}`);
  }
  // A refused session means the job master replaced or removed this worker: it must not go on.
  if (status >= 400) return stop(`the job master no longer accepts this worker: ${body?.error?.message ?? `HTTP ${status}`}`, false);
  heard(body);
}

async function followEvents(): Promise<void> {
  while (!stopped) {
    if (overHttp) await followOverHttp();
    else {
      try {
        const gone = new Promise<void>((resolve) => (disconnected = resolve));
        const answer = await channel.call('follow', {}, { timeoutMs: 5000 });
        if (answer.error) throw new Error(answer.error.message);
        await gone;
        if (!stopped) unreachable('the job master closed the event stream');
      } catch (err) {
        if (refused(err)) continue;
        if (!stopped) unreachable(`lost the event stream of the job master at ${d.url}: ${(err as Error).message}`);
      }
    }
    if (!stopped) await new Promise((r) => setTimeout(r, 250));
  }
}

async function followOverHttp(): Promise<void> {
  try {
    const res = await openStream(`${d.url}/v1/events`, { headers: d.headers, signal: abort.signal });
    if (res.statusCode === 401) return stop('the job master refused this worker: the job master refused the job secret', false);
    if (res.statusCode === 200) await readEvents(res);
    else res.resume();
    if (!stopped) unreachable('the job master closed the event stream');
  } catch (err) {
    if (!stopped) unreachable(`lost the event stream of the job master at ${d.url}: ${(err as Error).message}`);
  }
}

async function readEvents(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const data of serverSentData(body)) {
    reachable();
    try {
      onEvent(JSON.parse(data) as WireEvent);
    } catch {
      // An event this worker does not understand is skipped, as the protocol allows.
    }
  }
}

function onEvent(e: WireEvent): void {
  if (e.type === 'snapshot') port.postMessage({ type: 'following' } satisfies ThreadMessage);
  if (e.type === 'snapshot' && typeof e.status?.numWorkers === 'number') setSize(e.status.numWorkers);
  else if (e.type === 'scaled' && typeof e.to === 'number') setSize(e.to);
  else if (e.type === 'job-state' && e.state && d.terminalStates.includes(e.state)) stop(`the job ended (${e.state})`, false);
  else if (e.type === 'worker-state' && e.workerId === d.workerId && e.state === 'REMOVED') stop('this worker was removed by scaling', false);
  else if (e.type === 'worker-state' && e.state === 'FAILED' && typeof e.workerId === 'number' && e.workerId !== d.workerId) {
    port.postMessage({ type: 'workerFailed', workerId: e.workerId, message: e.message ?? 'failed' } satisfies ThreadMessage);
  }
}

function setSize(n: number): void {
  if (n === numWorkers) return;
  const previous = numWorkers;
  numWorkers = n;
  port.postMessage({ type: 'size', numWorkers: n, previous } satisfies ThreadMessage);
}

function reachable(): void {
  unreachableSince = undefined;
}

/** A job master unreachable for half the heartbeat timeout is gone: workers are gone well within the timeout. */
function unreachable(why: string): void {
  const now = Date.now();
  unreachableSince ??= now;
  if (now - unreachableSince >= d.heartbeatTimeoutMs / 2) stop(`lost the job master (${why})`, true);
}

function stop(reason: string, lost: boolean): void {
  if (stopped) return;
  stopped = true;
  clearInterval(heartbeatTimer);
  abort.abort();
  channel.close();
  port.postMessage({ type: 'stop', reason, lost } satisfies ThreadMessage);
  takeOverTimer = setTimeout(() => void takeOver(reason, lost), d.mainThreadAnswerMs);
}

/**
 * The main thread did not answer (the program keeps it busy): end the program's processes and this
 * process from here. Written straight to stderr, since a worker thread's console goes through the main thread.
 */
async function takeOver(reason: string, lost: boolean): Promise<void> {
  const log = (line: string) => writeSync(2, `[twister2 worker ${d.workerId}] ${line}\n`);
  log(`stopping: ${reason} (the program keeps the main thread busy, so it is ended from the heartbeat thread)`);
  // Loaded only now: every worker starts this thread, and almost none ever gets here.
  const [{ ProgramTree }, { endOrphanedJob }] = await Promise.all([import('./process-tree.js'), import('../launchers/worker-sides.js')]);
  new ProgramTree(d.marker).killNow();
  if (lost) await endOrphanedJob(process.env, log);
  process.kill(process.pid, 'SIGKILL');
}

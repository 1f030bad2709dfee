import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { DuplicateWorkerError, JobMasterUnreachableError } from '../errors.js';
import { JobMasterClient } from '../protocol/jobmaster-client.js';
import type { RegisterRequest, RegisterResponse } from '../protocol/messages.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, TERMINAL_JOB_STATES } from '../protocol/wire.js';
import type { HealthCheckData, HealthChecker } from './health-check.js';
import type { HeartbeatThreadData, MainMessage, ThreadMessage } from './heartbeat-thread.js';
import { JobMasterWatch, type WatchData } from './job-master-watch.js';

const HEARTBEAT_THREAD = new URL('./heartbeat-thread.js', import.meta.url);
/** A main thread that does not answer a stop within this is busy with the program; the heartbeat thread then ends it. */
const MAIN_THREAD_ANSWER_MS = 1000;

export interface LinkEvents {
  scaled: [numWorkers: number, previous: number];
  workerFailed: [workerId: number, message: string];
  /** The worker must stop: the job ended, this worker was removed, or the job master is gone. */
  stop: [reason: string, lost: boolean];
  /** worker.health failed too often in a row: the program must be ended and the worker failed. */
  unhealthy: [reason: string];
}

/**
 * A worker's connection to its job master: registration (with retries while the job master starts),
 * then heartbeats, the event stream and detection of a lost job master (JobMasterWatch): on a thread of
 * their own (heartbeat-thread.ts) for a module worker, so they go on while its program keeps the main
 * thread busy; on the main thread for a command worker, whose program is another process (a thread costs
 * a second V8 isolate, about a quarter of such a worker's CPU).
 */
export class JobMasterLink extends EventEmitter<LinkEvents> {
  readonly client: JobMasterClient;
  registration: RegisterResponse | undefined;
  numWorkers = 0;
  private thread: Worker | undefined;
  private watch: JobMasterWatch | undefined;
  private health: HealthChecker | undefined;
  private following = () => {};
  private stopped = false;

  constructor(
    url: string,
    private readonly token: string,
    private readonly workerId: number,
  ) {
    super();
    this.client = new JobMasterClient({ url, token, channel: true });
  }

  async register(info: Omit<RegisterRequest, 'incarnation'>, deadlineMs: number): Promise<RegisterResponse> {
    const deadline = Date.now() + deadlineMs;
    // This process's own ID, the same in every attempt: a retry whose answer was lost gets its session back.
    const req = { ...info, incarnation: randomUUID() };
    for (let attempt = 0; ; attempt++) {
      try {
        this.registration = await this.client.register(req);
        this.numWorkers = this.registration.numWorkers;
        this.client.recoveryMs = this.registration.jobMasterRecoveryMs ?? 0;
        return this.registration;
      } catch (err) {
        // The job master may still be starting, or may not have noticed our predecessor's death yet.
        const retryable = err instanceof JobMasterUnreachableError || err instanceof DuplicateWorkerError;
        if (!retryable || Date.now() > deadline) throw err;
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  }

  /**
   * Starts heartbeats and the event stream on their own thread; call after register(). Resolves once
   * the event stream is followed (so the program misses no peer's failure) or the worker must stop.
   * `programMarker` (ProgramTree) lets that thread end the program itself when the main thread cannot.
   * `onThread`: false when no program code runs on this thread (a command worker). `health`: worker.health,
   * checked where the heartbeats go.
   */
  start(programMarker: string, onThread = true, health?: HealthCheckData): Promise<void> {
    const reg = this.registration!;
    const data: WatchData = {
      url: this.client.url,
      headers: { authorization: `Bearer ${this.token}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
      workerId: this.workerId,
      session: reg.session,
      numWorkers: this.numWorkers,
      heartbeatIntervalMs: reg.heartbeatIntervalMs,
      heartbeatTimeoutMs: reg.heartbeatTimeoutMs,
      jobMasterRecoveryMs: reg.jobMasterRecoveryMs ?? 0,
      terminalStates: TERMINAL_JOB_STATES,
    };
    const following = new Promise<void>((resolve) => {
      this.following = resolve;
      this.once('stop', () => resolve());
    });
    if (!onThread) {
      this.watch = new JobMasterWatch(data, (m) => this.onWatchMessage(m));
      // Loaded only for a worker with a health check: every worker pays for what it imports at start.
      if (health) {
        void import('./health-check.js').then(({ HealthChecker }) => {
          if (!this.stopped) this.health = new HealthChecker(health, (reason) => this.emit('unhealthy', reason));
        });
      }
      return following;
    }
    const threadData: HeartbeatThreadData = { ...data, marker: programMarker, mainThreadAnswerMs: MAIN_THREAD_ANSWER_MS, health };
    const thread = new Worker(HEARTBEAT_THREAD, { workerData: threadData });
    thread.unref();
    thread.on('message', (m: ThreadMessage) => this.onWatchMessage(m));
    thread.once('error', (err) => this.stop(`the heartbeat thread failed: ${err.message}`, false));
    this.thread = thread;
    return following;
  }

  close(): void {
    this.stopped = true;
    void this.thread?.terminate();
    this.watch?.close();
    this.health?.stop();
  }

  private onWatchMessage(m: ThreadMessage): void {
    if (m.type === 'unhealthy') {
      // Answer first, as for a stop: this thread is alive and ends the program itself.
      this.thread?.postMessage({ type: 'stopping' } satisfies MainMessage);
      if (!this.stopped) this.emit('unhealthy', m.reason);
    } else if (m.type === 'following') {
      this.following();
    } else if (m.type === 'size') {
      this.numWorkers = m.numWorkers;
      this.emit('scaled', m.numWorkers, m.previous);
    } else if (m.type === 'workerFailed') {
      this.emit('workerFailed', m.workerId, m.message);
    } else {
      // Answer first: this thread is alive and ends the program itself.
      this.thread?.postMessage({ type: 'stopping' } satisfies MainMessage);
      this.stop(m.reason, m.lost);
    }
  }

  private stop(reason: string, lost: boolean): void {
    if (this.stopped) return;
    this.stopped = true;
    this.emit('stop', reason, lost);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

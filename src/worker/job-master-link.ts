import { EventEmitter } from 'node:events';
import { AuthenticationError, DuplicateWorkerError, JobMasterUnreachableError, Twister2Error } from '../errors.js';
import { JobMasterClient } from '../protocol/jobmaster-client.js';
import { TERMINAL_JOB_STATES, type JobEvent, type RegisterRequest, type RegisterResponse } from '../protocol/messages.js';

export interface LinkEvents {
  scaled: [numWorkers: number, previous: number];
  workerFailed: [workerId: number, message: string];
  /** The worker must stop: the job ended, this worker was removed, or the job master is gone. */
  stop: [reason: string, lost: boolean];
}

/**
 * A worker's connection to its job master: registration (with retries while the job master starts),
 * heartbeats, the event stream, and detection of a lost job master. A job master unreachable for half
 * the heartbeat timeout is taken as gone, so workers are gone well within the heartbeat timeout.
 */
export class JobMasterLink extends EventEmitter<LinkEvents> {
  readonly client: JobMasterClient;
  registration: RegisterResponse | undefined;
  numWorkers = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private unreachableSince: number | undefined;
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    url: string,
    token: string,
    private readonly workerId: number,
  ) {
    super();
    this.client = new JobMasterClient({ url, token });
  }

  async register(req: RegisterRequest, deadlineMs: number): Promise<RegisterResponse> {
    const deadline = Date.now() + deadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        this.registration = await this.client.register(req);
        this.numWorkers = this.registration.numWorkers;
        return this.registration;
      } catch (err) {
        // The job master may still be starting, or may not have noticed our predecessor's death yet.
        const retryable = err instanceof JobMasterUnreachableError || err instanceof DuplicateWorkerError;
        if (!retryable || Date.now() > deadline) throw err;
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  }

  /** Starts heartbeats and the event stream; call after register(). */
  start(): void {
    const reg = this.registration!;
    this.heartbeatTimer = setInterval(() => void this.beat(), reg.heartbeatIntervalMs);
    void this.followEvents();
  }

  close(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.abort.abort();
  }

  private async beat(): Promise<void> {
    const reg = this.registration!;
    try {
      const r = await this.client.heartbeat(this.workerId, reg.session);
      this.reachable();
      this.setSize(r.numWorkers);
      if (TERMINAL_JOB_STATES.includes(r.jobState)) this.stop(`the job ended (${r.jobState})`, false);
    } catch (err) {
      if (err instanceof JobMasterUnreachableError) return this.unreachable(err.message);
      // A refused session means the job master replaced or removed this worker: it must not go on.
      if (err instanceof Twister2Error) this.stop(`the job master no longer accepts this worker: ${err.message}`, false);
    }
  }

  private async followEvents(): Promise<void> {
    while (!this.stopped) {
      try {
        for await (const e of this.client.events(this.abort.signal)) {
          this.reachable();
          this.onEvent(e);
        }
        if (!this.stopped) this.unreachable('the job master closed the event stream');
      } catch (err) {
        if (err instanceof AuthenticationError) this.stop(`the job master refused this worker: ${err.message}`, false);
        else this.unreachable((err as Error).message);
      }
      if (!this.stopped) await sleep(250);
    }
  }

  private onEvent(e: JobEvent): void {
    if (e.type === 'snapshot') this.setSize(e.status.numWorkers);
    else if (e.type === 'scaled') this.setSize(e.to);
    else if (e.type === 'job-state' && TERMINAL_JOB_STATES.includes(e.state)) this.stop(`the job ended (${e.state})`, false);
    else if (e.type === 'worker-state' && e.workerId === this.workerId && e.state === 'REMOVED') this.stop('this worker was removed by scaling', false);
    else if (e.type === 'worker-state' && e.state === 'FAILED' && e.workerId !== this.workerId) this.emit('workerFailed', e.workerId, e.message ?? 'failed');
  }

  private setSize(n: number): void {
    if (n === this.numWorkers) return;
    const previous = this.numWorkers;
    this.numWorkers = n;
    this.emit('scaled', n, previous);
  }

  private reachable(): void {
    this.unreachableSince = undefined;
  }

  private unreachable(why: string): void {
    const now = Date.now();
    this.unreachableSince ??= now;
    const grace = this.registration!.heartbeatTimeoutMs / 2;
    if (now - this.unreachableSince >= grace) this.stop(`lost the job master (${why})`, true);
  }

  private stop(reason: string, lost: boolean): void {
    if (this.stopped) return;
    this.close();
    this.emit('stop', reason, lost);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

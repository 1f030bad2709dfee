import { Channel, ChannelRefusedError } from '../protocol/channel.js';
import { httpCall, jsonOf, openStream, serverSentData } from '../protocol/http-call.js';

/**
 * A worker's heartbeats, the job's events, and detection of a lost job master. Heartbeats and events go
 * over a channel of its own (protocol 2), or as HTTP requests and an event stream to a job master that
 * does not upgrade. It runs on the heartbeat thread for a module worker (whose program may keep the main
 * thread busy) and on the main thread for a command worker (whose program is another process). Imports
 * as little as possible (node's http, no validation library): it starts with every worker.
 */

export interface WatchData {
  url: string;
  /** Authorization and protocol version, as the main thread's client sends them. */
  headers: Record<string, string>;
  workerId: number;
  session: string;
  numWorkers: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** How long a lost job master may take to come back (0: it is not restarted). */
  jobMasterRecoveryMs: number;
  terminalStates: readonly string[];
}

export type WatchMessage =
  /** The event stream is connected (its snapshot arrived): no event from now on is missed. */
  | { type: 'following' }
  | { type: 'size'; numWorkers: number; previous: number }
  | { type: 'workerFailed'; workerId: number; message: string }
  | { type: 'stop'; reason: string; lost: boolean };

interface WireEvent {
  type?: string;
  status?: { numWorkers?: unknown };
  to?: unknown;
  state?: string;
  workerId?: unknown;
  message?: string;
}

type HeartbeatAnswer = { numWorkers?: unknown; jobState?: string } | undefined;

export class JobMasterWatch {
  private readonly abort = new AbortController();
  private stopped = false;
  private unreachableSince: number | undefined;
  private numWorkers: number;
  /** Resolves when the channel's connection is gone: the events it carried stop with it. */
  private disconnected: (() => void) | undefined;
  private readonly channel: Channel;
  /** The job master refused the channel (not the secret): HTTP from now on. */
  private overHttp = false;
  private readonly heartbeatTimer: NodeJS.Timeout;

  constructor(
    private readonly d: WatchData,
    private readonly tell: (m: WatchMessage) => void,
  ) {
    this.numWorkers = d.numWorkers;
    this.channel = new Channel(d.url, d.headers, {
      onEvent: (e) => {
        this.reachable();
        try {
          this.onEvent(e as WireEvent);
        } catch {
          // An event this worker does not understand is skipped, as the protocol allows.
        }
      },
      onDisconnect: () => this.disconnected?.(),
    });
    this.heartbeatTimer = setInterval(() => void this.beat(), d.heartbeatIntervalMs);
    void this.followEvents();
  }

  /** Stops heartbeats and events without a word (the worker is ending on its own). */
  close(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.abort.abort();
    this.channel.close();
  }

  private async beat(): Promise<void> {
    if (this.overHttp) return this.beatOverHttp();
    let answer;
    try {
      answer = await this.channel.call('heartbeat', { workerId: this.d.workerId, session: this.d.session }, { timeoutMs: 5000 });
    } catch (err) {
      if (this.refused(err)) return this.overHttp ? this.beatOverHttp() : undefined;
      return this.unreachable(`cannot reach the job master at ${this.d.url}: ${(err as Error).message}`);
    }
    if (answer.error) return this.stop(`the job master no longer accepts this worker: ${answer.error.message}`, false);
    this.heard(answer.result as HeartbeatAnswer);
  }

  /** A refused channel: stops on a refused secret, else switches to HTTP. False for any other error. */
  private refused(err: unknown): boolean {
    if (!(err instanceof ChannelRefusedError)) return false;
    if (err.status === 401) this.stop('the job master refused this worker: the job master refused the job secret', false);
    else this.overHttp = true;
    return true;
  }

  private heard(body: HeartbeatAnswer): void {
    this.reachable();
    if (typeof body?.numWorkers === 'number') this.setSize(body.numWorkers);
    if (body?.jobState && this.d.terminalStates.includes(body.jobState)) this.stop(`the job ended (${body.jobState})`, false);
  }

  private async beatOverHttp(): Promise<void> {
    let status: number;
    let body: { numWorkers?: unknown; jobState?: string; error?: { message?: string } } | undefined;
    try {
      const res = await httpCall(`${this.d.url}/v1/workers/${this.d.workerId}/heartbeat`, { method: 'POST', headers: this.d.headers, body: { session: this.d.session }, timeoutMs: 5000 });
      status = res.status;
      body = jsonOf(res.text) as typeof body;
    } catch (err) {
      return this.unreachable(`cannot reach the job master at ${this.d.url}: ${(err as Error).message}`);
    }
    // A refused session means the job master replaced or removed this worker: it must not go on.
    if (status >= 400) return this.stop(`the job master no longer accepts this worker: ${body?.error?.message ?? `HTTP ${status}`}`, false);
    this.heard(body);
  }

  private async followEvents(): Promise<void> {
    while (!this.stopped) {
      if (this.overHttp) await this.followOverHttp();
      else {
        try {
          const gone = new Promise<void>((resolve) => (this.disconnected = resolve));
          const answer = await this.channel.call('follow', {}, { timeoutMs: 5000 });
          if (answer.error) throw new Error(answer.error.message);
          await gone;
          if (!this.stopped) this.unreachable('the job master closed the event stream');
        } catch (err) {
          if (this.refused(err)) continue;
          if (!this.stopped) this.unreachable(`lost the event stream of the job master at ${this.d.url}: ${(err as Error).message}`);
        }
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async followOverHttp(): Promise<void> {
    try {
      const res = await openStream(`${this.d.url}/v1/events`, { headers: this.d.headers, signal: this.abort.signal });
      if (res.statusCode === 401) return this.stop('the job master refused this worker: the job master refused the job secret', false);
      if (res.statusCode === 200) await this.readEvents(res);
      else res.resume();
      if (!this.stopped) this.unreachable('the job master closed the event stream');
    } catch (err) {
      if (!this.stopped) this.unreachable(`lost the event stream of the job master at ${this.d.url}: ${(err as Error).message}`);
    }
  }

  private async readEvents(body: AsyncIterable<Buffer>): Promise<void> {
    for await (const data of serverSentData(body)) {
      this.reachable();
      try {
        this.onEvent(JSON.parse(data) as WireEvent);
      } catch {
        // An event this worker does not understand is skipped, as the protocol allows.
      }
    }
  }

  private onEvent(e: WireEvent): void {
    if (e.type === 'snapshot') this.tell({ type: 'following' });
    if (e.type === 'snapshot' && typeof e.status?.numWorkers === 'number') this.setSize(e.status.numWorkers);
    else if (e.type === 'scaled' && typeof e.to === 'number') this.setSize(e.to);
    else if (e.type === 'job-state' && e.state && this.d.terminalStates.includes(e.state)) this.stop(`the job ended (${e.state})`, false);
    else if (e.type === 'worker-state' && e.workerId === this.d.workerId && e.state === 'REMOVED') this.stop('this worker was removed by scaling', false);
    else if (e.type === 'worker-state' && e.state === 'FAILED' && typeof e.workerId === 'number' && e.workerId !== this.d.workerId) {
      this.tell({ type: 'workerFailed', workerId: e.workerId, message: e.message ?? 'failed' });
    }
  }

  private setSize(n: number): void {
    if (n === this.numWorkers) return;
    const previous = this.numWorkers;
    this.numWorkers = n;
    this.tell({ type: 'size', numWorkers: n, previous });
  }

  private reachable(): void {
    this.unreachableSince = undefined;
  }

  /**
   * A job master unreachable for half the heartbeat timeout is gone (workers are gone well within the
   * timeout), unless it is restarted when lost: then it has the recovery time to come back.
   */
  private unreachable(why: string): void {
    const now = Date.now();
    this.unreachableSince ??= now;
    const patience = Math.max(this.d.heartbeatTimeoutMs / 2, this.d.jobMasterRecoveryMs);
    if (now - this.unreachableSince >= patience) this.stop(`lost the job master (${why})`, true);
  }

  private stop(reason: string, lost: boolean): void {
    if (this.stopped) return;
    this.close();
    this.tell({ type: 'stop', reason, lost });
  }
}

import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type https from 'node:https';
import { AuthenticationError, JobMasterUnreachableError, ProtocolError, Twister2Error, errorFromWire } from '../errors.js';
import { AnswerShapeError, answers } from './answer-guards.js';
import { Channel, ChannelRefusedError, type ChannelAnswer } from './channel.js';
import { httpCall, jsonOf, openStream, serverSentData } from './http-call.js';
import type { JobEvent, RegisterRequest } from './messages.js';
import { JOB_TOKEN_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION } from './wire.js';

export interface JobMasterClientOptions {
  url: string;
  token: string;
  /** Share one agent between many clients (the benchmark's simulated workers do). */
  agent?: http.Agent;
  /**
   * A job master behind an authenticating HTTPS proxy (the Kubernetes API server's service proxy): its
   * agent and headers (the proxy's own Authorization); the job secret then goes in JOB_TOKEN_HEADER.
   */
  proxy?: { agent: https.Agent; headers: Record<string, string> };
  /**
   * A worker's calls (register, heartbeat, barriers, discovery, ports, completion, setup failure) go over
   * one channel connection (protocol 2) instead of a request each; falls back to HTTP for a job master
   * that refuses the channel. Not through a proxy.
   */
  channel?: boolean;
}

/** A call that has a channel operation: its name and arguments. */
type ChannelCall = [op: string, args: unknown];

/** The typed client of the job master's wire protocol, used by workers, the CLI and the library. */
export class JobMasterClient {
  readonly url: string;
  private readonly headers: Record<string, string>;
  private channel: Channel | undefined;
  /**
   * How long a worker's calls wait for a lost job master to come back (the registration answer says;
   * 0: it is not restarted). Calls that may be sent again are, until then: heartbeats are the watch's business.
   */
  recoveryMs = 0;

  constructor(private readonly opts: JobMasterClientOptions) {
    this.url = opts.url.replace(/\/$/, '');
    this.headers = {
      ...(opts.proxy ? { ...opts.proxy.headers, [JOB_TOKEN_HEADER]: opts.token } : { authorization: `Bearer ${opts.token}` }),
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
    };
    if (opts.channel && !opts.proxy) this.channel = new Channel(this.url, this.headers);
  }

  /** Closes the channel connection, if any; calls still open fail. */
  close(): void {
    this.channel?.close();
  }

  status() {
    return this.call('GET', 'job', undefined, answers.status, { retries: 2 });
  }

  register(req: RegisterRequest) {
    return this.call('POST', 'workers', req, answers.register, { op: ['register', req] });
  }

  heartbeat(workerId: number, session: string) {
    return this.call('POST', `workers/${workerId}/heartbeat`, { session }, answers.heartbeat, { timeoutMs: 5000, op: ['heartbeat', { workerId, session }] });
  }

  async complete(workerId: number, session: string, ok: boolean, message?: string): Promise<void> {
    const body = { session, ok, ...(message ? { message } : {}) };
    await this.call('POST', `workers/${workerId}/complete`, body, undefined, { op: ['complete', { workerId, ...body }] });
  }

  /** A worker that could not even start (package, program) says why before it exits. */
  async setupFailed(workerId: number, message: string): Promise<void> {
    const body = { message: message.slice(0, 4000) };
    await this.call('POST', `workers/${workerId}/setup-failed`, body, undefined, { timeoutMs: 5000, op: ['setupFailed', { workerId, ...body }] });
  }

  /**
   * Long-polls until the barrier is released; the job master enforces the timeout and names who is
   * missing. An arrival lost to a reset connection is sent again: arriving twice is harmless.
   */
  barrier(name: string, workerId: number, session: string, timeoutMs?: number) {
    // One key for every sending of this arrival: an arrival resent after its barrier ended gets that answer.
    const key = randomBytes(9).toString('base64url');
    const body = { workerId, session, key, ...(timeoutMs ? { timeoutMs } : {}) };
    return this.call('POST', `barriers/${encodeURIComponent(name)}`, body, answers.barrier, { timeoutMs: 0, retries: 3, op: ['barrier', { name, ...body }] });
  }

  /** Publishes ports this worker opened; peers see them in discovery. */
  publishPorts(workerId: number, session: string, ports: Record<string, number>) {
    return this.call('POST', `workers/${workerId}/ports`, { session, ports }, answers.workerInfo, { op: ['ports', { workerId, session, ports }] });
  }

  /** A worker's message to the driver. `id` names it: sent again after a lost answer, it is kept once. */
  sendMessage(workerId: number, session: string, id: string, data: unknown) {
    const body = { session, id, data };
    return this.call('POST', `workers/${workerId}/messages`, body, answers.sent, { retries: 3, op: ['send', { workerId, ...body }] });
  }

  /** Acknowledges the driver's messages to this worker up to `ack`, and takes the next ones (waiting up to `timeoutMs` for one). */
  receiveMessages(workerId: number, session: string, opts: { ack?: number | undefined; max?: number; timeoutMs?: number }) {
    const body = { session, ...(opts.ack ? { ack: opts.ack } : {}), ...(opts.max !== undefined ? { max: opts.max } : {}), timeoutMs: opts.timeoutMs ?? 0 };
    return this.call('POST', `workers/${workerId}/inbox`, body, answers.received, { timeoutMs: body.timeoutMs + 15_000, retries: 3, op: ['receive', { workerId, ...body }] });
  }

  workers(opts: { waitForAll?: boolean; timeoutMs?: number } = {}) {
    const q = opts.waitForAll ? `?wait=all${opts.timeoutMs ? `&timeoutMs=${opts.timeoutMs}` : ''}` : '';
    const args = { ...(opts.waitForAll ? { waitForAll: true } : {}), ...(opts.waitForAll && opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) };
    return this.call('GET', `workers${q}`, undefined, answers.workerList, { timeoutMs: opts.waitForAll ? 0 : undefined, op: ['workers', args] });
  }

  scale(workers: number) {
    return this.call('POST', 'job/scale', { workers }, answers.status);
  }

  kill(reason?: string) {
    return this.call('POST', 'job/kill', reason ? { reason } : {}, answers.status);
  }

  /** Follows the job's event stream until it closes or `signal` aborts. A snapshot comes first. */
  async *events(signal?: AbortSignal): AsyncGenerator<JobEvent> {
    try {
      const res = await openStream(`${this.url}/v1/events`, { headers: this.headers, agent: this.agent(), signal });
      if (res.statusCode === 401) {
        res.resume();
        throw new AuthenticationError('the job master refused the job secret');
      }
      for await (const data of serverSentData(res)) {
        let event: JobEvent;
        try {
          event = answers.event(JSON.parse(data));
        } catch {
          continue; // an event this client does not understand is skipped, as the protocol allows
        }
        yield event;
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof AuthenticationError) throw err;
      throw new JobMasterUnreachableError(`lost the event stream of the job master at ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  private agent(): http.Agent | https.Agent | undefined {
    return this.opts.proxy ? this.opts.proxy.agent : this.opts.agent;
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    guard: ((json: unknown) => T) | undefined,
    opts: { timeoutMs?: number | undefined; retries?: number; op?: ChannelCall } = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const resendable = opts.op !== undefined && opts.op[0] !== 'heartbeat' && opts.op[0] !== 'register';
    // A restarting job master refuses connections for a while: 200 ms apart (1 s over HTTP), until it is back.
    const retries = (opts.retries ?? 0) + (resendable ? Math.ceil(this.recoveryMs / 200) : 0);
    if (this.channel && opts.op) {
      const answer = await this.overChannel(this.channel, opts.op, timeoutMs, retries);
      if (answer) return this.answerOf(answer.result, method, path, guard);
    }
    let attempt = 0;
    for (;;) {
      let res;
      try {
        res = await httpCall(`${this.url}/v1/${path}`, { method, headers: this.headers, body, timeoutMs, agent: this.agent() });
      } catch (err) {
        if (attempt++ < retries) {
          await new Promise((r) => setTimeout(r, Math.min(1000, 200 * attempt)));
          continue;
        }
        throw new JobMasterUnreachableError(`cannot reach the job master at ${this.url}: ${(err as Error).message}`, { cause: err });
      }
      const json = res.text ? jsonOf(res.text) : undefined;
      if (res.status >= 400) {
        const e = answers.error(json);
        if (e) throw errorFromWire(e.code, e.message);
        // Not the job master's own answer (a proxy's, say): what it said is the clue.
        const said = res.text.trim().replace(/\s+/g, ' ').slice(0, 300);
        throw new ProtocolError(`job master answered ${res.status} to ${method} ${path}${said ? `: ${said}` : ''}`);
      }
      return this.answerOf(json, method, path, guard);
    }
  }

  /** The channel's answer; undefined when the job master refused the channel (HTTP from now on). */
  private async overChannel(channel: Channel, [op, args]: ChannelCall, timeoutMs: number, retries: number): Promise<ChannelAnswer | undefined> {
    try {
      const answer = await channel.call(op, args, { timeoutMs, retries });
      if (answer.error) throw errorFromWire(answer.error.code, answer.error.message);
      return answer;
    } catch (err) {
      if (err instanceof ChannelRefusedError) {
        // A refusal of the caller (a wrong secret, another protocol version) holds for HTTP too.
        const e = answers.error(jsonOf(err.body));
        if (e && (err.status === 401 || err.status === 403 || e.code === 'T2_PROTOCOL' && err.status === 400)) throw errorFromWire(e.code, e.message);
        this.channel = undefined;
        return undefined;
      }
      if (Twister2Error.is(err)) throw err;
      throw new JobMasterUnreachableError(`cannot reach the job master at ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  private answerOf<T>(json: unknown, method: string, path: string, guard: ((json: unknown) => T) | undefined): T {
    if (!guard) return undefined as T;
    try {
      return guard(json);
    } catch (err) {
      if (err instanceof AnswerShapeError) throw new ProtocolError(`unexpected answer to ${method} ${path}: ${err.message}`);
      throw err;
    }
  }
}

import type http from 'node:http';
import type https from 'node:https';
import { AuthenticationError, JobMasterUnreachableError, ProtocolError, errorFromWire } from '../errors.js';
import { AnswerShapeError, answers } from './answer-guards.js';
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
}

/** The typed client of the job master's wire protocol, used by workers, the CLI and the library. */
export class JobMasterClient {
  readonly url: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: JobMasterClientOptions) {
    this.url = opts.url.replace(/\/$/, '');
    this.headers = {
      ...(opts.proxy ? { ...opts.proxy.headers, [JOB_TOKEN_HEADER]: opts.token } : { authorization: `Bearer ${opts.token}` }),
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
    };
  }

  status() {
    return this.call('GET', 'job', undefined, answers.status, { retries: 2 });
  }

  register(req: RegisterRequest) {
    return this.call('POST', 'workers', req, answers.register);
  }

  heartbeat(workerId: number, session: string) {
    return this.call('POST', `workers/${workerId}/heartbeat`, { session }, answers.heartbeat, { timeoutMs: 5000 });
  }

  async complete(workerId: number, session: string, ok: boolean, message?: string): Promise<void> {
    await this.call('POST', `workers/${workerId}/complete`, { session, ok, ...(message ? { message } : {}) }, undefined);
  }

  /** A worker that could not even start (package, program) says why before it exits. */
  async setupFailed(workerId: number, message: string): Promise<void> {
    await this.call('POST', `workers/${workerId}/setup-failed`, { message: message.slice(0, 4000) }, undefined, { timeoutMs: 5000 });
  }

  /**
   * Long-polls until the barrier is released; the job master enforces the timeout and names who is
   * missing. An arrival lost to a reset connection is sent again: arriving twice is harmless.
   */
  barrier(name: string, workerId: number, session: string, timeoutMs?: number) {
    const body = { workerId, session, ...(timeoutMs ? { timeoutMs } : {}) };
    return this.call('POST', `barriers/${encodeURIComponent(name)}`, body, answers.barrier, { timeoutMs: 0, retries: 3 });
  }

  /** Publishes ports this worker opened; peers see them in discovery. */
  publishPorts(workerId: number, session: string, ports: Record<string, number>) {
    return this.call('POST', `workers/${workerId}/ports`, { session, ports }, answers.workerInfo);
  }

  workers(opts: { waitForAll?: boolean; timeoutMs?: number } = {}) {
    const q = opts.waitForAll ? `?wait=all${opts.timeoutMs ? `&timeoutMs=${opts.timeoutMs}` : ''}` : '';
    return this.call('GET', `workers${q}`, undefined, answers.workerList, { timeoutMs: opts.waitForAll ? 0 : undefined });
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
    opts: { timeoutMs?: number | undefined; retries?: number } = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    let attempt = 0;
    for (;;) {
      let res;
      try {
        res = await httpCall(`${this.url}/v1/${path}`, { method, headers: this.headers, body, timeoutMs, agent: this.agent() });
      } catch (err) {
        if (attempt++ < (opts.retries ?? 0)) {
          await new Promise((r) => setTimeout(r, 200 * attempt));
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
      if (!guard) return undefined as T;
      try {
        return guard(json);
      } catch (err) {
        if (err instanceof AnswerShapeError) throw new ProtocolError(`unexpected answer to ${method} ${path}: ${err.message}`);
        throw err;
      }
    }
  }
}

import http from 'node:http';
import type https from 'node:https';
import { createParser } from 'eventsource-parser';
import got, { type Got } from 'got';
import type { z } from 'zod';
import { AuthenticationError, JobMasterUnreachableError, ProtocolError, errorFromWire } from '../errors.js';
import {
  BarrierResponseSchema,
  ErrorResponseSchema,
  HeartbeatResponseSchema,
  JobEventSchema,
  JobStatusSchema,
  JOB_TOKEN_HEADER,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  RegisterResponseSchema,
  WorkerInfoSchema,
  WorkerListSchema,
  type JobEvent,
  type RegisterRequest,
} from './messages.js';

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

const sharedAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** The typed client of the job master's wire protocol, used by workers, the CLI and the library. */
export class JobMasterClient {
  readonly url: string;
  private readonly http: Got;

  constructor(private readonly opts: JobMasterClientOptions) {
    this.url = opts.url.replace(/\/$/, '');
    this.http = got.extend({
      prefixUrl: `${this.url}/v1`,
      headers: {
        ...(opts.proxy ? { ...opts.proxy.headers, [JOB_TOKEN_HEADER]: opts.token } : { authorization: `Bearer ${opts.token}` }),
        [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
      },
      agent: { http: opts.agent ?? sharedAgent, ...(opts.proxy ? { https: opts.proxy.agent } : {}) },
      throwHttpErrors: false,
      retry: { limit: 0 },
      responseType: 'text',
    });
  }

  status() {
    return this.call('GET', 'job', undefined, JobStatusSchema, { retries: 2 });
  }

  register(req: RegisterRequest) {
    return this.call('POST', 'workers', req, RegisterResponseSchema);
  }

  heartbeat(workerId: number, session: string) {
    return this.call('POST', `workers/${workerId}/heartbeat`, { session }, HeartbeatResponseSchema, { timeoutMs: 5000 });
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
    return this.call('POST', `barriers/${encodeURIComponent(name)}`, body, BarrierResponseSchema, { timeoutMs: 0, retries: 3 });
  }

  /** Publishes ports this worker opened; peers see them in discovery. */
  publishPorts(workerId: number, session: string, ports: Record<string, number>) {
    return this.call('POST', `workers/${workerId}/ports`, { session, ports }, WorkerInfoSchema);
  }

  workers(opts: { waitForAll?: boolean; timeoutMs?: number } = {}) {
    const q = opts.waitForAll ? `?wait=all${opts.timeoutMs ? `&timeoutMs=${opts.timeoutMs}` : ''}` : '';
    return this.call('GET', `workers${q}`, undefined, WorkerListSchema, { timeoutMs: opts.waitForAll ? 0 : undefined });
  }

  scale(workers: number) {
    return this.call('POST', 'job/scale', { workers }, JobStatusSchema);
  }

  kill(reason?: string) {
    return this.call('POST', 'job/kill', reason ? { reason } : {}, JobStatusSchema);
  }

  /** Follows the job's event stream until it closes or `signal` aborts. A snapshot comes first. */
  async *events(signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const stream = this.http.stream('events', { signal, timeout: {} } as never);
    const queue: JobEvent[] = [];
    const parser = createParser({
      onEvent: (msg) => {
        const parsed = JobEventSchema.safeParse(JSON.parse(msg.data));
        if (parsed.success) queue.push(parsed.data);
      },
    });
    let status = 0;
    stream.on('response', (r: http.IncomingMessage) => (status = r.statusCode ?? 0));
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (status === 401) throw new AuthenticationError('the job master refused the job secret');
        parser.feed(chunk.toString('utf8'));
        while (queue.length) yield queue.shift()!;
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof AuthenticationError) throw err;
      throw new JobMasterUnreachableError(`lost the event stream of the job master at ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async call<S extends z.ZodType>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    schema: S | undefined,
    opts: { timeoutMs?: number | undefined; retries?: number } = {},
  ): Promise<z.infer<S>> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    let attempt = 0;
    for (;;) {
      let res;
      try {
        res = await this.http(path, {
          method,
          ...(body === undefined ? {} : { json: body }),
          timeout: timeoutMs > 0 ? { request: timeoutMs } : {},
        });
      } catch (err) {
        if (attempt++ < (opts.retries ?? 0)) {
          await new Promise((r) => setTimeout(r, 200 * attempt));
          continue;
        }
        throw new JobMasterUnreachableError(`cannot reach the job master at ${this.url}: ${(err as Error).message}`, { cause: err });
      }
      const json = res.body ? safeJson(res.body) : undefined;
      if (res.statusCode >= 400) {
        const e = ErrorResponseSchema.safeParse(json);
        if (e.success) throw errorFromWire(e.data.error.code, e.data.error.message);
        // Not the job master's own answer (a proxy's, say): what it said is the clue.
        const said = res.body.trim().replace(/\s+/g, ' ').slice(0, 300);
        throw new ProtocolError(`job master answered ${res.statusCode} to ${method} ${path}${said ? `: ${said}` : ''}`);
      }
      if (!schema) return undefined as z.infer<S>;
      const parsed = schema.safeParse(json);
      if (!parsed.success) throw new ProtocolError(`unexpected answer to ${method} ${path}: ${parsed.error.issues[0]?.message}`);
      return parsed.data;
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

import { timingSafeEqual, createHash } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { workerTokenOf } from '../job/worker-environment.js';
import {
  BarrierRequestSchema,
  CompleteRequestSchema,
  KillRequestSchema,
  PublishPortsRequestSchema,
  JOB_TOKEN_HEADER,
  ReceiveRequestSchema,
  SendMessageRequestSchema,
  PROTOCOL_HEADER,
  RegisterRequestSchema,
  ScaleRequestSchema,
  SessionRequestSchema,
  SetupFailedRequestSchema,
  type JobEvent,
} from '../protocol/messages.js';
import { CHANNEL_UPGRADE, SUPPORTED_PROTOCOL_VERSIONS } from '../protocol/wire.js';
import { ChannelConnection } from './channel-connection.js';
import type { JobMaster } from './job-master.js';
import { HttpError, checked, toHttpError } from './wire-errors.js';

const MAX_BODY = 1 << 20;
/** The longest delay a Node timer can hold. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Who presented a valid token: the client (the job's admin secret) or a worker (the worker token derived from it). */
export type Caller = 'admin' | 'worker';

/**
 * Exposes a JobMaster over the v1 wire protocol (docs/protocol.md). Every route needs a token: the job's
 * admin secret opens every route, the worker token only what a worker does (register, heartbeat,
 * discovery, barriers, completion, ports, messages with the driver, the event stream); scale, kill and the job's status answer a
 * worker token with 403.
 */
export class JobMasterServer {
  private readonly server: http.Server;
  private readonly adminDigest: Buffer;
  private readonly workerDigest: Buffer;
  private readonly streams = new Set<http.ServerResponse>();
  private readonly channels = new Set<ChannelConnection>();
  /** Channels that follow the job's events. */
  private readonly followers = new Set<(line: string) => void>();
  private seq = 0;

  constructor(
    private readonly jm: JobMaster,
    token: string,
    /** Called for each authenticated request; `proxied` when the secret came in JOB_TOKEN_HEADER (a client through a proxy). */
    private readonly onRequest?: (r: { proxied: boolean; caller: Caller }) => void,
  ) {
    this.adminDigest = digest(token);
    this.workerDigest = digest(workerTokenOf(token));
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    // Barriers and discovery are long polls; only the request itself must arrive promptly.
    this.server.requestTimeout = 60_000;
    this.server.keepAliveTimeout = 30_000;
    this.server.maxConnections = 100_000;
    jm.on('event', (e) => this.broadcast(e));
  }

  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, 4096, () => resolve()); // a large backlog: thousands of workers connect at once
    });
    const addr = this.server.address() as AddressInfo;
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${h}:${addr.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.end();
    // Upgraded connections are no longer the HTTP server's: closeAllConnections does not reach them.
    for (const c of this.channels) c.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const caller = this.authenticate(req);
      const url = new URL(req.url ?? '/', 'http://jm');
      const result = await this.jm.afterDurable(this.route(req, res, url, caller));
      if (result !== undefined) send(res, 200, result);
    } catch (err) {
      const e = toHttpError(err);
      if (!res.headersSent) send(res, e.status, { error: { code: e.code, message: e.message } });
      else res.end();
    }
  }

  private authenticate(req: http.IncomingMessage): Caller {
    const auth = req.headers.authorization ?? '';
    const header = req.headers[JOB_TOKEN_HEADER];
    const token = typeof header === 'string' ? header : auth.startsWith('Bearer ') ? auth.slice(7) : '';
    // Compare digests, with both tokens every time, so the comparison takes the same time whatever the token.
    const presented = digest(token);
    const admin = timingSafeEqual(presented, this.adminDigest);
    const worker = timingSafeEqual(presented, this.workerDigest);
    if (!token || (!admin && !worker)) {
      throw new HttpError(401, 'T2_UNAUTHENTICATED', `missing or wrong job secret (Authorization: Bearer <token>, or ${JOB_TOKEN_HEADER}: <token>)`);
    }
    const caller: Caller = admin ? 'admin' : 'worker';
    this.onRequest?.({ proxied: typeof header === 'string', caller });
    const version = req.headers[PROTOCOL_HEADER];
    if (version !== undefined && (typeof version !== 'string' || !SUPPORTED_PROTOCOL_VERSIONS.includes(version))) {
      throw new HttpError(400, 'T2_PROTOCOL', `protocol version ${String(version)} is not supported; this job master speaks ${SUPPORTED_PROTOCOL_VERSIONS.join(' and ')}`);
    }
    return caller;
  }

  /** GET /v1/channel with `Upgrade: twister2-channel`: the rest of the connection is the channel. */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    try {
      this.authenticate(req);
      const path = new URL(req.url ?? '/', 'http://jm').pathname.replace(/\/+$/, '');
      if (req.method !== 'GET' || path !== '/v1/channel') throw new HttpError(404, 'T2_PROTOCOL', `no upgrade at ${req.method} ${path}`);
      if (req.headers.upgrade?.toLowerCase() !== CHANNEL_UPGRADE) {
        throw new HttpError(400, 'T2_PROTOCOL', `the channel upgrades to "${CHANNEL_UPGRADE}", not "${req.headers.upgrade ?? ''}"`);
      }
    } catch (err) {
      const e = toHttpError(err);
      const body = JSON.stringify({ error: { code: e.code, message: e.message } });
      socket.end(`HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    (socket as Socket).setNoDelay?.(true);
    // Corked until the frames that came with the request (a registration) are answered: one write for both.
    socket.cork();
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${CHANNEL_UPGRADE}\r\nconnection: Upgrade\r\n\r\n`);
    const channel: ChannelConnection = new ChannelConnection(this.jm, socket, head, {
      follow: (push) => {
        push(eventLine(++this.seq, { type: 'snapshot', status: this.jm.status() }));
        this.followers.add(push);
        return () => this.followers.delete(push);
      },
      closed: () => this.channels.delete(channel),
    });
    this.channels.add(channel);
    socket.uncork();
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, caller: Caller): Promise<unknown> {
    const { method } = req;
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'v1') throw new HttpError(404, 'T2_PROTOCOL', `no such route: ${url.pathname}`);
    const [, a, b, c] = parts;
    // Only /v1/workers/{id}/{action} has four segments; extra segments are never ignored.
    if (parts.length > 4 || (parts.length === 4 && a !== 'workers')) throw new HttpError(404, 'T2_PROTOCOL', `no such route: ${method} ${url.pathname}`);
    // Everything under /v1/job is the client's: a worker may not scale or kill its job, nor read its status.
    if (a === 'job' && caller !== 'admin') {
      throw new HttpError(403, 'T2_FORBIDDEN', `${method} ${url.pathname} needs the job's admin secret; the worker token may only register, heartbeat, discover, pass barriers, publish ports, exchange messages with the driver and report`);
    }
    if (a === 'job' && !b && method === 'GET') return this.jm.status();
    if (a === 'job' && b === 'scale' && method === 'POST') {
      const body = await readBody(req, ScaleRequestSchema);
      await this.jm.scale(body.workers);
      return this.jm.status();
    }
    if (a === 'job' && b === 'kill' && method === 'POST') {
      const body = await readBody(req, KillRequestSchema);
      this.jm.kill(body.reason);
      return this.jm.status();
    }
    if (a === 'events' && method === 'GET') return this.openStream(res);
    if (a === 'workers' && !b && method === 'POST') return this.jm.register(await readBody(req, RegisterRequestSchema));
    if (a === 'workers' && !b && method === 'GET') {
      if (url.searchParams.get('wait') !== 'all') return this.jm.listWorkers();
      const raw = url.searchParams.get('timeoutMs');
      const timeoutMs = raw === null ? this.jm.spec.timeouts.registration : Number(raw);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMER_MS) {
        throw new HttpError(400, 'T2_PROTOCOL', `timeoutMs must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`);
      }
      return this.jm.waitForAll(timeoutMs);
    }
    if (a === 'workers' && b && method === 'POST') {
      const id = parseId(b);
      if (c === 'heartbeat') return this.jm.heartbeat(id, (await readBody(req, SessionRequestSchema)).session);
      if (c === 'setup-failed') {
        this.jm.setupFailed(id, (await readBody(req, SetupFailedRequestSchema)).message);
        return { ok: true };
      }
      if (c === 'ports') {
        const body = await readBody(req, PublishPortsRequestSchema);
        return this.jm.publishPorts(id, body.session, body.ports);
      }
      if (c === 'messages') {
        const body = await readBody(req, SendMessageRequestSchema);
        return this.jm.sendToDriver(id, body.session, body.id, body.data);
      }
      if (c === 'inbox') {
        const body = await readBody(req, ReceiveRequestSchema);
        return this.jm.receive(id, body.session, body.ack, body.max, body.timeoutMs);
      }
      if (c === 'complete') {
        const body = await readBody(req, CompleteRequestSchema);
        this.jm.complete(id, body.session, body.ok, body.message);
        return { ok: true };
      }
    }
    if (a === 'barriers' && b && method === 'POST') {
      const body = await readBody(req, BarrierRequestSchema);
      return this.jm.barrier(decodeName(b), body.workerId, body.session, body.timeoutMs, body.key);
    }
    throw new HttpError(404, 'T2_PROTOCOL', `no such route: ${method} ${url.pathname}`);
  }

  /** Server-Sent Events: a snapshot first, then every change. */
  private openStream(res: http.ServerResponse): undefined {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.flushHeaders();
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
    writeEvent(res, ++this.seq, { type: 'snapshot', status: this.jm.status() });
    return undefined;
  }

  private broadcast(e: JobEvent): void {
    const id = ++this.seq;
    for (const s of this.streams) writeEvent(s, id, e);
    if (this.followers.size === 0) return;
    const line = eventLine(id, e);
    for (const push of this.followers) push(line);
  }
}

/** An event on the channel: `{seq, event}`, no `id`, so it is never taken for an answer. */
function eventLine(seq: number, e: JobEvent): string {
  return `{"seq":${seq},"event":${JSON.stringify(e)}}\n`;
}

function writeEvent(res: http.ServerResponse, id: number, e: JobEvent): void {
  res.write(`id: ${id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function decodeName(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, 'T2_PROTOCOL', `"${s}" is not a valid URL-encoded barrier name`);
  }
}

function parseId(s: string): number {
  const id = Number(s);
  if (!Number.isInteger(id) || id < 0) throw new HttpError(400, 'T2_PROTOCOL', `"${s}" is not a worker ID`);
  return id;
}

async function readBody<S extends z.ZodType>(req: http.IncomingMessage, schema: S): Promise<z.infer<S>> {
  // Events rather than an async iterator: a few small bodies per worker, and the iterator's machinery
  // was a tenth of the job master's CPU per registration.
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, 'T2_PROTOCOL', `request body larger than ${MAX_BODY} bytes`));
      } else chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new HttpError(400, 'T2_PROTOCOL', 'request body is not valid JSON');
  }
  return checked(schema, json);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

import http from 'node:http';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { CHANNEL_UPGRADE } from './wire.js';

/**
 * The client end of the channel (protocol 2, docs/protocol.md): one connection for all of a worker's
 * calls, each a JSON line `{id, op, args}` answered by `{id, result}` or `{id, error}`. A call whose
 * connection breaks is sent again on the next one if it may be repeated (`retries`); the others fail.
 * Only node's http and net: every worker loads this.
 */

export interface ChannelAnswer {
  result?: unknown;
  error?: { code: string; message: string };
}

/** The job master answered the upgrade with something other than 101: an older one, or a proxy. */
export class ChannelRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`the job master refused the channel (HTTP ${status})`);
  }
}

interface Pending {
  frame: string;
  retriesLeft: number;
  resolve: (a: ChannelAnswer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export interface ChannelHooks {
  /** An event pushed after a `follow` call (a JobEvent, unchecked). */
  onEvent?: (event: unknown) => void;
  /** The connection closed or broke; a later call connects again (and must `follow` again). */
  onDisconnect?: () => void;
}

export class Channel {
  private socket: Socket | undefined;
  private connecting = false;
  /** The upgrade request on its way, if any. */
  private request: http.ClientRequest | undefined;
  /** Calls made while there is no connection; sent with the upgrade request that opens one. */
  private waiting: [number, Pending][] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly headers: Record<string, string>,
    private readonly hooks: ChannelHooks = {},
  ) {}

  /** Sends one call; resolves with its answer, or rejects when the connection is lost beyond its retries or `timeoutMs` passes. */
  call(op: string, args: unknown, opts: { timeoutMs?: number | undefined; retries?: number } = {}): Promise<ChannelAnswer> {
    const id = this.nextId++;
    const frame = JSON.stringify({ id, op, args }) + '\n';
    return new Promise((resolve, reject) => {
      const p: Pending = { frame, retriesLeft: opts.retries ?? 0, resolve, reject, timer: undefined };
      if (opts.timeoutMs && opts.timeoutMs > 0) {
        p.timer = setTimeout(() => this.settle(id)?.reject(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      }
      this.pending.set(id, p);
      this.send(id, p);
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.request?.destroy();
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new Error('the channel was closed'));
  }

  private send(id: number, p: Pending): void {
    if (this.socket) {
      this.socket.ref(); // an open call keeps the process alive, as an HTTP request would
      this.socket.write(p.frame);
      return;
    }
    this.waiting.push([id, p]);
    this.connect();
  }

  /**
   * Opens the channel, sending the calls waiting for it right behind the upgrade request: the job master
   * reads them as the channel's first frames, so a worker's registration takes one round trip, not two.
   */
  private connect(): void {
    if (this.connecting) return;
    const sent = this.waiting.filter(([id, p]) => this.pending.get(id) === p);
    this.waiting = [];
    if (this.closed) return sent.forEach(([id]) => this.settle(id)?.reject(new Error('the channel was closed')));
    this.connecting = true;
    const failed = (err: Error) => {
      this.connecting = false;
      this.request = undefined;
      const all = [...sent, ...this.waiting];
      this.waiting = [];
      for (const [id, p] of all) if (this.pending.get(id) === p) this.retryOrFail(id, p, err);
    };
    const req = http.request(`${this.url}/v1/channel`, { method: 'GET', headers: { ...this.headers, connection: 'Upgrade', upgrade: CHANNEL_UPGRADE }, agent: false });
    req.once('upgrade', (_res, socket: Socket, head: Buffer) => {
      socket.setNoDelay(true);
      const utf8 = new StringDecoder('utf8');
      socket.on('data', (chunk: Buffer) => this.onData(utf8.write(chunk)));
      socket.on('error', () => undefined); // 'close' follows
      socket.once('close', () => this.onClose(socket));
      this.socket = socket;
      this.connecting = false;
      this.request = undefined;
      const later = this.waiting; // calls made while the upgrade was on its way
      this.waiting = [];
      for (const [id, p] of later) if (this.pending.get(id) === p) socket.write(p.frame);
      if (this.pending.size === 0) socket.unref();
      if (head.length > 0) this.onData(utf8.write(head));
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => failed(new ChannelRefusedError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
    });
    req.once('error', failed);
    this.request = req;
    // A GET's body is neither chunked nor counted by node: these bytes follow the request's headers as they are.
    if (sent.length > 0) req.write(sent.map(([, p]) => p.frame).join(''));
    req.end();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let start = 0;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n', start)) {
      const line = this.buffered.slice(start, nl);
      start = nl + 1;
      this.onLine(line);
    }
    this.buffered = this.buffered.slice(start);
  }

  private onLine(line: string): void {
    let frame: { id?: unknown; result?: unknown; error?: { code: string; message: string }; event?: unknown };
    try {
      frame = JSON.parse(line) as typeof frame;
    } catch {
      return; // not ours to understand; the job master closes a channel it cannot frame
    }
    if (typeof frame.id === 'number') {
      const p = this.settle(frame.id);
      p?.resolve(frame.error ? { error: frame.error } : { result: frame.result });
    } else if (frame.event !== undefined) {
      this.hooks.onEvent?.(frame.event);
    } else if (frame.error) {
      this.socket?.destroy(new Error(frame.error.message)); // the job master closes the channel and says why
    }
  }

  /** The connection broke: calls that may be repeated go on the next one, the others fail. */
  private onClose(socket: Socket): void {
    if (this.socket === socket) this.socket = undefined;
    this.buffered = '';
    const cause = new Error('the connection to the job master was closed');
    for (const [id, p] of [...this.pending]) this.retryOrFail(id, p, cause);
    this.hooks.onDisconnect?.();
  }

  private retryOrFail(id: number, p: Pending, err: Error): void {
    // A refusal is the job master's answer, not a lost connection: the caller decides (HTTP, or an error).
    if (this.closed || p.retriesLeft <= 0 || err instanceof ChannelRefusedError) {
      this.settle(id)?.reject(err);
      return;
    }
    p.retriesLeft--;
    setTimeout(() => this.pending.get(id) === p && this.send(id, p), 200);
  }

  /** Removes a call from the open ones; the socket stops holding the process when none is left. */
  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.socket?.unref();
    return p;
  }
}

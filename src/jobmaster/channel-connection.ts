import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { ChannelArgsSchemas, ChannelFrameSchema, type ChannelOp } from '../protocol/messages.js';
import type { JobMaster } from './job-master.js';
import { HttpError, checked, toHttpError } from './wire-errors.js';

/** The longest frame (one line) accepted: the same limit as an HTTP request body. */
export const MAX_FRAME = 1 << 20;
/**
 * A peer that leaves this much of what it was sent unread (events it follows, answers to calls it keeps
 * making) is cut off, so that it cannot fill the job master's memory; a worker reconnects and follows again.
 */
const MAX_UNREAD = 8 << 20;

export interface ChannelHooks {
  /** Starts pushing event lines to `push`, a snapshot first; returns how to stop. */
  follow(push: (line: string) => void): () => void;
  /** Called once the connection is gone. */
  closed(): void;
}

/**
 * One worker's channel (protocol 2, docs/protocol.md): newline-delimited JSON frames `{id, op, args}`,
 * each answered by `{id, result}` or `{id, error: {code, message}}` when its call ends, so a barrier can
 * wait while later calls are answered. The job master's work per call is that of the HTTP route without
 * HTTP: that is what lets one job master keep up with 10,000 workers.
 */
export class ChannelConnection {
  private buffered = '';
  private open = true;
  private unfollow: (() => void) | undefined;

  constructor(
    private readonly jm: JobMaster,
    private readonly socket: Duplex,
    head: Buffer,
    private readonly hooks: ChannelHooks,
  ) {
    // Not setEncoding: node forbids it on a socket that came from its HTTP server.
    const utf8 = new StringDecoder('utf8');
    socket.on('data', (chunk: Buffer) => this.onData(utf8.write(chunk)));
    socket.on('error', () => undefined); // a worker that vanished: 'close' follows
    socket.once('close', () => this.onClose());
    if (head.length > 0) this.onData(utf8.write(head));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let start = 0;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0 && this.open; nl = this.buffered.indexOf('\n', start)) {
      const line = this.buffered.slice(start, nl);
      start = nl + 1;
      if (line.trim()) this.onFrame(line);
    }
    this.buffered = this.buffered.slice(start);
    if (this.buffered.length > MAX_FRAME) this.refuse(`a frame longer than ${MAX_FRAME} bytes`);
  }

  private onFrame(line: string): void {
    let frame;
    try {
      frame = checked(ChannelFrameSchema, JSON.parse(line));
    } catch {
      // Framing can no longer be trusted: say why and close; the client reconnects.
      return this.refuse('a frame that is not {id, op, args} JSON');
    }
    const { id } = frame;
    let answer: unknown;
    try {
      answer = this.call(frame.op, frame.args);
    } catch (err) {
      return this.fail(id, err); // refused before anything changed: nothing to make durable
    }
    answer = this.jm.afterDurable(answer);
    if (answer instanceof Promise) answer.then((r) => this.reply(id, r), (err: unknown) => this.fail(id, err));
    else this.reply(id, answer);
  }

  private call(op: string, raw: unknown): unknown {
    if (!Object.hasOwn(ChannelArgsSchemas, op)) throw new HttpError(400, 'T2_PROTOCOL', `no such channel operation: ${op}`);
    const args = raw === undefined ? {} : raw;
    const jm = this.jm;
    switch (op as ChannelOp) {
      case 'register':
        return jm.register(checked(ChannelArgsSchemas.register, args));
      case 'heartbeat': {
        const a = checked(ChannelArgsSchemas.heartbeat, args);
        return jm.heartbeat(a.workerId, a.session);
      }
      case 'complete': {
        const a = checked(ChannelArgsSchemas.complete, args);
        jm.complete(a.workerId, a.session, a.ok, a.message);
        return { ok: true };
      }
      case 'setupFailed': {
        const a = checked(ChannelArgsSchemas.setupFailed, args);
        jm.setupFailed(a.workerId, a.message);
        return { ok: true };
      }
      case 'ports': {
        const a = checked(ChannelArgsSchemas.ports, args);
        return jm.publishPorts(a.workerId, a.session, a.ports);
      }
      case 'barrier': {
        const a = checked(ChannelArgsSchemas.barrier, args);
        return jm.barrier(a.name, a.workerId, a.session, a.timeoutMs, a.key);
      }
      case 'workers': {
        const a = checked(ChannelArgsSchemas.workers, args);
        return a.waitForAll ? jm.waitForAll(a.timeoutMs ?? jm.spec.timeouts.registration) : jm.listWorkers();
      }
      case 'send': {
        const a = checked(ChannelArgsSchemas.send, args);
        return jm.sendToDriver(a.workerId, a.session, a.id, a.data);
      }
      case 'receive': {
        const a = checked(ChannelArgsSchemas.receive, args);
        return jm.receive(a.workerId, a.session, a.ack, a.max, a.timeoutMs);
      }
      case 'follow':
        checked(ChannelArgsSchemas.follow, args);
        // The answer goes out first, then the snapshot (push runs after this call returns).
        queueMicrotask(() => {
          if (this.open) this.unfollow ??= this.hooks.follow((line) => this.write(line));
        });
        return { ok: true };
    }
  }

  private reply(id: number, result: unknown): void {
    this.write(`{"id":${id},"result":${JSON.stringify(result ?? null)}}\n`);
  }

  private fail(id: number, err: unknown): void {
    const e = toHttpError(err);
    this.write(JSON.stringify({ id, error: { code: e.code, message: e.message } }) + '\n');
  }

  private refuse(why: string): void {
    this.write(JSON.stringify({ id: null, error: { code: 'T2_PROTOCOL', message: `channel closed: ${why}` } }) + '\n');
    this.open = false;
    this.socket.end();
  }

  private write(text: string): void {
    if (!this.open || this.socket.destroyed) return;
    if (this.socket.writableLength > MAX_UNREAD) return this.close();
    this.socket.write(text);
  }

  private onClose(): void {
    this.open = false;
    this.unfollow?.();
    this.hooks.closed();
  }
}

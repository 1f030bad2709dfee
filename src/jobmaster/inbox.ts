import { InboxFullError, MessageRefusedError } from '../errors.js';
import type { Envelope } from '../protocol/messages.js';

/** How many messages, and how many bytes of their JSON, one inbox holds before a send to it is refused. */
export interface InboxLimits {
  messages: number;
  bytes: number;
}

export interface Taken {
  messages: Envelope[];
  /** Set once nothing is left and nothing more can come: why (the worker completed, the job ended, ...). */
  ended?: string;
}

/**
 * One receiver's inbox in the job master (a worker's, or the driver's): messages in the order they were
 * put, each numbered. A receiver takes what is after the last number it acknowledged, and acknowledges
 * what it consumed with its next take; so a message taken but not consumed (the receiver restarted, or its
 * answer was lost) is taken again, and one consumed is never. Bounded: a sender is refused, not the job
 * master's memory filled, when the receiver falls behind.
 */
export class Inbox {
  private readonly items: (Envelope & { bytes: number })[] = [];
  private acked = 0;
  private nextSeq = 1;
  private bytes = 0;
  private readonly waiters = new Set<() => void>();
  private endedWhy: string | undefined;
  private discarded = false;

  constructor(
    /** Who it belongs to, for messages: "worker 3", "the driver". */
    private readonly owner: string,
    private readonly limits: InboxLimits,
  ) {}

  /** Keeps a message for the receiver; returns its number. `data` is JSON of `bytes` bytes (checked by the caller). */
  put(from: Envelope['from'], data: unknown, bytes: number): number {
    this.assertRoom(bytes);
    const seq = this.nextSeq++;
    this.items.push({ seq, from, data, bytes });
    this.bytes += bytes;
    this.wake();
    return seq;
  }

  /** Refuses (MessageRefusedError, InboxFullError) what `put` would refuse, without putting anything. */
  assertRoom(bytes: number): void {
    if (this.endedWhy !== undefined) throw new MessageRefusedError(`${this.owner} receives no more messages: ${this.endedWhy}`);
    if (this.items.length >= this.limits.messages || this.bytes + bytes > this.limits.bytes) {
      throw new InboxFullError(
        `the inbox of ${this.owner} is full (${this.items.length} messages, ${this.bytes} bytes not yet received; it holds ${this.limits.messages} messages or ${this.limits.bytes} bytes): it receives more slowly than it is sent to; send again later`,
      );
    }
  }

  /**
   * Acknowledges every message up to `ack`, then answers with up to `max` of the rest at once, or waits for
   * one for up to `timeoutMs` (an empty answer then). `ended` only once nothing is left to take.
   */
  async take(ack: number | undefined, max: number, timeoutMs: number): Promise<Taken> {
    if (ack !== undefined) this.acknowledge(ack);
    if (this.items.length === 0 && this.endedWhy === undefined && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        this.waiters.add(done);
      });
    }
    const messages = this.items.slice(0, max).map(({ bytes: _bytes, ...m }) => m);
    return messages.length === 0 && this.endedWhy !== undefined ? { messages, ended: this.endedWhy } : { messages };
  }

  /** Nothing more will be put (what is in it can still be taken); waiting receivers are answered. */
  end(why: string): void {
    if (this.endedWhy !== undefined) return;
    this.endedWhy = why;
    this.wake();
  }

  /** Ends it and drops what it holds: the receiver is gone for good. */
  discard(why: string): void {
    this.items.length = 0;
    this.bytes = 0;
    this.end(why);
    this.discarded = true;
  }

  /** Takes messages again after end() (senders came back: the job was scaled up); not after discard(). */
  reopen(): void {
    if (!this.discarded) this.endedWhy = undefined;
  }

  get size(): number {
    return this.items.length;
  }

  private acknowledge(upTo: number): void {
    if (upTo <= this.acked) return;
    this.acked = Math.min(upTo, this.nextSeq - 1);
    let n = 0;
    while (n < this.items.length && this.items[n]!.seq <= this.acked) this.bytes -= this.items[n++]!.bytes;
    this.items.splice(0, n);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

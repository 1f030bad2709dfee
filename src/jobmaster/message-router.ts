import { MessageRefusedError } from '../errors.js';
import { messageBytes } from '../protocol/wire.js';
import { Inbox, type InboxLimits, type Taken } from './inbox.js';

/** A worker receives from the driver alone: its inbox holds a backlog of commands, not a data stream. */
export const WORKER_INBOX: InboxLimits = { messages: 1000, bytes: 16 << 20 };
/** The driver receives from every worker: room for several answers of each of many workers. */
export const DRIVER_INBOX: InboxLimits = { messages: 100_000, bytes: 256 << 20 };
/** IDs of a sender's latest messages remembered, so that one sent again (its answer was lost) is kept once. */
const REMEMBERED_IDS = 1024;

/**
 * Messages between the driver and the workers (docs/protocol.md, "Messages"): an inbox per worker, kept while
 * the worker restarts, and the driver's. Each inbox keeps the order messages were put in, so per sender and
 * receiver delivery is in order. The job master tells it which workers may still receive.
 */
export class MessageRouter {
  private readonly inboxes = new Map<number, Inbox>();
  private readonly driverInbox: Inbox | undefined;
  /** Per sending worker: message ID -> its number in the driver's inbox. */
  private readonly sent = new Map<number, Map<string, number>>();

  constructor(hasDriver: boolean) {
    this.driverInbox = hasDriver ? new Inbox('the driver', DRIVER_INBOX) : undefined;
  }

  /** A worker's message to the driver; one sent again with the same `id` is kept once. */
  fromWorker(workerId: number, id: string, data: unknown): { seq: number } {
    if (!this.driverInbox) throw new MessageRefusedError('this job has no driver to send messages to (the spec sets no driver.module)');
    const ids = this.sent.get(workerId) ?? new Map<string, number>();
    this.sent.set(workerId, ids);
    const known = ids.get(id);
    if (known !== undefined) return { seq: known };
    const seq = this.driverInbox.put(workerId, data, messageBytes(data));
    ids.set(id, seq);
    if (ids.size > REMEMBERED_IDS) ids.delete(ids.keys().next().value!);
    return { seq };
  }

  /** The driver's message to one worker, which must be able to receive (see the job master's check). */
  toWorker(workerId: number, data: unknown, bytes = messageBytes(data)): number {
    return this.inboxOf(workerId).put('driver', data, bytes);
  }

  /** The same message to each of `ids`; the data is measured and kept once. An inbox that is full refuses before any is put. */
  broadcast(ids: number[], data: unknown): number[] {
    const bytes = messageBytes(data);
    for (const id of ids) this.inboxOf(id).assertRoom(bytes);
    for (const id of ids) this.toWorker(id, data, bytes);
    return ids;
  }

  receive(workerId: number, ack: number | undefined, max: number, timeoutMs: number): Promise<Taken> {
    return this.inboxOf(workerId).take(ack, max, timeoutMs);
  }

  driverReceive(ack: number | undefined, max: number, timeoutMs: number): Promise<Taken> {
    if (!this.driverInbox) return Promise.resolve({ messages: [], ended: 'this job has no driver' });
    return this.driverInbox.take(ack, max, timeoutMs);
  }

  /** The worker completed or was scaled away: what it did not take is dropped, and nothing more is sent to it. */
  workerGone(workerId: number, why: string): void {
    // A receive still waiting is answered; the ID gets a new inbox should a scale-up bring it back.
    this.inboxes.get(workerId)?.discard(why);
    this.inboxes.delete(workerId);
    this.sent.delete(workerId);
  }

  /** No worker can send any more (every one completed): the driver takes what is left, then its messages end. */
  noMoreFromWorkers(why: string): void {
    this.driverInbox?.end(why);
  }

  /** New workers (a scale-up) may send to the driver again, even after every earlier one completed. */
  moreWorkers(): void {
    this.driverInbox?.reopen();
  }

  /** The job ended: whatever was not taken is dropped, and every receiver is answered. */
  endAll(why: string): void {
    for (const inbox of this.inboxes.values()) inbox.discard(why);
    this.driverInbox?.discard(why);
  }

  private inboxOf(workerId: number): Inbox {
    let inbox = this.inboxes.get(workerId);
    if (!inbox) this.inboxes.set(workerId, (inbox = new Inbox(`worker ${workerId}`, WORKER_INBOX)));
    return inbox;
  }
}

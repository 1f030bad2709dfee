import type { Envelope } from './messages.js';
import { MAX_RECEIVE_WAIT_MS } from './wire.js';

/** A message as a program receives it: from a worker ID, or from the driver. */
export interface ReceivedMessage {
  from: number | 'driver';
  data: unknown;
}

/** One receive call: acknowledge up to `ack`, take what follows, waiting up to `timeoutMs` for one. */
export type TakeMessages = (ack: number | undefined, timeoutMs: number) => Promise<{ messages: Envelope[]; ended?: string }>;

/**
 * The receiving end of an inbox in the job master (jobmaster/inbox.ts), for a worker's program or the
 * driver. `messages()` may be iterated any number of times, one after the other or at once: each message
 * goes to one iteration, and one fetched but not yet handed out stays here for the next. What was handed
 * out is acknowledged with the next receive call; so a receiver that restarts gets again only what it had
 * not consumed. An iteration ends once the inbox ended (the job ended, or for the driver every worker
 * completed and nothing is left).
 */
export class InboxReader {
  private readonly buffer: Envelope[] = [];
  /** The highest number fetched: a message fetched again (not yet acknowledged) is skipped. */
  private fetched = 0;
  /** The highest number handed to the program. */
  private consumed = 0;
  /** The current receive call, shared by every iteration waiting; true when the inbox has ended. */
  private filling: Promise<boolean> | undefined;

  constructor(private readonly take: TakeMessages) {}

  async *messages(): AsyncGenerator<ReceivedMessage> {
    for (;;) {
      const m = this.buffer.shift();
      if (m) {
        this.consumed = m.seq;
        yield { from: m.from, data: m.data };
        continue;
      }
      // Ended: this iteration stops; a later one asks again (a scaled-up job's new workers may send again).
      if (await this.fill()) return;
    }
  }

  /** One receive call at a time; what it brings stays even if every iteration stopped meanwhile. */
  private fill(): Promise<boolean> {
    this.filling ??= this.take(this.consumed || undefined, MAX_RECEIVE_WAIT_MS)
      .then(({ messages, ended }) => {
        for (const m of messages) {
          if (m.seq <= this.fetched) continue;
          this.buffer.push(m);
          this.fetched = m.seq;
        }
        return ended !== undefined && messages.length === 0;
      })
      .finally(() => (this.filling = undefined));
    return this.filling;
  }
}

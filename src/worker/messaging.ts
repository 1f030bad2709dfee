import { randomUUID } from 'node:crypto';
import { InboxReader } from '../protocol/inbox-reader.js';
import type { JobMasterClient } from '../protocol/jobmaster-client.js';
import { messageBytes } from '../protocol/wire.js';

/**
 * A worker's messages with its driver (ctx.send, ctx.messages): sends go one after the other, each with an
 * ID of its own, so that one sent again after a lost answer is kept once and order is kept; receiving reads
 * the worker's inbox in the job master (InboxReader).
 */
export function workerMessaging(client: JobMasterClient, workerId: number, session: string) {
  const reader = new InboxReader((ack, timeoutMs) => client.receiveMessages(workerId, session, { ack, timeoutMs }));
  let last: Promise<unknown> = Promise.resolve();
  return {
    async send(data: unknown): Promise<void> {
      messageBytes(data); // a message that is too large, or not JSON, is refused (a rejection) before anything is sent
      const id = randomUUID();
      const sent = last.then(() => client.sendMessage(workerId, session, id, data));
      last = sent.catch(() => undefined);
      await sent;
    },
    messages: () => reader.messages() as AsyncGenerator<{ from: 'driver'; data: unknown }>,
  };
}

import { describe, expect, it } from 'vitest';
import { Inbox } from '../../../src/jobmaster/inbox.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import { MessageRouter } from '../../../src/jobmaster/message-router.js';
import { InboxReader } from '../../../src/protocol/inbox-reader.js';
import { MAX_MESSAGE_BYTES } from '../../../src/protocol/wire.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { noopLauncher, registration } from '../../helpers/registration.js';

const limits = { messages: 3, bytes: 1000 };

describe('an inbox in the job master', () => {
  it('hands out messages in order; what was taken but not acknowledged is taken again, what was acknowledged never', async () => {
    const inbox = new Inbox('worker 1', { messages: 100, bytes: 1 << 20 });
    for (let i = 1; i <= 5; i++) inbox.put('driver', i, 1);
    expect((await inbox.take(undefined, 2, 0)).messages.map((m) => m.data)).toEqual([1, 2]);
    // The receiver restarted before it consumed them: the same two again.
    expect((await inbox.take(undefined, 2, 0)).messages.map((m) => m.data)).toEqual([1, 2]);
    expect((await inbox.take(2, 10, 0)).messages.map((m) => [m.seq, m.data])).toEqual([[3, 3], [4, 4], [5, 5]]);
    expect(inbox.size).toBe(3);
    expect((await inbox.take(5, 10, 0)).messages).toEqual([]);
    expect(inbox.size).toBe(0);
  });

  it('a waiting take is answered by the next put, and by the end; ended is said only once nothing is left', async () => {
    const inbox = new Inbox('the driver', limits);
    const waiting = inbox.take(undefined, 10, 10_000);
    inbox.put(3, 'x', 1);
    expect(await waiting).toEqual({ messages: [{ seq: 1, from: 3, data: 'x' }] });
    const next = inbox.take(1, 10, 10_000);
    inbox.put(2, 'y', 1);
    inbox.end('every worker completed');
    expect(await next).toEqual({ messages: [{ seq: 2, from: 2, data: 'y' }] });
    expect(await inbox.take(2, 10, 10_000)).toEqual({ messages: [], ended: 'every worker completed' });
    expect(() => inbox.put(1, 'z', 1)).toThrow(/the driver receives no more messages: every worker completed/);
  });

  it('is bounded: past its messages or bytes a send is refused with what to do, and nothing is put', () => {
    const inbox = new Inbox('worker 0', limits);
    for (let i = 0; i < 3; i++) inbox.put('driver', i, 10);
    expect(() => inbox.put('driver', 3, 10)).toThrow(expect.objectContaining({ code: 'T2_INBOX_FULL', message: expect.stringMatching(/inbox of worker 0 is full \(3 messages, 30 bytes not yet received.*send again later/) }));
    const bytes = new Inbox('worker 1', limits);
    expect(() => bytes.put('driver', 'big', 1001)).toThrow(/is full/);
    expect(bytes.size).toBe(0);
  });
});

describe('the message router', () => {
  it('keeps a worker message sent again with the same ID once, and refuses messages when the job has no driver', async () => {
    const r = new MessageRouter(true);
    expect(r.fromWorker(2, 'id-a', { n: 1 })).toEqual({ seq: 1 });
    expect(r.fromWorker(2, 'id-a', { n: 1 })).toEqual({ seq: 1 });
    expect(r.fromWorker(2, 'id-b', { n: 2 })).toEqual({ seq: 2 });
    expect((await r.driverReceive(undefined, 10, 0)).messages.map((m) => m.data)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(() => new MessageRouter(false).fromWorker(0, 'x', 1)).toThrow(expect.objectContaining({ code: 'T2_MESSAGE_REFUSED', message: expect.stringContaining('no driver') }));
  });

  it('refuses a message over the size limit, or data that is not JSON, naming the limit', () => {
    const r = new MessageRouter(true);
    expect(() => r.toWorker(0, 'x'.repeat(MAX_MESSAGE_BYTES))).toThrow(expect.objectContaining({ code: 'T2_MESSAGE_TOO_LARGE', message: expect.stringMatching(/more than the 262144 a message may hold/) }));
    expect(() => r.toWorker(0, undefined)).toThrow(/must be JSON/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => r.toWorker(0, cyclic)).toThrow(/must be JSON/);
  });

  it('a broadcast that one full inbox refuses puts nothing anywhere', async () => {
    const r = new MessageRouter(true);
    for (let i = 0; i < 1000; i++) r.toWorker(1, i);
    expect(() => r.broadcast([0, 1], 'all')).toThrow(/inbox of worker 1 is full/);
    expect((await r.receive(0, undefined, 10, 0)).messages).toEqual([]);
  });
});

describe('the receiving end (InboxReader)', () => {
  it('can be iterated again and again: a message fetched but not handed out is kept, one handed out is acknowledged', async () => {
    const inbox = new Inbox('worker 0', { messages: 100, bytes: 1 << 20 });
    const acks: (number | undefined)[] = [];
    const reader = new InboxReader((ack, timeoutMs) => {
      acks.push(ack);
      return inbox.take(ack, 100, Math.min(timeoutMs, 50));
    });
    for (let i = 1; i <= 4; i++) inbox.put('driver', i, 1);
    const first: unknown[] = [];
    for await (const m of reader.messages()) {
      first.push(m.data);
      if (first.length === 2) break;
    }
    const second: unknown[] = [];
    for await (const m of reader.messages()) {
      second.push(m.data);
      if (second.length === 2) break;
    }
    expect([first, second]).toEqual([[1, 2], [3, 4]]);
    // The next call acknowledges the four handed out.
    inbox.put('driver', 5, 1);
    inbox.end('the job ended (SUCCEEDED)');
    const rest: unknown[] = [];
    for await (const m of reader.messages()) rest.push(m.data);
    expect(rest).toEqual([5]);
    expect(acks.slice(0, 2)).toEqual([undefined, 4]);
  });
});

describe('the job master and its driver', () => {
  const spec = (driver: Record<string, unknown>) => parseSpec({ name: 'drv', workers: 2, worker: { command: 'true' }, driver: { module: 'd.mjs', ...driver } });

  function jobWithTwoWorkers(driver: Record<string, unknown> = {}) {
    const jm = new JobMaster({ jobId: 'drv-1', spec: spec(driver), launcher: noopLauncher() });
    jm.start();
    const s = [0, 1].map((id) => jm.register(registration(id)).session);
    return { jm, s };
  }

  it('waits for the driver after every worker completed; the driver\'s messages end then; its result is in the status', async () => {
    const { jm, s } = jobWithTwoWorkers();
    jm.driverStarted();
    jm.sendToDriver(0, s[0]!, 'm1', { sum: 1 });
    jm.complete(0, s[0]!, true);
    jm.complete(1, s[1]!, true);
    expect(jm.state).toBe('RUNNING');
    expect((await jm.driverReceive(undefined, 10, 0)).messages).toEqual([{ seq: 1, from: 0, data: { sum: 1 } }]);
    expect(await jm.driverReceive(1, 10, 1000)).toEqual({ messages: [], ended: 'all 2 workers completed' });
    jm.driverReturned({ total: 1 });
    const final = await jm.whenEnded();
    expect(final).toMatchObject({ state: 'SUCCEEDED', message: 'all 2 workers completed and the driver returned', driver: { state: 'RETURNED', result: { total: 1 } } });
  });

  it('the driver\'s messages, ended because every worker completed, come again from the workers a scale-up adds', async () => {
    const { jm, s } = jobWithTwoWorkers();
    jm.driverStarted();
    jm.complete(0, s[0]!, true);
    jm.complete(1, s[1]!, true);
    expect(await jm.driverReceive(undefined, 10, 0)).toEqual({ messages: [], ended: 'all 2 workers completed' });
    await jm.scale(3);
    const third = jm.register(registration(2)).session;
    jm.sendToDriver(2, third, 'late', 'from the new worker');
    expect((await jm.driverReceive(undefined, 10, 0)).messages).toEqual([{ seq: 1, from: 2, data: 'from the new worker' }]);
    jm.complete(2, third, true);
    expect(await jm.driverReceive(1, 10, 1000)).toEqual({ messages: [], ended: 'all 3 workers completed' });
  });

  it('waits for a driver that has not started yet when the workers complete first', async () => {
    const { jm, s } = jobWithTwoWorkers();
    jm.complete(0, s[0]!, true);
    jm.complete(1, s[1]!, true);
    expect(jm.state).toBe('RUNNING');
    jm.driverStarted();
    jm.driverReturned('late');
    expect(await jm.whenEnded()).toMatchObject({ state: 'SUCCEEDED', driver: { result: 'late' } });
  });

  it('driver.endsJob: the job succeeds when the driver returns, the workers still running are stopped', async () => {
    const { jm } = jobWithTwoWorkers({ endsJob: true });
    jm.driverStarted();
    jm.driverReturned(42);
    const final = await jm.whenEnded();
    expect(final).toMatchObject({ state: 'SUCCEEDED', message: 'the driver returned (driver.endsJob)', driver: { state: 'RETURNED', result: 42 } });
    expect(final.workers.map((w) => w.state)).toEqual(['STOPPED', 'STOPPED']);
  });

  it('a driver that throws fails the job with its message; a job that ends first stops the driver', async () => {
    const { jm } = jobWithTwoWorkers();
    jm.driverStarted();
    jm.driverFailed('epoch 3 diverged');
    expect(await jm.whenEnded()).toMatchObject({ state: 'FAILED', message: 'the driver failed: epoch 3 diverged', driver: { state: 'FAILED', message: 'epoch 3 diverged' } });
    const other = jobWithTwoWorkers().jm;
    other.driverStarted();
    other.kill('enough');
    expect(await other.whenEnded()).toMatchObject({ state: 'KILLED', driver: { state: 'STOPPED', message: 'the job ended (KILLED) before the driver returned' } });
  });

  it('messages wait for a restarting worker; a completed one, an unknown ID and one scaled away are refused by name', async () => {
    const jm = new JobMaster({ jobId: 'drv-2', spec: parseSpec({ name: 'drv', workers: 3, worker: { command: 'true' }, restart: { maxRestarts: 1 }, driver: { module: 'd.mjs' } }), launcher: noopLauncher() });
    jm.start();
    const s = [0, 1, 2].map((id) => jm.register(registration(id)).session);
    jm.complete(1, s[1]!, false, 'crashed');
    expect(jm.status().workers[1]!.state).toBe('FAILED');
    jm.sendToWorker(1, 'kept for the restart');
    const again = jm.register(registration(1)).session;
    expect((await jm.receive(1, again, undefined, 10, 0)).messages.map((m) => m.data)).toEqual(['kept for the restart']);
    expect(() => jm.sendToWorker(7, 'x')).toThrow(/cannot send to worker 7: it is not a worker of this job \(IDs are 0\.\.2\)/);
    jm.complete(0, s[0]!, true);
    expect(() => jm.sendToWorker(0, 'x')).toThrow(/cannot send to worker 0: it is completed; it receives no more messages/);
    expect(jm.broadcast('all')).toEqual([1, 2]);
    await jm.scale(2);
    expect(() => jm.sendToWorker(2, 'x')).toThrow(/cannot send to worker 2: it is not a worker of this job/);
    expect(await jm.receive(1, again, undefined, 10, 0)).toMatchObject({ messages: [{ data: 'kept for the restart' }, { data: 'all' }] });
  });
});

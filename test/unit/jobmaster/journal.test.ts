import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BarrierService } from '../../../src/jobmaster/barriers.js';
import { EPOCH_FILE, JOURNAL_FILE, Journal, readRecords, type JournalRecord } from '../../../src/jobmaster/journal.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import { compactRecords, replay } from '../../../src/jobmaster/saved-state.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { noopLauncher, registration } from '../../helpers/registration.js';

const dir = () => mkdtempSync(path.join(os.tmpdir(), 't2-journal-'));
const keep = { compact: (records: JournalRecord[]) => records, onFenced: () => undefined };

describe('the job master journal', () => {
  it('commits appends together, claims the next epoch, and drops a torn last line', async () => {
    const d = dir();
    const first = await Journal.open(d, keep);
    expect(first.journal.epoch).toBe(1);
    first.journal.append({ t: 'size', numWorkers: 3 });
    first.journal.append({ t: 'worker', workerId: 0, state: 'RUNNING', restarts: 0, session: 's0' });
    await first.journal.flushed();
    await first.journal.close();
    appendFileSync(path.join(d, JOURNAL_FILE), '{"t":"worker","work'); // a crash in the middle of a write
    const second = await Journal.open(d, keep);
    expect(second.journal.epoch).toBe(2);
    expect(second.records.map((r) => r.t)).toEqual(['epoch', 'size', 'worker', 'epoch']);
    expect(readRecords(path.join(d, JOURNAL_FILE))).toHaveLength(4);
    await second.journal.close();
  });

  it('an answer that changed nothing, sent while a commit is under way, waits for that commit only', async () => {
    const { journal } = await Journal.open(dir(), keep);
    journal.append({ t: 'size', numWorkers: 1 });
    await new Promise((r) => setImmediate(r)); // the commit has started: the buffer is empty again
    const flushed = journal.flushed().then(() => 'flushed');
    const timeout = new Promise((r) => setTimeout(() => r('hung'), 2000));
    expect(await Promise.race([flushed, timeout])).toBe('flushed');
    await journal.close();
  });

  it('a job master whose epoch was superseded writes nothing more and is told (fencing)', async () => {
    const d = dir();
    const fenced: Error[] = [];
    const { journal } = await Journal.open(d, { ...keep, onFenced: (err) => fenced.push(err) });
    journal.append({ t: 'size', numWorkers: 1 });
    await journal.flushed();
    writeFileSync(path.join(d, EPOCH_FILE), '2'); // another job master took over
    journal.append({ t: 'size', numWorkers: 2 });
    await expect(journal.flushed()).rejects.toThrow(/epoch 1 was superseded by epoch 2/);
    expect(fenced).toHaveLength(1);
    expect(readFileSync(path.join(d, JOURNAL_FILE), 'utf8')).not.toMatch(/"numWorkers":2/);
  });

  it('is rewritten compactly once it grew past its limit, and replays to the same state', async () => {
    const d = dir();
    const { journal } = await Journal.open(d, { compact: (r) => compactRecords(replay(r)), onFenced: () => undefined, compactAtBytes: 4096 });
    journal.append({ t: 'job', state: 'RUNNING', startedAt: 'then' });
    const all: JournalRecord[] = [];
    for (let i = 0; i < 200; i++) {
      const records = [
        { t: 'arrive', name: 'b', generation: i + 1, workerId: 0, key: `k${i}` },
        { t: 'barrier-ended', name: 'b', generation: i + 1, last: { generation: i + 1, numWorkers: 1 } },
      ];
      for (const r of records) journal.append(r);
      all.push(...records);
      await journal.flushed();
    }
    await journal.close();
    const size = readFileSync(path.join(d, JOURNAL_FILE)).length;
    expect(size).toBeLessThan(4096 + 200);
    expect(replay(readRecords(path.join(d, JOURNAL_FILE))).barriers.get('b')).toEqual({ name: 'b', generation: 200, arrivals: [], last: { generation: 200, numWorkers: 1, keys: ['k199'] } });
  });

  it('replays to the same state after compaction: workers, size, barriers pending and ended', () => {
    const records: JournalRecord[] = [
      { t: 'epoch', epoch: 1, pid: 10, host: 'h', at: 'x' },
      { t: 'job', state: 'RUNNING', startedAt: 'then' },
      { t: 'size', numWorkers: 3 },
      { t: 'worker', workerId: 0, state: 'RUNNING', restarts: 0, session: 'a' },
      { t: 'worker', workerId: 1, state: 'RUNNING', restarts: 1, session: 'b' },
      { t: 'worker', workerId: 2, state: 'RUNNING', restarts: 0, session: 'c' },
      { t: 'arrive', name: 'b', generation: 1, workerId: 0, key: 'k0' },
      { t: 'barrier-ended', name: 'b', generation: 1, last: { generation: 1, keys: ['k0', 'k1', 'k2'], numWorkers: 3 } },
      { t: 'arrive', name: 'b', generation: 2, workerId: 1, key: 'k3' },
      { t: 'size', numWorkers: 2 },
      { t: 'removed', workerId: 2 },
    ];
    const state = replay(records);
    expect(state.numWorkers).toBe(2);
    expect([...state.workers.keys()]).toEqual([0, 1]);
    expect(state.barriers.get('b')).toMatchObject({ generation: 2, arrivals: [[1, 'k3']], last: { generation: 1 } });
    expect(replay(compactRecords(state))).toEqual(state);
  });
});

describe('barriers across a job master restart', () => {
  it('an arrival sent again after its barrier was released gets that answer at once, not a new generation', async () => {
    const journaled: JournalRecord[] = [];
    const b = new BarrierService(() => [0, 1], (r) => journaled.push(r));
    const first = b.arrive('x', 0, 10_000, 'a0');
    const second = b.arrive('x', 1, 10_000, 'a1');
    await expect(Promise.all([first, second])).resolves.toHaveLength(2);
    await expect(b.arrive('x', 0, 10_000, 'a0')).resolves.toMatchObject({ generation: 1 });
    // The journal lists the keys once, in the arrivals; a restarted job master answers them the same.
    expect(JSON.stringify(journaled.at(-1))).not.toContain('a0');
    const restored = new BarrierService(() => [0, 1]);
    restored.restore(replay(journaled).barriers.values(), 10_000);
    await expect(restored.arrive('x', 1, 10_000, 'a1')).resolves.toMatchObject({ generation: 1, numWorkers: 2 });
  });

  it('a restored pending barrier counts the journaled arrivals; the arrived worker resending its key is answered', async () => {
    const saved: JournalRecord[] = [];
    const before = new BarrierService(() => [0, 1], (r) => saved.push(r));
    void before.arrive('x', 0, 10_000, 'a0').catch(() => undefined);
    const after = new BarrierService(() => [0, 1]);
    after.restore(replay(saved).barriers.values(), 10_000);
    const resent = after.arrive('x', 0, 10_000, 'a0');
    await expect(after.arrive('x', 1, 10_000, 'a1')).resolves.toMatchObject({ generation: 1, numWorkers: 2 });
    await expect(resent).resolves.toMatchObject({ generation: 1 });
  });
});

describe('registration across a job master restart', () => {
  it('a worker whose registration was journaled but whose answer was lost gets its session back; another process is refused', async () => {
    const spec = parseSpec({ name: 'retried', workers: 2, worker: { command: 'true' }, timeouts: { heartbeat: '500ms' } });
    const info = (workerId: number, incarnation: string) => ({ ...registration(workerId), incarnation });
    const journaled: JournalRecord[] = [];
    const first = new JobMaster({ jobId: 'retried-1', spec, launcher: noopLauncher(), record: (r) => journaled.push(r), flushed: async () => {}, recoveryMs: 60_000 });
    first.start();
    // Journaled, then the job master died before its answer reached the worker.
    const lost = first.register(info(0, 'incarnation-of-pid-10'));
    const atCrash = replay(journaled);
    first.kill('stopped'); // only its timers: its successor sees the journal as it was at the crash
    const second = new JobMaster({ jobId: 'retried-1', spec, launcher: noopLauncher(), saved: atCrash, record: () => undefined, flushed: async () => {}, recoveryMs: 60_000 });
    second.start();
    expect(second.register(info(0, 'incarnation-of-pid-10')).session).toBe(lost.session);
    expect(() => second.register(info(0, 'incarnation-of-pid-11'))).toThrow(/already registered by a live worker/);
    // Its heartbeats with that session are heard: it is not failed for the registration's lost answer.
    expect(() => second.heartbeat(0, lost.session)).not.toThrow();
    expect(second.status().workers.find((w) => w.workerId === 0)).toMatchObject({ state: 'RUNNING', restarts: 0 });
    expect(JSON.stringify(second.status())).not.toContain('incarnation');
    second.kill('done');
  });
});

describe('failure detection of a restarted job master', () => {
  it('counts heartbeat deadlines from when it starts watching, not from its restore: a pause while it took over fails nobody', async () => {
    const spec = parseSpec({ name: 'restored', workers: 1, worker: { command: 'true' }, timeouts: { heartbeat: '500ms' } });
    const info = { workerId: 0, host: 'h', ip: '127.0.0.1', ports: {}, node: 'h', resources: { cpu: 1, memoryBytes: 1, gpus: 0 }, pid: 1, restartCount: 0 };
    const saved = replay([
      { t: 'job', state: 'RUNNING', startedAt: new Date().toISOString() },
      { t: 'size', numWorkers: 1 },
      { t: 'worker', workerId: 0, state: 'RUNNING', restarts: 0, info, session: 's0' },
    ]);
    let t = 1_000_000;
    const jm = new JobMaster({ jobId: 'restored-1', spec, launcher: noopLauncher(), now: () => t, saved, record: () => undefined, flushed: async () => {}, recoveryMs: 60_000 });
    // Restored at t; paused (SIGSTOP) for longer than the heartbeat timeout before its monitor started.
    t += 2000;
    jm.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(jm.status().workers[0]!.state).toBe('RUNNING');
    // Still watching: a worker silent for the timeout from then is failed.
    t += 600;
    await new Promise((r) => setTimeout(r, 400));
    expect(jm.status().workers[0]!.state).toBe('FAILED');
    jm.kill('done');
  });
});

describe('the end of a journaled job', () => {
  it('stops nothing before the end is durable: the launcher releases the workers only once the terminal state is stored', async () => {
    const spec = parseSpec({ name: 'ending', workers: 1, worker: { command: 'true' } });
    let store = () => undefined as void;
    const stored = new Promise<void>((resolve) => (store = resolve));
    const records: JournalRecord[] = [];
    let released = 0;
    const launcher = { ...noopLauncher(), release: async () => void (released += 1) };
    const jm = new JobMaster({ jobId: 'ending-1', spec, launcher, record: (r) => records.push(r), flushed: () => stored, recoveryMs: 60_000 });
    jm.kill('stopped by the test');
    await new Promise((r) => setTimeout(r, 50));
    // KILLED is journaled (appended) but not yet stored: a crash now must leave the workers running.
    expect(records.some((r) => r.t === 'job' && r.state === 'KILLED')).toBe(true);
    expect(released).toBe(0);
    store();
    await jm.whenEnded();
    expect(released).toBe(1);
  });
});

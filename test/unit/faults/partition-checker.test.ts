import { describe, expect, it } from 'vitest';
import { checkPartition, type PartitionHistory, type WorkerRecord } from '../../faults/checker.js';

// The partition checker must be able to fail: each history breaks one invariant on purpose.
const rec = (id: number, pid: number, restart: number, t: number, step: WorkerRecord['step'], n?: number, error?: string): WorkerRecord => ({
  id,
  pid,
  restart,
  t,
  step,
  ...(n !== undefined ? { n } : {}),
  ...(error ? { error } : {}),
});

const broke = 'barrier \'b1\' broken: worker 1 failed (no heartbeat for 3s) while workers 0 were waiting';

/** Two workers, one barrier; worker 1 (pid 20) is cut off, replaced by pid 21, and told so. */
function history(): PartitionHistory {
  return {
    workers: 2,
    rounds: 1,
    cut: { ids: [1], from: 100, to: 200 },
    expect: 'replace',
    records: [
      rec(0, 10, 0, 0, 'start'),
      rec(1, 20, 0, 0, 'start'),
      rec(0, 10, 0, 50, 'arrive', 1),
      rec(1, 20, 0, 90, 'arrive', 1),
      rec(0, 10, 0, 150, 'broken', 1, broke),
      rec(0, 11, 1, 300, 'start'),
      rec(1, 21, 1, 310, 'start'),
      rec(0, 11, 1, 320, 'arrive', 1),
      rec(1, 21, 1, 330, 'arrive', 1),
      rec(0, 11, 1, 331, 'pass', 1),
      rec(1, 21, 1, 331, 'pass', 1),
      rec(1, 20, 0, 400, 'broken', 1, 'worker 1: unknown or stale session (the worker was replaced, removed or never registered)'),
      rec(0, 11, 1, 332, 'done'),
      rec(1, 21, 1, 332, 'done'),
    ],
    final: { state: 'SUCCEEDED', workers: [{ workerId: 0, state: 'COMPLETED', restarts: 1 }, { workerId: 1, state: 'COMPLETED', restarts: 1 }] },
    leftovers: [],
    logs: '[twister2 worker 1] failed: worker 1: unknown or stale session (the worker was replaced, removed or never registered)\n',
  };
}

describe('the partition checker', () => {
  it('accepts a history where the cut worker was replaced and told so', () => {
    expect(checkPartition(history())).toEqual([]);
  });

  it('finds a line the job\'s logs hold twice', () => {
    const h = history();
    h.records.splice(1, 0, rec(0, 10, 0, 0, 'start'));
    expect(checkPartition(h)).toEqual(['a record is in the job\'s logs more than once: {"id":0,"pid":10,"restart":0,"t":0,"step":"start"}']);
  });

  it('finds a replaced process that passed a barrier after its replacement started', () => {
    const h = history();
    h.records.push(rec(1, 20, 0, 335, 'pass', 1));
    expect(checkPartition(h).join('\n')).toMatch(/worker ID 1 held by two processes: pid 20 recorded pass b1/);
  });

  it('finds a barrier released before the current holder of an ID arrived (an old arrival does not count)', () => {
    const h = history();
    h.records = h.records.filter((r) => !(r.pid === 21 && r.step === 'arrive'));
    expect(checkPartition(h).join('\n')).toMatch(/barrier b1: worker 0 \(pid 11\) passed at 331 before worker 1 \(pid 21\) arrived/);
  });

  it('finds a broken barrier without a cause, an untold replaced worker, a missing replacement and leftovers', () => {
    const h = history();
    h.records[4] = rec(0, 10, 0, 150, 'broken', 1, 'something happened');
    h.logs = '';
    h.final.workers[1]!.restarts = 0;
    h.leftovers = ['process 20'];
    const v = checkPartition(h).join('\n');
    expect(v).toMatch(/broke for worker 0 without a named cause/);
    expect(v).toMatch(/worker 1: its replaced process was not told so/);
    expect(v).toMatch(/worker 1 was cut off but not replaced/);
    expect(v).toMatch(/no barrier broke naming a cut worker/);
    expect(v).toMatch(/left running after the job: process 20/);
  });

  it('expects a job that cannot replace workers to fail naming an unheard one', () => {
    const h = { ...history(), expect: 'fail' as const };
    expect(checkPartition(h).join('\n')).toMatch(/expected FAILED naming a cut worker/);
    h.final = { state: 'FAILED', message: 'worker 1 failed: no heartbeat for 3s; restarts are off (restart.maxRestarts: 0)', workers: h.final.workers };
    expect(checkPartition(h)).toEqual([]);
  });
});

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobBoard } from '../../../src/dashboard/job-board.js';
import { specRows } from '../../../src/dashboard/spec-rows.js';
import type { JobStatus } from '../../../src/protocol/messages.js';

const history = () => path.join(mkdtempSync(path.join(os.tmpdir(), 't2-board-')), 'history.json');
const controls = { scale: true, kill: true };

function status(jobId: string, state: JobStatus['state'], over: Partial<JobStatus> = {}): JobStatus {
  return { jobId, name: 'j', cluster: 'local', state, numWorkers: 2, registered: 2, startedAt: '2026-12-06T00:00:00.000Z', workers: [
    { workerId: 0, state: 'RUNNING', restarts: 0, lastHeartbeatAt: '2026-12-06T00:00:09.000Z' },
    { workerId: 1, state: 'FAILED', restarts: 1, message: 'exited with code 3' },
  ], heartbeatTimeoutMs: 10_000, ...over };
}

describe('JobBoard', () => {
  it('shows workers with their health, the chart of running workers, and the events', () => {
    const board = new JobBoard(history());
    board.update({ via: 'home', status: status('a', 'RUNNING'), controls, logs: true }, new Date('2026-12-06T00:00:10.000Z'));
    board.update({ via: 'home', status: status('a', 'RUNNING'), controls, logs: true }, new Date('2026-12-06T00:00:16.000Z'));
    board.addEvents('a', [{ at: 'x', event: { type: 'snapshot', status: status('a', 'RUNNING') } }, { at: 'y', event: { type: 'scaled', from: 2, to: 3 } }]);
    board.addEvents('a', [{ at: 'z', event: { type: 'snapshot', status: status('a', 'RUNNING') } }]);
    const d = board.detail('a')!;
    expect(d.workers.map((w) => w.health)).toEqual(['late', 'failed: exited with code 3']);
    expect(d.samples).toEqual([{ at: '2026-12-06T00:00:10.000Z', running: 1, total: 2 }]);
    // The first snapshot says where things stood when the dashboard began to follow; later ones add nothing.
    expect(d.timeline).toEqual([
      { at: 'x', event: { type: 'job-state', state: 'RUNNING' } },
      { at: 'x', event: { type: 'worker-state', workerId: 0, state: 'RUNNING', restarts: 0 } },
      { at: 'x', event: { type: 'worker-state', workerId: 1, state: 'FAILED', restarts: 1 } },
      { at: 'y', event: { type: 'scaled', from: 2, to: 3 } },
    ]);
    expect(board.summary('a')).toMatchObject({ running: 1, workerStates: [{ workerId: 0, state: 'RUNNING' }, { workerId: 1, state: 'FAILED' }] });
  });

  it('takes a report sent again once: events its reporter already gave are dropped by their numbers', () => {
    const board = new JobBoard(history());
    board.update({ via: 'report', status: status('r', 'RUNNING'), controls, logs: false });
    const e = (seq: number, workerId: number) => ({ at: 'x', seq, event: { type: 'worker-state' as const, workerId, state: 'RUNNING' as const, restarts: 0 } });
    board.addEvents('r', [e(1, 0), e(2, 1)], 'jm-a');
    board.addEvents('r', [e(1, 0), e(2, 1), e(3, 0)], 'jm-a'); // the first report's answer was lost
    board.addEvents('r', [e(1, 1)], 'jm-b'); // a restarted job master counts afresh
    expect(board.detail('r')!.timeline.map((t) => (t.event as { workerId: number }).workerId)).toEqual([0, 1, 0, 1]);
  });

  it('keeps a bounded history of ended jobs, and reporting ones, across a restart; a job that stopped reporting shows as UNREACHABLE', async () => {
    const file = history();
    const board = new JobBoard(file, 2);
    const removed: string[] = [];
    board.on('removed', (id) => removed.push(id));
    for (const [i, id] of ['a', 'b', 'c'].entries()) board.update({ via: 'home', status: status(id, 'SUCCEEDED', { endedAt: `2026-12-06T00:0${i}:00.000Z` }), controls, logs: true });
    board.update({ via: 'report', status: status('r', 'RUNNING'), controls, logs: false }, new Date('2026-12-06T00:00:00.000Z'));
    board.update({ via: 'home', status: status('h', 'RUNNING'), controls, logs: true });
    expect(removed).toEqual(['a']);
    await board.save();
    const again = new JobBoard(file, 2);
    await again.load();
    expect(again.summaries().map((s) => s.jobId).sort()).toEqual(['b', 'c', 'r']);
    expect(again.detail('b')!.controls).toEqual({ scale: false, kill: false });
    again.markStale(Date.parse('2026-12-06T00:00:20.000Z'));
    expect(again.detail('r')).toMatchObject({ state: 'UNREACHABLE', message: 'no report from its job master since 2026-12-06T00:00:00.000Z' });
  });
});

describe('specRows', () => {
  it('shows the spec as rows, with anything named like a secret hidden', () => {
    const rows = specRows({ name: 'j', cluster: 'nomad', workers: 2, worker: { command: 'run.sh' }, nomad: { address: 'http://n:4646', token: 's3cret' }, uploader: { kind: 's3', s3: { secretAccessKey: 'k' } } });
    expect(rows).toContainEqual(['worker', 'run.sh']);
    expect(rows).toContainEqual(['nomad settings', '{"address":"http://n:4646","token":"(hidden)"}']);
    expect(JSON.stringify(rows)).not.toContain('s3cret');
  });
});

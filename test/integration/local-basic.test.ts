import { describe, expect, it } from 'vitest';
import { fixture, jobIds, jobProcesses, makeJob, runCli, tempHome, testRecords } from '../helpers/cli.js';

interface Rec {
  id: number;
  step: string;
  n?: number;
  peers?: number[];
  name?: string;
}

describe('local cluster: IDs, discovery and barriers', () => {
  for (const n of [1, 4, 16]) {
    it(`runs ${n} worker${n === 1 ? '' : 's'} with IDs 0..${n - 1}, full discovery and 3 barriers`, async () => {
      const home = tempHome();
      const job = makeJob({ name: `basic-${n}`, workers: n, worker: { module: 'worker.mjs', args: ['3'] } }, { 'worker.mjs': fixture('barrier-worker.mjs') });
      const r = await runCli(['submit', job, '--cluster', 'local'], home);
      expect(r.stderr).toContain('SUCCEEDED');
      expect(r.code).toBe(0);
      const recs = testRecords<Rec>(r.stdout);
      const discovered = recs.filter((x) => x.step === 'discovered');
      expect(discovered.map((x) => x.id).sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      for (const d of discovered) {
        expect(d.n).toBe(n);
        expect(d.peers).toEqual([...Array(n).keys()]);
      }
      for (const b of ['b1', 'b2', 'b3']) expect(recs.filter((x) => x.name === b)).toHaveLength(n);
      // Every log line reached the client tagged by its worker.
      for (const line of r.stdout.split('\n').filter((l) => l.includes('T2TEST'))) {
        const id = (JSON.parse(line.split('T2TEST ')[1]!) as Rec).id;
        expect(line.startsWith(`[worker ${id}] `)).toBe(true);
      }
      const [jobId] = jobIds(home);
      expect(jobProcesses(jobId!)).toEqual([]);
    });
  }

  it('runs a shell command worker that uses `twister2 barrier` and `twister2 workers`', async () => {
    const home = tempHome();
    const script = [
      '#!/bin/sh',
      'set -eu',
      'echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"step\\": \\"start\\", \\"n\\": $TWISTER2_NUM_WORKERS}"',
      'twister2 barrier one',
      'count=$(twister2 workers --wait --json | grep -o \'"workerId"\' | wc -l)',
      'echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"step\\": \\"seen\\", \\"n\\": $count}"',
      'twister2 barrier two',
    ].join('\n');
    const job = makeJob({ name: 'shell', workers: 3, worker: { command: './w.sh' } }, { 'w.sh': script });
    const r = await runCli(['submit', job], home);
    expect(r.code, r.stderr).toBe(0);
    const recs = testRecords<Rec>(r.stdout);
    expect(recs.filter((x) => x.step === 'start').map((x) => x.id).sort()).toEqual([0, 1, 2]);
    expect(recs.filter((x) => x.step === 'seen').every((x) => x.n === 3)).toBe(true);
  });

  it('a failing command worker fails the job with exit code 1 and a message naming it', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'fails', workers: 2, worker: { command: 'if [ "$TWISTER2_WORKER_ID" = 1 ]; then exit 7; fi; sleep 30' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED: worker 1 failed: .*exited with code 7/);
    expect(jobProcesses(jobIds(home)[0]!)).toEqual([]);
  });
});

import { expect, it } from 'vitest';
import { fixture, jobIds, makeJob, tempHome } from '../helpers/cli.js';
import { runCliSlowly, SequenceCheck } from '../helpers/slow-reader.js';
import type { ConformanceTarget } from './launcher-conformance.js';

const WORKERS = 4;
/** Per worker: 7,500 lines of 100 bytes, 3 MB in all. */
const LINES = 7_500;

/**
 * Heavy output through a slow pipe, for every launcher: a client whose stdout is read late and slowly
 * (`twister2 submit job | (sleep 3; …)`) gets every worker's lines, each once, in order, and exits with
 * the job's outcome; nothing of the job is left. On a cluster whose worker output is read elsewhere
 * (`t.workerOutput`) that is where the lines are checked.
 */
export function heavyOutputCases(t: ConformanceTarget): void {
  it(`${WORKERS} workers printing ${(WORKERS * LINES * 100) / 1e6} MB to a slow pipe: every line arrives once, in order; nothing left`, async () => {
    const home = tempHome();
    const job = makeJob(
      {
        name: 'conform-output',
        cluster: t.cluster,
        workers: WORKERS,
        worker: { module: 'w.mjs', args: [String(LINES), '100'] },
        timeouts: { heartbeat: `${t.cleanupWithinMs}ms` },
        ...t.spec,
      },
      { 'w.mjs': fixture('output-worker.mjs') },
    );
    let check = new SequenceCheck();
    const r = await runCliSlowly(['submit', job], home, (c) => check.add(c), { delayMs: 3000, pauseMs: 5 });
    expect(r.code, r.stderr).toBe(0);
    const jobId = jobIds(home)[0]!;
    if (t.workerOutput) {
      check = new SequenceCheck();
      check.add(Buffer.from(t.workerOutput(home, jobId) + '\n'));
    }
    expect(check.firstError).toBeUndefined();
    expect([...check.counts.entries()].sort()).toEqual([...Array(WORKERS).keys()].map((id) => [id, LINES]));
    expect(await t.leftovers(jobId)).toEqual([]);
  });
}

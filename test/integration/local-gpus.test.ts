import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobIds, jobProcesses, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

/**
 * local.gpus: a list of GPU indexes divided among the workers through CUDA_VISIBLE_DEVICES, read here from
 * inside each worker. No GPU is needed: the indexes are only handed out, which is what is under test.
 */
interface Rec {
  id: number;
  restart: number;
  cvd: string | null;
  gpus?: string[] | null;
}

/** Prints what it sees; fails once on its first run when asked to (args[0] = ID); waits for a file when given one (args[1]). */
const GPU_WORKER = `
import { existsSync } from 'node:fs';
export default async function (ctx) {
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, restart: ctx.restartCount, cvd: process.env.CUDA_VISIBLE_DEVICES ?? null, gpus: ctx.gpus ?? null }));
  if (String(ctx.workerId) === ctx.args[0] && ctx.restartCount === 0) process.exit(9);
  const stop = ctx.args[1];
  while (stop && !existsSync(stop) && !ctx.signal.aborted) await new Promise((r) => setTimeout(r, 100));
}
`;

/** A command worker's view, from the shell: the program's own environment. */
const SHELL_WORKER = 'echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"restart\\": 0, \\"cvd\\": \\"${CUDA_VISIBLE_DEVICES-unset}\\"}"';

describe('local cluster: GPUs from local.gpus', () => {
  it('4 workers × 1 GPU of [0, 1, 2, 3]: four distinct CUDA_VISIBLE_DEVICES, and a restarted worker gets its own again', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'gpus-4', workers: 4, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] }, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs', args: ['2'] } },
      { 'w.mjs': GPU_WORKER },
    );
    // A CUDA_VISIBLE_DEVICES of the client's must not leak through.
    const r = await runCli(['submit', job], home, { CUDA_VISIBLE_DEVICES: '0,1,2,3' });
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<Rec>(r.stdout);
    const first = recs.filter((x) => x.restart === 0).sort((a, b) => a.id - b.id);
    expect(first.map((x) => [x.id, x.cvd])).toEqual([[0, '0'], [1, '1'], [2, '2'], [3, '3']]);
    // The worker context says the same (ctx.gpus).
    expect(first.map((x) => x.gpus)).toEqual([['0'], ['1'], ['2'], ['3']]);
    // Worker 2 failed on its first run and came back with the same GPU.
    expect(recs.filter((x) => x.restart === 1)).toEqual([{ id: 2, restart: 1, cvd: '2', gpus: ['2'] }]);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('2 GPUs each of a list in any order, seen by a command worker\'s program; workers asking none see none', async () => {
    const home = tempHome();
    const two = makeJob({ name: 'gpus-2x2', workers: 2, resources: { gpus: 2 }, local: { gpus: [6, 4, 7, 5] }, worker: { command: SHELL_WORKER } });
    const r = await runCli(['submit', two], home);
    expect(r.code, r.stderr).toBe(0);
    expect(testRecords<Rec>(r.stdout).sort((a, b) => a.id - b.id).map((x) => x.cvd)).toEqual(['6,4', '7,5']);
    const none = makeJob({ name: 'gpus-none', workers: 2, local: { gpus: [0, 1] }, worker: { command: SHELL_WORKER } });
    const r2 = await runCli(['submit', none], home);
    expect(r2.code, r2.stderr).toBe(0);
    expect(testRecords<Rec>(r2.stdout).map((x) => x.cvd)).toEqual(['', '']);
  });

  it('5 workers × 1 GPU of [0, 1, 2, 3]: exit code 2 before anything starts, naming the numbers and the fix', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'gpus-5', workers: 5, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] }, worker: { module: 'w.mjs' } }, { 'w.mjs': GPU_WORKER });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^twister2: invalid job spec:\n {2}- resources.gpus: 5 workers × 1 GPU\(s\) each \(resources.gpus\) need 5 GPUs, but local.gpus lists 4 on this machine \(.+\) \[0, 1, 2, 3\], and workers never share one; use at most 4 worker\(s\), or list more GPUs in local.gpus/);
    expect(r.stdout).not.toContain('T2TEST');
    expect(jobIds(home)).toEqual([]);
    // The same through --workers, and GPUs asked for without a list.
    const ok = makeJob({ name: 'gpus-flag', workers: 4, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] }, worker: { module: 'w.mjs' } }, { 'w.mjs': GPU_WORKER });
    const flag = await runCli(['submit', ok, '--workers', '5'], home);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/need 5 GPUs, but local.gpus lists 4/);
    const noList = makeJob({ name: 'gpus-nolist', workers: 1, resources: { gpus: 1 }, worker: { module: 'w.mjs' } }, { 'w.mjs': GPU_WORKER });
    const nl = await runCli(['submit', noList], home);
    expect(nl.code).toBe(2);
    expect(nl.stderr).toMatch(/resources.gpus: each worker asks for 1 GPU\(s\) but local.gpus does not list the GPUs of this machine/);
    expect(jobIds(home)).toEqual([]);
  });

  it('scaling: a worker added gets a free GPU; a scale past the list is refused and the job runs on', async () => {
    const home = tempHome();
    const stop = path.join(home, 'stop');
    const job = makeJob({ name: 'gpus-scale', workers: 2, resources: { gpus: 1 }, local: { gpus: [0, 1, 2] }, worker: { module: 'w.mjs', args: ['-', stop] } }, { 'w.mjs': GPU_WORKER });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job directory', () => jobIds(home)[0]);
    const recs = () => testRecords<Rec>(readLogs(home, jobId));
    await waitFor('2 workers started', () => recs().length === 2, 60_000);
    const up = await runCli(['scale', jobId, '3'], home);
    expect(up.code, up.stderr).toBe(0);
    await waitFor('worker 2 started', () => recs().length === 3, 60_000);
    const refused = await runCli(['scale', jobId, '4'], home);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/cluster "local" cannot scale this job from 3 to 4 workers: 4 workers × 1 GPU\(s\) each \(resources.gpus\) need 4 GPUs, but local.gpus lists 3 .*; the job keeps running with 3/);
    writeFileSync(stop, '');
    expect(await cli.closed).toBe(0);
    expect(recs().sort((a, b) => a.id - b.id).map((x) => [x.id, x.cvd])).toEqual([[0, '0'], [1, '1'], [2, '2']]);
    expect(jobProcesses(jobId)).toEqual([]);
  });
});

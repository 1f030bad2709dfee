import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent, LogLine } from '../../src/index.js';
import { fixture, jobProcesses, makeJob, readLogs, tempHome, testRecords, waitFor } from '../helpers/cli.js';

// The library as users get it: the built package's public entry point.
type Api = typeof import('../../src/index.js');
let api: Api;
const previousHome = process.env.TWISTER2_HOME;

beforeAll(async () => {
  process.env.TWISTER2_HOME = tempHome();
  api = (await import('../../dist/index.js' as string)) as Api;
});
afterAll(() => {
  if (previousHome === undefined) delete process.env.TWISTER2_HOME;
  else process.env.TWISTER2_HOME = previousHome;
});

const tsWorker = `
import type { WorkerContext } from 'twister2';
export default async function (ctx: WorkerContext): Promise<void> {
  const peers: number[] = (await ctx.workers()).map((w) => w.workerId);
  await ctx.barrier('typed');
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, n: ctx.numWorkers, peers: peers.length }));
}
`;

describe('library API', () => {
  it('submit() runs a TypeScript worker with the spec given in code; events, logs, status and wait work', async () => {
    const dir = makeJob(undefined, { 'worker.ts': tsWorker });
    const job = await api.submit({ job: dir, spec: { name: 'lib', workers: 3, worker: { module: 'worker.ts' } } });
    const events: JobEvent[] = [];
    job.on('event', (e) => events.push(e));
    const lines: LogLine[] = [];
    const logs = (async () => {
      for await (const l of job.logs({ follow: true })) lines.push(l);
    })();
    const final = await job.wait();
    await logs;
    expect(final.state).toBe('SUCCEEDED');
    expect(final.workers.map((w) => w.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    const recs = testRecords<{ id: number; n: number; peers: number }>(lines.map((l) => l.line).join('\n'));
    expect(recs.map((r) => r.id).sort()).toEqual([0, 1, 2]);
    expect(recs.every((r) => r.n === 3 && r.peers === 3)).toBe(true);
    for (const l of lines.filter((x) => x.line.startsWith('T2TEST'))) expect(JSON.parse(l.line.slice(7)).id).toBe(l.workerId);
    expect(events.filter((e) => e.type === 'job-state').map((e) => (e as { state: string }).state)).toEqual(['RUNNING', 'SUCCEEDED']);
    expect((await job.status()).state).toBe('SUCCEEDED');
    expect(jobProcesses(job.jobId)).toEqual([]);
  });

  it('submit() with a TypeScript driver given as a module path: the driver sums what the workers send; driverResult() and logs tag it', async () => {
    const driver = `import type { DriverContext } from 'twister2';
export default async function (ctx: DriverContext): Promise<{ sum: number; from: number[] }> {
  await ctx.broadcast({ multiply: Number(ctx.args[0]) });
  let sum = 0;
  const from: number[] = [];
  for await (const m of ctx.messages()) {
    sum += (m.data as { value: number }).value;
    from.push(m.from);
  }
  console.log('driver saw every worker complete');
  return { sum, from: from.sort() };
}
`;
    const worker = `export default async (ctx) => {
  for await (const m of ctx.messages()) {
    await ctx.send({ value: (ctx.workerId + 1) * m.data.multiply });
    return;
  }
};
`;
    const dir = makeJob(undefined, { 'driver.ts': driver, 'w.mjs': worker });
    const job = await api.submit({ job: dir, spec: { name: 'lib-driver', workers: 3, worker: { module: 'w.mjs' }, driver: { module: 'driver.ts', args: ['10'] } } });
    const lines: LogLine[] = [];
    const logs = (async () => {
      for await (const l of job.logs({ follow: true })) lines.push(l);
    })();
    expect(await job.driverResult()).toEqual({ sum: 60, from: [0, 1, 2] });
    await logs;
    const final = await job.wait();
    expect(final).toMatchObject({ state: 'SUCCEEDED', driver: { state: 'RETURNED', result: { sum: 60, from: [0, 1, 2] } } });
    expect(lines).toContainEqual({ workerId: 'driver', line: 'driver saw every worker complete' });
    expect(jobProcesses(job.jobId)).toEqual([]);
  });

  it('aborting the signal kills the job and leaves no process; workers() and scale() work meanwhile', async () => {
    const dir = makeJob({ name: 'abort', workers: 2, worker: { module: 'w.mjs' } }, { 'w.mjs': fixture('sleep-worker.mjs') });
    const ac = new AbortController();
    const job = await api.submit({ job: dir, signal: ac.signal });
    await new Promise<void>((resolve) => job.on('event', (e) => e.type === 'job-state' && e.state === 'RUNNING' && resolve()));
    expect((await job.workers()).map((w) => w.workerId).sort()).toEqual([0, 1]);
    // Past their barrier first: scaling aborts a barrier in flight, which fails the workers waiting at it.
    await waitFor('2 sleeping workers', () => testRecords<{ step: string }>(readLogs(process.env.TWISTER2_HOME!, job.jobId)).filter((r) => r.step === 'sleeping').length === 2);
    await job.scale(3);
    expect((await job.status()).numWorkers).toBe(3);
    ac.abort();
    const final = await job.wait();
    expect(final.state, final.message).toBe('KILLED');
    expect(final.message).toBe('aborted by the caller');
    expect(jobProcesses(job.jobId)).toEqual([]);
  });

  it('rejects a bad spec with a SpecError that names the field, before creating anything', async () => {
    const dir = makeJob(undefined, { 'w.mjs': 'export default async () => {}' });
    const err = await api.submit({ job: dir, spec: { name: 'x', workers: -1, worker: { module: 'w.mjs' } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(api.SpecError);
    expect((err as InstanceType<Api['SpecError']>).problems).toEqual([{ path: 'workers', message: expect.stringContaining('(got -1)') }]);
    expect(api.Twister2Error.is(err, 'T2_SPEC_INVALID')).toBe(true);
  });
});

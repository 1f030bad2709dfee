import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { jobIds, jobProcesses, makeJob, readLogs, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

interface Rec {
  id: number;
  restart: number;
  step: string;
  n?: number;
  pid?: number;
  code?: string;
}

const rec = `const rec = (ctx, o) => console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, restart: ctx.restartCount, ...o }));\n`;

async function submit(spec: Record<string, unknown>, files: Record<string, string>, onStart?: (home: string, jobId: string) => Promise<void>) {
  const home = tempHome();
  const cli = startCli(['submit', makeJob({ name: 'driver', ...spec }, files)], home);
  if (onStart) await onStart(home, await waitFor('the job', () => jobIds(home)[0]));
  const code = await cli.closed;
  const jobId = jobIds(home)[0]!;
  return { code, out: cli.output(), jobId, logs: readLogs(home, jobId), home };
}

describe('local cluster: a driver and messages', () => {
  it('examples/iterative-driver: the driver takes 8 epochs of gradients, scales 4 -> 6 halfway, and returns an estimate near the mean', async () => {
    const home = tempHome();
    const example = fileURLToPath(new URL('../../examples/iterative-driver', import.meta.url));
    const cli = startCli(['submit', '--cluster', 'local', path.relative(process.cwd(), example)], home);
    const code = await cli.closed;
    const { stdout, stderr } = cli.output();
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('[driver] epoch 4: scaled up to 6 workers');
    expect(stdout).toMatch(/\[driver\] epoch 8: 6 workers, 1000 points, estimate 49\.\d{4}/);
    const result = JSON.parse(/^twister2: the driver returned (.*)$/m.exec(stderr)![1]!) as { estimate: number; workers: number };
    const mean = Array.from({ length: 1000 }, (_, j) => (j * 37) % 101).reduce((a, b) => a + b) / 1000;
    expect(result.workers).toBe(6);
    expect(Math.abs(result.estimate - mean)).toBeLessThan(0.1);
    expect(jobProcesses(jobIds(home)[0]!)).toEqual([]);
  });

  // Worker 1 gets 100 numbered messages while it runs; worker 0 is SIGKILLed after its 30th and gets the rest
  // after its restart: they waited in its inbox meanwhile.
  it('100 numbered messages reach a worker in order; a worker SIGKILLed while they are sent gets the rest after its restart; the driver sees each worker join, fail, restart and complete', async () => {
    const driver = `export default async (ctx) => {
  const events = [];
  for (const e of ['workerJoined', 'workerFailed', 'workerRestarted', 'workerCompleted']) ctx.on(e, (id) => events.push(e + ' ' + id));
  await ctx.waitForWorkers();
  for (let n = 1; n <= 100; n++) {
    await ctx.send(0, { n });
    await ctx.send(1, { n });
    await new Promise((r) => setTimeout(r, 15));
  }
  let done = 0;
  for await (const m of ctx.messages()) if (m.data === 'done' && ++done === 2) break;
  for await (const m of ctx.messages()) throw new Error('unexpected ' + m.data); // ends once both completed
  return events;
};\n`;
    const worker = `${rec}export default async (ctx) => {
  rec(ctx, { step: 'start', pid: process.pid });
  for await (const m of ctx.messages()) {
    rec(ctx, { step: 'got', n: m.data.n });
    if (m.data.n === 30 && ctx.workerId === 0 && ctx.restartCount === 0) await new Promise(() => {}); // until it is killed
    if (m.data.n === 100) break;
  }
  await ctx.send('done');
};\n`;
    const { code, out, jobId, logs } = await submit({ workers: 2, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs' } }, { 'w.mjs': worker, 'd.mjs': driver }, async (home, id) => {
      const got30 = await waitFor('worker 0 took message 30', () => testRecords<Rec>(readLogs(home, id)).find((r) => r.id === 0 && r.step === 'got' && r.n === 30), 60_000);
      const start = testRecords<Rec>(readLogs(home, id)).find((r) => r.id === 0 && r.step === 'start' && r.restart === got30.restart)!;
      process.kill(start.pid!, 'SIGKILL');
    });
    expect(code, `${out.stderr}\n${logs}`).toBe(0);
    const events = JSON.parse(/^twister2: the driver returned (.*)$/m.exec(out.stderr)![1]!) as string[];
    expect(events.filter((e) => e.endsWith(' 0'))).toEqual(['workerJoined 0', 'workerFailed 0', 'workerRestarted 0', 'workerCompleted 0']);
    expect(events.filter((e) => e.endsWith(' 1'))).toEqual(['workerJoined 1', 'workerCompleted 1']);
    const got = (id: number, restart: number) => testRecords<Rec>(logs).filter((r) => r.id === id && r.restart === restart && r.step === 'got').map((r) => r.n);
    expect(got(1, 0)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(got(0, 0)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // Message 30 was taken but never acknowledged (the next receive would have): it comes again, then the rest in order.
    expect(got(0, 1)).toEqual(Array.from({ length: 71 }, (_, i) => i + 30));
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a message over the size limit is refused with a clear error on both sides; the job goes on', async () => {
    const driver = `export default async (ctx) => {
  await ctx.waitForWorkers();
  await ctx.send(0, 'x'.repeat(300000)).catch((e) => console.log('driver refused:', e.code, e.message));
  await ctx.send(0, 'small');
  for await (const m of ctx.messages()) return m.data;
};\n`;
    const worker = `export default async (ctx) => {
  for await (const m of ctx.messages()) {
    await ctx.send({ big: 'y'.repeat(300000) }).catch((e) => console.log('worker refused:', e.code, e.message));
    await ctx.send('got ' + m.data);
    return;
  }
};\n`;
    const { code, out, logs } = await submit({ workers: 1, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs' } }, { 'w.mjs': worker, 'd.mjs': driver });
    expect(code, `${out.stderr}\n${logs}`).toBe(0);
    expect(out.stdout).toMatch(/\[driver\] driver refused: T2_MESSAGE_TOO_LARGE a message is 300002 bytes of JSON, more than the 262144 a message may hold; send a reference/);
    expect(out.stdout).toMatch(/\[worker 0\] worker refused: T2_MESSAGE_TOO_LARGE a message is 300010 bytes of JSON, more than the 262144/);
    expect(out.stderr).toContain('the driver returned "got small"');
  });

  it('a shell command worker exchanges messages with the driver through `twister2 message recv` and `message send`', async () => {
    const worker = `set -u
big=$(head -c 300000 /dev/zero | tr '\\0' x)
printf '"%s"' "$big" | twister2 message send -; echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"restart\\": 0, \\"step\\": \\"big\\", \\"code\\": \\"$?\\"}"
twister2 message send 'not json'; echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"restart\\": 0, \\"step\\": \\"bad\\", \\"code\\": \\"$?\\"}"
while m=$(twister2 message recv --timeout 20s); do
  case "$m" in
    *stop*) break ;;
    *) twister2 message send "{\\"id\\": $TWISTER2_WORKER_ID, \\"got\\": $m}" ;;
  esac
done
`;
    const driver = `export default async (ctx) => {
  await ctx.waitForWorkers();
  await ctx.broadcast({ task: 1 });
  await ctx.broadcast({ task: 2 });
  const answers = [];
  for await (const m of ctx.messages()) {
    answers.push(m);
    if (answers.length === 4) break;
  }
  await ctx.broadcast('stop');
  return answers.map((a) => a.from + ':' + a.data.id + ':' + a.data.got.data.task).sort();
};\n`;
    const { code, out, logs } = await submit({ workers: 2, worker: { command: ['sh', 'w.sh'] }, driver: { module: 'd.mjs' } }, { 'w.sh': worker, 'd.mjs': driver });
    expect(code, `${out.stderr}\n${logs}`).toBe(0);
    expect(out.stderr).toContain('the driver returned ["0:0:1","0:0:2","1:1:1","1:1:2"]');
    const steps = testRecords<Rec>(logs);
    expect(steps.filter((r) => r.step === 'big').map((r) => r.code)).toEqual(['2', '2']);
    expect(steps.filter((r) => r.step === 'bad').map((r) => r.code)).toEqual(['2', '2']);
    expect(logs).toMatch(/twister2: a message is 300002 bytes of JSON, more than the 262144 a message may hold/);
    expect(logs).toMatch(/twister2: the message is not JSON: "not json"; quote it for the shell/);
  });

  it('driver.endsJob: when the driver returns the job succeeds and workers still waiting are stopped; nothing is left', async () => {
    const driver = `export default async (ctx) => { await ctx.waitForWorkers(); return ctx.numWorkers * 10; };\n`;
    const worker = `export default async (ctx) => { for await (const m of ctx.messages()) {} };\n`;
    const { code, out, jobId } = await submit({ workers: 3, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs', endsJob: true } }, { 'w.mjs': worker, 'd.mjs': driver });
    expect(code, out.stderr).toBe(0);
    expect(out.stderr).toMatch(/SUCCEEDED: the driver returned \(driver.endsJob\)/);
    expect(out.stderr).toContain('the driver returned 30');
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a driver that kills the job: KILLED with its reason (exit 3), the workers stopped, nothing left', async () => {
    const driver = `export default async (ctx) => { await ctx.waitForWorkers(); await ctx.kill('the driver had enough'); await new Promise(() => {}); };\n`;
    const worker = `export default async (ctx) => { for await (const m of ctx.messages()) {} };\n`;
    const { code, out, jobId } = await submit({ workers: 2, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs' } }, { 'w.mjs': worker, 'd.mjs': driver });
    expect(code, out.stderr).toBe(3);
    expect(out.stderr).toMatch(/KILLED: the driver had enough/);
    expect(jobProcesses(jobId)).toEqual([]);
  });

  it('a driver that throws fails the job with its message (exit 1); its output is tagged [driver] and in logs/driver.log', async () => {
    const driver = `export default async (ctx) => { console.log('about to fail', ctx.args.join(' ')); throw new Error('epoch 3 diverged'); };\n`;
    const worker = `export default async (ctx) => { for await (const m of ctx.messages()) {} };\n`;
    const { code, out, jobId, home } = await submit({ workers: 2, worker: { module: 'w.mjs' }, driver: { module: 'd.mjs', args: ['x', 'y'] } }, { 'w.mjs': worker, 'd.mjs': driver });
    expect(code).toBe(1);
    expect(out.stderr).toMatch(/FAILED: the driver failed: epoch 3 diverged/);
    expect(out.stdout).toContain('[driver] about to fail x y\n');
    const logs = startCli(['logs', jobId], home);
    expect(await logs.closed).toBe(0);
    expect(logs.output().stdout).toContain('[driver] about to fail x y\n');
    expect(jobProcesses(jobId)).toEqual([]);
  });
});

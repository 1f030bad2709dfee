import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, fixture, jobIds, makeJob, runCli, tempHome, waitFor } from '../helpers/cli.js';
import { runCliSlowly, SequenceCheck } from '../helpers/slow-reader.js';

const LINES = 200_000;
/** A reader that starts 3 s late, then pauses after every chunk: the CLI meets a full pipe all along. */
const SLOW = { delayMs: 3000, pauseMs: 5 };

const outputJob = (name: string, workers: number, args: (number | string)[]) =>
  makeJob({ name, workers, worker: { module: 'w.mjs', args: args.map(String) } }, { 'w.mjs': fixture('output-worker.mjs') });

/** Every worker's lines 0..lines-1 arrived, each once, in order. */
function expectAll(check: SequenceCheck, workers: number, lines: number): void {
  expect(check.firstError).toBeUndefined();
  expect([...check.counts.entries()].sort()).toEqual([...Array(workers).keys()].map((id) => [id, lines]));
}

describe('local: worker output through a slow pipe', () => {
  it(`submit: ${LINES} lines (20 MB) all arrive, once each, in order`, async () => {
    const home = tempHome();
    const check = new SequenceCheck();
    const r = await runCliSlowly(['submit', outputJob('heavy-submit', 1, [LINES, 100])], home, (c) => check.add(c), SLOW);
    expect(r.code, r.stderr).toBe(0);
    expectAll(check, 1, LINES);
    rmSync(home, { recursive: true, force: true });
  });

  it(`logs: ${LINES} lines of an ended job all arrive, once each, in order`, async () => {
    const home = tempHome();
    const done = await runCli(['submit', outputJob('heavy-logs', 2, [LINES / 2, 100]), '--detach'], home);
    expect(done.code, done.stderr).toBe(0);
    const jobId = jobIds(home)[0]!;
    // Wait for the end through `logs -f` read at full speed, then read the ended job's logs slowly.
    expect((await runCli(['logs', '-f', jobId], home)).code).toBe(0);
    const check = new SequenceCheck();
    const r = await runCliSlowly(['logs', jobId], home, (c) => check.add(c), SLOW);
    expect(r.code, r.stderr).toBe(0);
    expectAll(check, 2, LINES / 2);
    rmSync(home, { recursive: true, force: true });
  });

  it(`logs -f: ${LINES} lines printed while following all arrive, once each, in order`, async () => {
    const home = tempHome();
    // The workers wait 2 s before printing, so the follower is there first.
    const done = await runCli(['submit', outputJob('heavy-follow', 2, [LINES / 2, 100, 2000]), '--detach'], home);
    expect(done.code, done.stderr).toBe(0);
    const check = new SequenceCheck();
    const r = await runCliSlowly(['logs', '-f', jobIds(home)[0]!], home, (c) => check.add(c), SLOW);
    expect(r.code, r.stderr).toBe(0);
    expectAll(check, 2, LINES / 2);
    rmSync(home, { recursive: true, force: true });
  });

  it('a job that fails (exit 1): every line printed before the end still arrives', async () => {
    const home = tempHome();
    const check = new SequenceCheck();
    const r = await runCliSlowly(['submit', outputJob('heavy-fail', 1, [LINES / 2, 100, 0, 'fail'])], home, (c) => check.add(c), SLOW);
    expect(r.code, r.stderr).toBe(1);
    expectAll(check, 1, LINES / 2);
    rmSync(home, { recursive: true, force: true });
  });

  it('Ctrl-C (exit 130): every line printed before it still arrives', async () => {
    const home = tempHome();
    const check = new SequenceCheck();
    let client = 0;
    const running = runCliSlowly(['submit', outputJob('heavy-int', 1, [LINES / 2, 100, 0, 'hang'])], home, (c) => check.add(c), { ...SLOW, onStart: (pid) => (client = pid) });
    // Interrupt once the worker printed everything, while most of it still waits in the pipe.
    const log = () => path.join(home, 'jobs', jobIds(home)[0] ?? '-', 'logs', 'worker-0.log');
    await waitFor('the last line in the log', () => lastBytes(log(), 200).includes(`seq 0 ${LINES / 2 - 1} `), 60_000);
    process.kill(client, 'SIGINT');
    const r = await running;
    expect(r.code, r.stderr).toBe(130);
    expectAll(check, 1, LINES / 2);
    rmSync(home, { recursive: true, force: true });
  });

  it('a reader that goes away (`submit job | head -1`) ends the output, not the job: exit 0, no internal error', async () => {
    const home = tempHome();
    const child = spawn(process.execPath, [CLI, 'submit', outputJob('heavy-head', 1, [LINES / 4, 100])], { env: { ...process.env, TWISTER2_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise((resolve) => child.once('close', resolve));
    expect(stderr).not.toMatch(/internal error|EPIPE/);
    expect(code, stderr).toBe(0);
    rmSync(home, { recursive: true, force: true });
  });

  it('client memory stays under 200 MB while workers print 300 MB', async () => {
    const home = tempHome();
    const check = new SequenceCheck();
    let peakKiB = 0;
    let timer: NodeJS.Timeout | undefined;
    const sample = (pid: number) => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readProcStatus(pid));
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
    };
    // 2 workers × 150,000 lines of 1000 bytes; the reader starts late so that the output piles up first.
    const r = await runCliSlowly(['submit', outputJob('heavy-memory', 2, [150_000, 1000])], home, (c) => check.add(c), {
      delayMs: 2000,
      onStart: (pid) => (timer = setInterval(() => sample(pid), 50)),
    });
    clearInterval(timer);
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB / 1024).toBeLessThan(200);
    expect(r.code, r.stderr).toBe(0);
    expectAll(check, 2, 150_000);
    rmSync(home, { recursive: true, force: true });
  });
});

function readProcStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return ''; // exited
  }
}

function lastBytes(file: string, n: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(n);
      const read = readSync(fd, buf, 0, n, Math.max(0, statSync(file).size - n));
      return buf.subarray(0, read).toString();
    } finally {
      closeSync(fd);
    }
  } catch {
    return ''; // not there yet
  }
}

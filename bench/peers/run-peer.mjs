// Runs one peer (or any command) as a whole process and stops everything it left behind: every process
// that inherited this run's marker in its environment (Ray's raylet and GCS server detach from the process
// group, so a group kill is not enough).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const MARKER = 'TWISTER2_BENCH_RUN';

/** Wall ms from spawn to exit; rejects (after cleaning up) if it failed or overran. */
export async function timedRun(cmd, args, opts = {}) {
  return (await markedRun(cmd, args, opts)).ms;
}

/** Runs a command that prints one JSON line last on stdout; resolves with it (cleaning up as timedRun does). */
export async function runForJson(cmd, args, opts = {}) {
  const { stdout } = await markedRun(cmd, args, { ...opts, stdout: true });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

/** One run with this run's marker in its environment: its wall ms and (if asked for) its stdout; whatever it left is killed. */
async function markedRun(cmd, args, { env = {}, timeoutMs = 180_000, stdout: keepStdout = false } = {}) {
  const mark = randomBytes(8).toString('hex');
  const t0 = performance.now();
  let stdout = '';
  let stderr = '';
  try {
    await new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { env: { ...process.env, ...env, [MARKER]: mark }, stdio: ['ignore', keepStdout ? 'pipe' : 'ignore', 'pipe'] });
      child.stdout?.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`${cmd} ${args.join(' ')} ended with ${signal ?? `code ${code}`}: ${stderr.trim().split('\n').slice(-2).join(' ')}`));
      });
    });
    return { ms: performance.now() - t0, stdout };
  } finally {
    const left = killMarked(mark);
    if (left) process.stderr.write(`peers: killed ${left} process(es) left behind by ${cmd} ${args.join(' ')}\n`);
  }
}

/** SIGKILLs every process carrying the marker; how many there were. */
export function killMarked(mark) {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${MARKER}=${mark}`)) continue;
      process.kill(Number(pid), 'SIGKILL');
      n++;
    } catch {
      // gone already, or not ours to read
    }
  }
  return n;
}

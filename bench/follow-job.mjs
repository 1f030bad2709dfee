// What the start-up benchmarks share: follow a submitted job until all N workers passed the first barrier;
// find what is left of a job.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Watches `handle` until N `BENCH-PASSED <ms>` lines arrived (or `timeoutMs` passed), kills the job if
 * they did not, and waits for its end. Returns when the job turned RUNNING, the barrier timestamps and
 * the final status; the caller decides what counts as a failed run.
 */
export async function followUntilPassed(handle, n, timeoutMs) {
  let registered;
  handle.on('event', (e) => {
    if (e.type === 'job-state' && e.state === 'RUNNING') registered ??= Date.now();
  });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const passed = [];
  try {
    for await (const { line } of handle.logs({ follow: true, signal: abort.signal })) {
      const m = /^BENCH-PASSED (\d+)$/.exec(line);
      if (m) passed.push(Number(m[1]));
      if (passed.length === n) break;
    }
  } finally {
    clearTimeout(timer);
    if (passed.length < n) await handle.kill('benchmark run incomplete').catch(() => undefined);
  }
  return { registered, passed, status: await handle.wait() };
}

/** PIDs of processes (other than this one) whose environment names the job: what a run left behind. */
export function jobProcesses(jobId) {
  const needle = Buffer.from(`TWISTER2_JOB_ID=${jobId}\0`);
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(needle)) pids.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

import { readdirSync, readFileSync } from 'node:fs';
import { ENV, withoutTwister2Variables } from '../job/worker-environment.js';

/** Helpers for launchers that run their processes (workers, mpirun) on this machine. */

/** Signals a whole process group: the process and whatever its program started. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** The client's environment, minus another job's twister2 variables (a job submitted from inside a worker). */
export function inheritedEnv(): NodeJS.ProcessEnv {
  return withoutTwister2Variables(process.env);
}

/** Whether a process exists and is not a zombie (one whose parent has not collected it yet is gone all the same). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true; // no /proc (not Linux): it exists
    } catch {
      return false;
    }
  }
}

/**
 * The worker runtimes of job `jobId` running on this machine, by worker ID: live processes started as
 * `node <workerMain>` whose environment names the job (their programs' processes carry the job's
 * variables too, but run something else).
 */
export function workerProcesses(jobId: string, workerMain: string): Map<number, number> {
  const found = new Map<number, number>();
  const job = `${ENV.jobId}=${jobId}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[1] !== workerMain) continue;
      const vars = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const id = vars.find((v) => v.startsWith(`${ENV.workerId}=`));
      if (vars.includes(job) && id && processAlive(Number(entry))) found.set(Number(id.slice(ENV.workerId.length + 1)), Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

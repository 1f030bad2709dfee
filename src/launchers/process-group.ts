import { readFileSync } from 'node:fs';
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

/** Whether `pid` is a live process of job `jobId` (its environment names the job), not another that reused the PID. */
export function processOfJob(pid: number, jobId: string): boolean {
  if (!processAlive(pid)) return false;
  try {
    const environ = readFileSync(`/proc/${pid}/environ`);
    const needle = `${ENV.jobId}=${jobId}\0`;
    return environ.subarray(0, needle.length).toString() === needle || environ.includes(`\0${needle}`);
  } catch {
    return false;
  }
}

import { withoutTwister2Variables } from '../job/worker-environment.js';

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

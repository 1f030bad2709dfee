import path from 'node:path';
import { runJobMasterProcess } from '../../jobmaster/main.js';
import { killDescendants } from '../../worker/process-tree.js';
import { runWorker } from '../../worker/runtime.js';

/** Hidden: the job master as its own process, started by `submit --detach` and by cluster launchers. */
export function jobMasterCommand(jobDir: string): Promise<number> {
  return runJobMasterProcess(path.resolve(jobDir));
}

/** Hidden: the worker runtime, for launchers that start `twister2 worker` rather than its script. */
export function workerCommand(): Promise<number> {
  process.once('SIGTERM', () => {
    killDescendants();
    process.exit(143);
  });
  return runWorker();
}

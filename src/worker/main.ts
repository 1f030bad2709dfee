import { Twister2Error } from '../errors.js';
import { runWorkerProcess, WorkerExit } from './runtime.js';

/** Entry point of the worker runtime process that launchers start. Stopping it stops its program's processes. */
runWorkerProcess().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof Twister2Error ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`[twister2 worker] cannot start: ${message}`);
    process.exit(WorkerExit.setupFailed);
  },
);

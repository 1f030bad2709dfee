import { markPhase } from './phases.js';

markPhase('node started');
const { Twister2Error } = await import('../errors.js');
const { runWorkerProcess, WorkerExit } = await import('./runtime.js');
const { exitWhenFlushed } = await import('../exit-flushed.js');
markPhase('modules loaded');

/** How long a worker that ended waits for a stuck reader of its output (a pipe nobody reads) before it exits anyway. */
const FLUSH_AT_MOST_MS = 5000;

/** Entry point of the worker runtime process that launchers start. Stopping it stops its program's processes. */
runWorkerProcess().then(
  // A module worker's output may still be queued for a pipe (MPI, Nomad, pods): exit once it is written.
  (code) => exitWhenFlushed(code, FLUSH_AT_MOST_MS),
  (err: unknown) => {
    const message = err instanceof Twister2Error ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`[twister2 worker] cannot start: ${message}`);
    exitWhenFlushed(WorkerExit.setupFailed, FLUSH_AT_MOST_MS);
  },
);

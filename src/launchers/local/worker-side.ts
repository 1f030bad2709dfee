import type { WorkerSide } from '../worker-side.js';

/** Local workers are given their ID by the launcher (TWISTER2_WORKER_ID); nothing else to find or clean up. */
export const workerSide: WorkerSide = {
  idSources: [],
  workerId: () => undefined,
};

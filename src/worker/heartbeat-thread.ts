import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { JobMasterWatch, type WatchData, type WatchMessage } from './job-master-watch.js';

/**
 * The heartbeat thread of a module worker: its JobMasterWatch runs here, so that a program keeping the
 * main thread busy (a long synchronous computation) is not taken for dead, and is still ended, with
 * everything it started, when the job master is gone or the job ends.
 */

export interface HeartbeatThreadData extends WatchData {
  /** The run's process marker (ProgramTree), for ending the program when the main thread cannot. */
  marker: string;
  /** How long the main thread has to answer a stop before this thread ends the program and the process. */
  mainThreadAnswerMs: number;
}

/** The main thread's answer to a stop: it ends the program itself. */
export type MainMessage = { type: 'stopping' };

const d = workerData as HeartbeatThreadData;
const port = parentPort!;
let takeOverTimer: NodeJS.Timeout | undefined;

new JobMasterWatch(d, (m: WatchMessage) => {
  port.postMessage(m);
  if (m.type === 'stop') takeOverTimer = setTimeout(() => void takeOver(m.reason, m.lost), d.mainThreadAnswerMs);
});
port.on('message', (m: MainMessage) => {
  if (m.type === 'stopping') clearTimeout(takeOverTimer);
});

/**
 * The main thread did not answer (the program keeps it busy): end the program's processes and this
 * process from here. Written straight to stderr, since a worker thread's console goes through the main thread.
 */
async function takeOver(reason: string, lost: boolean): Promise<void> {
  const log = (line: string) => writeSync(2, `[twister2 worker ${d.workerId}] ${line}\n`);
  log(`stopping: ${reason} (the program keeps the main thread busy, so it is ended from the heartbeat thread)`);
  // Loaded only now: every module worker starts this thread, and almost none ever gets here.
  const [{ ProgramTree }, { endOrphanedJob }] = await Promise.all([import('./process-tree.js'), import('../launchers/worker-sides.js')]);
  new ProgramTree(d.marker).killNow();
  if (lost) await endOrphanedJob(process.env, log);
  process.kill(process.pid, 'SIGKILL');
}

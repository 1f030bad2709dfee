import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { HealthCheckData } from './health-check.js';
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
  /** worker.health, checked from here. */
  health?: HealthCheckData | undefined;
}

/** The main thread's answer to a stop or a failed health check: it ends the program itself. */
export type MainMessage = { type: 'stopping' };

/** What this thread tells the main thread besides the watch's messages. */
export type ThreadMessage = WatchMessage | { type: 'unhealthy'; reason: string };

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
// Loaded only for a worker with a health check.
if (d.health) {
  const { HealthChecker } = await import('./health-check.js');
  new HealthChecker(d.health, (reason) => {
    port.postMessage({ type: 'unhealthy', reason } satisfies ThreadMessage);
    takeOverTimer = setTimeout(() => void failUnhealthy(reason), d.mainThreadAnswerMs);
  });
}

/**
 * Failed its health check while the main thread does not answer (the program keeps it busy, which may be
 * why): tell the job master that this worker failed and why, as the main thread would, then end the
 * program and this process.
 */
async function failUnhealthy(reason: string): Promise<void> {
  writeSync(2, `[twister2 worker ${d.workerId}] failed: ${reason} (the program keeps the main thread busy, so it is ended from the heartbeat thread)\n`);
  const { httpCall } = await import('../protocol/http-call.js');
  await httpCall(`${d.url}/v1/workers/${d.workerId}/complete`, { method: 'POST', headers: d.headers, body: { session: d.session, ok: false, message: reason }, timeoutMs: 5000 }).catch(() => undefined);
  const { ProgramTree } = await import('./process-tree.js');
  new ProgramTree(d.marker).killNow();
  process.kill(process.pid, 'SIGKILL');
}

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

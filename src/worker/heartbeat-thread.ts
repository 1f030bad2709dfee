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
  if (m.type !== 'stop') return;
  takeOverUnlessAnswered(`stopping: ${m.reason}`, async (log) => {
    if (m.lost) await (await import('../launchers/worker-sides.js')).endOrphanedJob(process.env, log);
  });
});
port.on('message', (m: MainMessage) => {
  if (m.type === 'stopping') clearTimeout(takeOverTimer);
});
// Loaded only for a worker with a health check.
if (d.health) {
  const { HealthChecker } = await import('./health-check.js');
  new HealthChecker(d.health, (reason) => {
    port.postMessage({ type: 'unhealthy', reason } satisfies ThreadMessage);
    // Told to the job master as the main thread would: this worker failed, and why.
    takeOverUnlessAnswered(`failed: ${reason}`, async () => {
      const { httpCall } = await import('../protocol/http-call.js');
      const body = { session: d.session, ok: false, message: reason };
      await httpCall(`${d.url}/v1/workers/${d.workerId}/complete`, { method: 'POST', headers: d.headers, body, timeoutMs: 5000 }).catch(() => undefined);
    });
  });
}

/** Unless the main thread answers within mainThreadAnswerMs, ends the program from here (takeOver). */
function takeOverUnlessAnswered(line: string, onBehalf: (log: (line: string) => void) => Promise<void>): void {
  takeOverTimer = setTimeout(() => void takeOver(line, onBehalf), d.mainThreadAnswerMs);
}

/**
 * The main thread did not answer (the program keeps it busy): end the program's processes, do what the
 * main thread would have told the job master or the cluster, then end this process. Written straight to
 * stderr, since a worker thread's console goes through the main thread.
 */
async function takeOver(line: string, onBehalf: (log: (line: string) => void) => Promise<void>): Promise<void> {
  const log = (text: string) => writeSync(2, `[twister2 worker ${d.workerId}] ${text}\n`);
  log(`${line} (the program keeps the main thread busy, so it is ended from the heartbeat thread)`);
  // Loaded only now: every module worker starts this thread, and almost none ever gets here.
  const { ProgramTree } = await import('./process-tree.js');
  new ProgramTree(d.marker).killNow();
  await onBehalf(log);
  process.kill(process.pid, 'SIGKILL');
}

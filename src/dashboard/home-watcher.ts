import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { attachJob, jobMasterAlive, type JobHandle } from '../client/job-handle.js';
import { files, jobDirOf, listJobIds, readFinalStatus, readRecord, type JobRecord } from '../job/job-store.js';
import { TERMINAL_JOB_STATES, type JobStatus } from '../protocol/messages.js';
import type { JobBoard } from './job-board.js';
import { specRows } from './spec-rows.js';

const SCAN_MS = 1000;
const POLL_MS = 1000;

/**
 * Finds the jobs of this machine's TWISTER2_HOME (whatever their cluster) and keeps the board up to date
 * with each running one: its job master's status every second, its events as they come. A job that
 * ended is read once from its final status.
 */
export class HomeWatcher {
  private readonly tracked = new Map<string, AbortController>();
  private readonly handles = new Map<string, JobHandle>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly board: JobBoard) {}

  start(): void {
    void this.scan();
    this.timer = setInterval(() => void this.scan(), SCAN_MS);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const c of this.tracked.values()) c.abort();
  }

  /** The job's handle, while it is followed (for scale, kill and logs). */
  handle(jobId: string): JobHandle | undefined {
    return this.handles.get(jobId);
  }

  isHome(jobId: string): boolean {
    return this.tracked.has(jobId);
  }

  /** A job of this machine's directory (its logs), or undefined for one that only reports. */
  jobDir(jobId: string): string | undefined {
    return this.tracked.has(jobId) ? jobDirOf(jobId) : undefined;
  }

  private async scan(): Promise<void> {
    for (const id of await listJobIds()) {
      if (this.stopped || this.tracked.has(id)) continue;
      const ctl = new AbortController();
      this.tracked.set(id, ctl);
      void this.follow(id, ctl.signal).catch((err: Error) => console.error(`twister2 dashboard: job ${id}: ${err.message}`));
    }
  }

  private async follow(jobId: string, signal: AbortSignal): Promise<void> {
    const dir = jobDirOf(jobId);
    const spec = await readFile(path.join(dir, files.spec), 'utf8').then((t) => specRows(JSON.parse(t)), () => []);
    let last: JobStatus | undefined;
    let events: Promise<void> | undefined;
    while (!signal.aborted) {
      let record: JobRecord;
      try {
        record = await readRecord(dir);
      } catch {
        await sleep(POLL_MS * 2, signal); // being written, or not a job: look again later
        continue;
      }
      const final = await readFinalStatus(dir).catch(() => undefined);
      if (final) {
        this.board.update({ via: 'home', status: final, spec, controls: { scale: false, kill: false }, logs: true });
        this.handles.delete(jobId);
        return;
      }
      const handle = this.handles.get(jobId) ?? (record.jobMaster ? await attachJob(jobId).catch(() => undefined) : undefined);
      if (!handle) {
        this.board.update({ via: 'home', status: last ?? startingStatus(record), spec, controls: { scale: false, kill: false }, logs: true });
        await sleep(POLL_MS, signal);
        continue;
      }
      this.handles.set(jobId, handle);
      events ??= this.followEvents(jobId, handle, signal).finally(() => (events = undefined));
      try {
        last = await handle.status();
        const live = !TERMINAL_JOB_STATES.includes(last.state);
        this.board.update({ via: 'home', status: last, spec, controls: { scale: live, kill: live }, logs: true });
      } catch {
        const alive = await jobMasterAlive(record, handle.client);
        const status = last ?? startingStatus(record);
        this.board.update({ via: 'home', status, state: alive ? 'UNREACHABLE' : 'LOST', spec, controls: { scale: false, kill: alive }, logs: true });
      }
      await sleep(POLL_MS, signal);
    }
  }

  /** The job master's events, for the timeline; followed again after the stream broke (a restarted job master). */
  private async followEvents(jobId: string, handle: JobHandle, signal: AbortSignal): Promise<void> {
    try {
      for await (const event of handle.events(signal)) this.board.addEvents(jobId, [{ at: new Date().toISOString(), event }]);
    } catch {
      // The next poll starts it again.
    }
  }
}

function startingStatus(record: JobRecord): JobStatus {
  return { jobId: record.jobId, name: record.name, cluster: record.cluster, state: 'STARTING', numWorkers: record.workers, registered: 0, workers: [], startedAt: record.createdAt };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

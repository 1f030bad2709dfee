import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { writeJson } from '../job/job-store.js';
import { TERMINAL_JOB_STATES, type JobEvent, type JobStatus } from '../protocol/messages.js';
import type { JobDetail, JobSummary, Sample, TimelineEntry, WorkerRow } from './view.js';

/** Events kept per job, and points of its chart: a long job keeps its recent past. */
const MAX_TIMELINE = 500;
const MAX_SAMPLES = 600;
/** A job master reports at least every second while it can (jobmaster/dashboard-reporter.ts). */
const STALE_MS = 15_000;

export interface JobUpdate {
  via: JobDetail['via'];
  status: JobStatus;
  /** LOST or UNREACHABLE: what the dashboard concluded when the job master does not answer. */
  state?: JobSummary['state'];
  spec?: JobDetail['spec'];
  controls: JobDetail['controls'];
  logs: boolean;
}

/**
 * Every job the dashboard knows, as the page shows it. Ended jobs beyond `maxEnded` are forgotten, oldest
 * first; the ended ones are saved to `historyFile` (a restarted dashboard shows them again).
 */
export class JobBoard extends EventEmitter<{ changed: [string]; removed: [string] }> {
  private readonly jobs = new Map<string, JobDetail>();
  /** The last event number taken from each reporting job master (`<jobId> <reporter>`). */
  private readonly lastSeq = new Map<string, number>();
  private saving: NodeJS.Timeout | undefined;
  /** Something changed since the history was last written. */
  private dirty = false;

  constructor(
    private readonly historyFile: string,
    private readonly maxEnded = 200,
  ) {
    super();
  }

  async load(): Promise<void> {
    let saved: JobDetail[] = [];
    try {
      saved = JSON.parse(await readFile(this.historyFile, 'utf8')) as JobDetail[];
    } catch {
      return; // none yet, or unreadable: start afresh rather than not at all
    }
    for (const d of saved) if (d && typeof d.jobId === 'string') this.jobs.set(d.jobId, { ...d, controls: { scale: false, kill: false } });
  }

  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  detail(jobId: string): JobDetail | undefined {
    return this.jobs.get(jobId);
  }

  summaries(): JobSummary[] {
    return [...this.jobs.values()].map(summaryOf).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  summary(jobId: string): JobSummary | undefined {
    const d = this.jobs.get(jobId);
    return d && summaryOf(d);
  }

  isEnded(jobId: string): boolean {
    const d = this.jobs.get(jobId);
    return d !== undefined && ended(d);
  }

  update(u: JobUpdate, now = new Date()): void {
    const s = u.status;
    const before = this.jobs.get(s.jobId);
    const workers: WorkerRow[] = s.workers.map((w) => rowOf(w, s.heartbeatTimeoutMs, now));
    const running = workers.filter((w) => w.state === 'RUNNING').length;
    const samples = before?.samples ?? [];
    const last = samples.at(-1);
    if (!last || last.running !== running || last.total !== s.numWorkers) addSample(samples, { at: now.toISOString(), running, total: s.numWorkers });
    const detail: JobDetail = {
      jobId: s.jobId,
      name: s.name,
      cluster: s.cluster,
      state: u.state ?? s.state,
      numWorkers: s.numWorkers,
      running,
      workerStates: workers.map((w) => ({ workerId: w.workerId, state: w.state })),
      startedAt: s.startedAt,
      ...(s.endedAt ? { endedAt: s.endedAt } : {}),
      ...(s.message ? { message: s.message } : {}),
      via: u.via,
      updatedAt: now.toISOString(),
      spec: u.spec ?? before?.spec ?? [],
      workers,
      barriers: s.barriers ?? [],
      timeline: before?.timeline ?? [],
      samples,
      ...(s.driver ? { driver: s.driver } : {}),
      controls: u.controls,
      logs: u.logs,
    };
    this.jobs.set(s.jobId, detail);
    if (before && JSON.stringify({ ...before, updatedAt: '' }) === JSON.stringify({ ...detail, updatedAt: '' })) return;
    this.dirty = true;
    this.emit('changed', s.jobId);
    if (ended(detail)) this.trimAndSave();
  }

  /** Events as the job master emitted them (not its snapshots, which `update` carries). */
  addEvents(jobId: string, events: Array<{ at: string; seq?: number | undefined; event: JobEvent }>, reporter?: string): void {
    const d = this.jobs.get(jobId);
    if (!d) return;
    // A report sent again (its answer was lost) carries events the board has: each reporter's count says which.
    if (reporter !== undefined) {
      const key = `${jobId} ${reporter}`;
      const seen = this.lastSeq.get(key) ?? 0;
      events = events.filter((e) => e.seq === undefined || e.seq > seen);
      const top = Math.max(seen, ...events.map((e) => e.seq ?? 0));
      this.lastSeq.set(key, top);
    }
    // A snapshot is the state of things when the dashboard began to follow: for a timeline that has nothing
    // yet, it says where the job and each worker stood then; otherwise `update` has it.
    const fresh = events.flatMap((e) => (e.event.type !== 'snapshot' ? [e] : d.timeline.length === 0 ? fromSnapshot(e.at, e.event.status) : []));
    if (fresh.length === 0) return;
    d.timeline.push(...fresh.map(({ at, event }) => ({ at, event }) as TimelineEntry));
    if (d.timeline.length > MAX_TIMELINE) d.timeline.splice(0, d.timeline.length - MAX_TIMELINE);
    this.dirty = true;
    this.emit('changed', jobId);
  }

  /**
   * A job that reports and has not for STALE_MS (its job master is gone, or cannot reach the dashboard) shows
   * as UNREACHABLE until it reports again: a job master that ended while the dashboard was down could not say so.
   */
  markStale(now = Date.now()): void {
    for (const d of this.jobs.values()) {
      if (d.via !== 'report' || ended(d) || d.state === 'UNREACHABLE' || now - Date.parse(d.updatedAt) < STALE_MS) continue;
      d.state = 'UNREACHABLE';
      d.message = `no report from its job master since ${d.updatedAt}`;
      d.controls = { scale: false, kill: false };
      this.dirty = true;
      this.emit('changed', d.jobId);
    }
  }

  private trimAndSave(): void {
    const done = [...this.jobs.values()].filter(ended).sort((a, b) => (b.endedAt ?? b.updatedAt).localeCompare(a.endedAt ?? a.updatedAt));
    for (const d of done.slice(this.maxEnded)) {
      this.jobs.delete(d.jobId);
      this.emit('removed', d.jobId);
    }
    clearTimeout(this.saving);
    this.saving = setTimeout(() => void this.save(), 200);
  }

  /**
   * Writes the ended jobs, and those that report (only their reports tell of them), now: also when the
   * dashboard stops. Jobs of this machine's TWISTER2_HOME are found there again.
   */
  async save(): Promise<void> {
    clearTimeout(this.saving);
    if (!this.dirty) return;
    this.dirty = false;
    const done = [...this.jobs.values()].filter((d) => ended(d) || d.via === 'report');
    await writeJson(this.historyFile, done, 0o600).catch((err: Error) => console.error(`twister2 dashboard: cannot save its history: ${err.message}`));
  }
}

function fromSnapshot(at: string, s: JobStatus): TimelineEntry[] {
  return [
    { at, event: { type: 'job-state', state: s.state, ...(s.message ? { message: s.message } : {}) } },
    ...s.workers.map((w) => ({ at, event: { type: 'worker-state' as const, workerId: w.workerId, state: w.state, restarts: w.restarts } })),
  ];
}

function ended(d: JobDetail): boolean {
  return (TERMINAL_JOB_STATES as readonly string[]).includes(d.state) || d.state === 'LOST';
}

function summaryOf(d: JobDetail): JobSummary {
  const { jobId, name, cluster, state, numWorkers, running, workerStates, startedAt, endedAt, message, via, updatedAt } = d;
  return { jobId, name, cluster, state, numWorkers, running, workerStates, startedAt, ...(endedAt ? { endedAt } : {}), ...(message ? { message } : {}), via, updatedAt };
}

function rowOf(w: JobStatus['workers'][number], timeoutMs: number | undefined, now: Date): WorkerRow {
  const heard = w.lastHeartbeatAt ? Date.parse(w.lastHeartbeatAt) : undefined;
  let health = '';
  if (w.state === 'FAILED') health = `failed${w.message ? `: ${w.message}` : ''}`;
  else if (w.state === 'RUNNING') health = heard !== undefined && timeoutMs !== undefined && now.getTime() - heard > timeoutMs / 2 ? 'late' : 'ok';
  return {
    workerId: w.workerId,
    state: w.state,
    ...(w.info ? { host: w.info.host, ip: w.info.ip, ports: w.info.ports } : {}),
    restarts: w.restarts,
    ...(w.lastHeartbeatAt ? { lastHeartbeatAt: w.lastHeartbeatAt } : {}),
    health,
    ...(w.message ? { message: w.message } : {}),
  };
}

/** Keeps the chart's points bounded: when full, every other old point goes. */
function addSample(samples: Sample[], s: Sample): void {
  samples.push(s);
  if (samples.length <= MAX_SAMPLES) return;
  const kept = samples.filter((_, i) => i % 2 === 0 || i >= samples.length - 10);
  samples.splice(0, samples.length, ...kept);
}

import { randomBytes } from 'node:crypto';
import { DashboardReplySchema, MAX_REPORT_EVENTS, REPORT_PATH } from '../protocol/dashboard-report.js';
import type { JobEvent, JobStatus } from '../protocol/messages.js';
import type { JobMaster } from './job-master.js';

/** A report at most this often while the job changes, and at least this often while it does not (how soon a button press arrives). */
const BUSY_MS = 500;
const QUIET_MS = 1000;
/** After a failed report: the dashboard is down or slow, and is left alone a while. */
const BACKOFF_MS = 5000;
const REQUEST_TIMEOUT_MS = 2000;
/** The last report, after the job ended, is not waited for longer. */
const FINAL_TIMEOUT_MS = 1000;

/**
 * Reports the job's state and events to a dashboard (spec `dashboard.url`) with the job's report token,
 * and carries out the scale and kill its users asked for. It runs beside the job and never in its way:
 * a report is sent from a timer, a failed one is dropped (the next carries the whole status again, and
 * the events since, up to MAX_REPORT_EVENTS), and nothing the job does waits for the dashboard.
 */
export class DashboardReporter {
  private readonly events: Array<{ at: string; seq: number; event: JobEvent }> = [];
  private seq = 0;
  private readonly reporter = randomBytes(8).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private changed = true;
  private sending = false;
  private lastSent = 0;
  private backoffUntil = 0;
  private readonly endpoint: URL;

  constructor(
    private readonly jobMaster: JobMaster,
    url: string,
    private readonly token: string,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    this.endpoint = new URL(`${REPORT_PATH}${encodeURIComponent(jobMaster.jobId)}`, url.endsWith('/') ? url : `${url}/`);
    this.onEvent = this.onEvent.bind(this);
  }

  start(): void {
    this.jobMaster.on('event', this.onEvent);
    this.timer = setInterval(() => this.tick(), BUSY_MS / 2);
    this.timer.unref();
  }

  /** The last report, with how the job ended (given up after FINAL_TIMEOUT_MS). */
  async finish(status: JobStatus): Promise<void> {
    clearInterval(this.timer);
    this.jobMaster.off('event', this.onEvent);
    await this.send(status, FINAL_TIMEOUT_MS).catch(() => undefined);
  }

  private onEvent(event: JobEvent): void {
    if (event.type === 'snapshot') return;
    this.events.push({ at: new Date().toISOString(), seq: ++this.seq, event });
    if (this.events.length > MAX_REPORT_EVENTS) this.events.splice(0, this.events.length - MAX_REPORT_EVENTS);
    this.changed = true;
  }

  private tick(): void {
    const now = Date.now();
    if (this.sending || now < this.backoffUntil) return;
    if (now - this.lastSent < (this.changed ? BUSY_MS : QUIET_MS)) return;
    this.changed = false;
    this.sending = true;
    this.send(this.jobMaster.status(), REQUEST_TIMEOUT_MS)
      .catch((err: Error) => {
        // Once per outage in the job master's log; the job goes on either way.
        if (this.backoffUntil === 0) this.log(`twister2 jobmaster: the dashboard at ${this.endpoint.origin} did not take a report (${err.message}); trying again every ${BACKOFF_MS / 1000} s`);
        this.backoffUntil = Date.now() + BACKOFF_MS;
      })
      .finally(() => (this.sending = false));
  }

  private async send(status: JobStatus, timeoutMs: number): Promise<void> {
    this.lastSent = Date.now();
    const events = this.events.slice();
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status, reporter: this.reporter, events }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`it answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    this.events.splice(0, events.length);
    if (this.backoffUntil !== 0) this.log(`twister2 jobmaster: the dashboard at ${this.endpoint.origin} takes reports again`);
    this.backoffUntil = 0;
    const reply = DashboardReplySchema.safeParse(await res.json().catch(() => undefined));
    for (const c of reply.success ? reply.data.commands : []) {
      if (c.op === 'kill') this.jobMaster.kill(c.reason);
      else this.jobMaster.scale(c.workers).catch((err: Error) => this.log(`twister2 jobmaster: the dashboard asked to scale to ${c.workers}: ${err.message}`));
    }
  }
}

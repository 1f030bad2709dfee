import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CapabilityError, JobLostError, JobMasterUnreachableError, JobStateError, OptionsError, ProtocolError } from '../errors.js';
import type { RunningJobMaster } from '../jobmaster/host.js';
import { JobMasterClient } from '../protocol/jobmaster-client.js';
import { TERMINAL_JOB_STATES, type JobEvent, type JobStatus, type WorkerInfo } from '../protocol/messages.js';
import { scaleRefusal } from '../launchers/capabilities.js';
import type { InClusterJob } from '../launchers/k8s/in-cluster-job.js';
import { capabilitiesOf } from '../launchers/registry.js';
import { WorkersSchema } from '../spec/schema.js';
import { parseSpec } from '../spec/validate.js';
import { files, findJob, readFinalStatus, readRecord, readToken, type JobRecord } from '../job/job-store.js';
import { connectJobMaster } from './jobmaster-connection.js';
import { followLogs, type LogLine } from './log-follower.js';

/**
 * A submitted job, seen from the client or from code. Works the same whether the job master runs in
 * this process or elsewhere: everything goes through the job master's wire protocol, and once the job
 * has ended, through the final status it wrote.
 */
export class JobHandle extends EventEmitter<{ event: [JobEvent] }> {
  readonly client: JobMasterClient | undefined;
  private finished: Promise<JobStatus> | undefined;
  private inCluster: Promise<InClusterJob> | undefined;
  private lastTerminal: JobStatus | undefined;

  constructor(
    readonly jobId: string,
    readonly jobDir: string,
    public record: JobRecord,
    token: string | undefined,
    private readonly local?: RunningJobMaster,
    /** How to reach a job master the plain URL does not (see connectJobMaster); default: that URL. */
    client?: JobMasterClient,
  ) {
    super();
    this.client = client ?? (record.jobMaster && token && !record.jobMaster.kubernetes ? new JobMasterClient({ url: record.jobMaster.url, token }) : undefined);
    local?.jobMaster.on('event', (e) => this.emit('event', e));
  }

  get logDir(): string {
    return path.join(this.jobDir, files.logs);
  }

  async status(): Promise<JobStatus> {
    const final = await readFinalStatus(this.jobDir);
    if (final) return final;
    if (this.local) return this.local.jobMaster.status();
    if (!this.client) throw new JobMasterUnreachableError(`job ${this.jobId} has no job master address yet`);
    try {
      const status = await this.client.status();
      // A job master in a pod goes with the job: keep what it said last for when it is gone.
      if (TERMINAL_JOB_STATES.includes(status.state)) this.lastTerminal = status;
      return status;
    } catch (err) {
      // The job master may have just ended and written its final status.
      const late = await readFinalStatus(this.jobDir);
      if (late) return late;
      const gone = await this.endedInCluster();
      if (gone && 'status' in gone) return gone.status;
      if (gone) throw new JobStateError(gone.unknown);
      return this.explainUnreachable(err);
    }
  }

  async workers(): Promise<WorkerInfo[]> {
    return (await this.activeClient().workers().catch((err: unknown) => this.explainUnreachable(err))).workers;
  }

  /** Refused (CapabilityError, exit 2) before the job master is asked when the job's cluster cannot do it. */
  async scale(workers: number): Promise<JobStatus> {
    const checked = WorkersSchema.safeParse(workers);
    if (!checked.success) throw new OptionsError([{ path: 'workers', message: `${checked.error.issues[0]!.message} (got ${String(workers)})` }], 'scale()');
    const done = await readFinalStatus(this.jobDir);
    if (done) throw new JobStateError(`job ${this.jobId} already ended (${done.state}); nothing to scale`);
    const client = this.activeClient();
    const spec = parseSpec(JSON.parse(await readFile(path.join(this.jobDir, files.spec), 'utf8')), files.spec);
    const now = await client.status().catch((err: unknown) => this.explainUnreachable(err));
    const refusal = TERMINAL_JOB_STATES.includes(now.state) ? undefined : scaleRefusal(capabilitiesOf(spec.cluster), spec, now.numWorkers, workers);
    if (refusal) throw new CapabilityError(refusal);
    return client.scale(workers).catch((err: unknown) => this.explainUnreachable(err));
  }

  async kill(reason?: string): Promise<JobStatus> {
    if (this.local) {
      this.local.jobMaster.kill(reason);
      return this.wait();
    }
    await this.activeClient().kill(reason).catch((err: unknown) => this.explainUnreachable(err));
    return this.wait();
  }

  /**
   * The job master did not answer. If the job ended meanwhile, or its job master process is known to be
   * gone without recording how the job ended (LOST), that is the answer; otherwise the original error.
   * Through the API server's service proxy a job master in a pod that is gone answers as the proxy does
   * (404 for the job's deleted Service), which is not the job master's own answer (a ProtocolError).
   */
  private async explainUnreachable(err: unknown): Promise<never> {
    const viaProxy = Boolean(this.record.jobMaster?.kubernetes) && err instanceof ProtocolError;
    if (!(err instanceof JobMasterUnreachableError) && !viaProxy) throw err;
    const done = (await readFinalStatus(this.jobDir)) ?? (await this.endedInCluster());
    if (done && 'unknown' in done) throw new JobStateError(done.unknown);
    const final = done && 'status' in done ? done.status : done;
    if (final) throw new JobStateError(`job ${this.jobId} already ended (${final.state}): ${final.message ?? ''}`.trimEnd());
    const jm = this.record.jobMaster;
    if (jm?.pid !== undefined && !jm.kubernetes && isLocalAddress(new URL(jm.url).hostname) && !processAliveOf(jm)) {
      throw new JobLostError(
        `job ${this.jobId} is LOST: its job master (pid ${jm.pid}) is gone and recorded no final state, so how the job ended is not known; ` +
          `its workers stop on their own once they miss the job master. See ${path.join(this.jobDir, files.jobMasterLog)} and the logs in ${this.logDir}; remove the job with \`rm -rf ${this.jobDir}\``,
      );
    }
    throw err;
  }

  /**
   * What the job's driver (spec `driver`) returned, once the job ended; undefined when it has none or it did
   * not return (it failed, or the job ended first: `wait()` tells how, in `status.driver`).
   */
  async driverResult(): Promise<unknown> {
    return (await this.wait()).driver?.result;
  }

  /** Resolves with the final status once the job ended and its resources were released. Never throws for FAILED. */
  wait(): Promise<JobStatus> {
    this.finished ??= this.local ? this.local.ended : this.waitRemote();
    return this.finished;
  }

  /** The job's event stream (a snapshot first). Ends when the job ends. */
  async *events(signal?: AbortSignal): AsyncGenerator<JobEvent> {
    if (!this.client) return;
    for await (const e of this.client.events(signal)) {
      yield e;
      if (e.type === 'job-state' && TERMINAL_JOB_STATES.includes(e.state)) return;
      if (e.type === 'snapshot' && TERMINAL_JOB_STATES.includes(e.status.state)) return;
    }
  }

  /** Worker output tagged by worker ID; with `follow`, until the job ends. */
  logs(opts: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<LogLine> {
    // A job master in a pod: the client fetches the pod logs while it follows the job; without `follow`,
    // it reads them once.
    const inPods = Boolean(this.record.jobMaster?.kubernetes) && !this.local;
    if (inPods && !opts.follow) return this.podLogsNow(opts.signal);
    if (inPods) void this.inClusterJob().then((j) => j.mirrorLogs());
    return followLogs(this.logDir, { ...(opts.follow ? { until: this.wait().catch(() => undefined) } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  /** The worker pods' logs as the API server has them now; once the pods are gone, what a following client fetched. */
  private async *podLogsNow(signal?: AbortSignal): AsyncGenerator<LogLine> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'twister2-pod-logs-'));
    try {
      const fetched = !(await readFinalStatus(this.jobDir)) && (await (await this.inClusterJob()).logsNow(dir));
      yield* followLogs(fetched ? dir : this.logDir, signal ? { signal } : {});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private activeClient(): JobMasterClient {
    if (!this.client) throw new JobStateError(`job ${this.jobId} has no running job master`);
    return this.client;
  }

  /** A job master in a pod keeps its logs and final status there: the client's view of such a job. */
  private inClusterJob(): Promise<InClusterJob> {
    this.inCluster ??= import('../launchers/k8s/in-cluster-job.js').then((m) => new m.InClusterJob(this.jobId, this.jobDir, this.record.jobMaster!.kubernetes!));
    return this.inCluster;
  }

  /** A job master in a pod that went with its job while no client followed: how the job ended, if known. */
  private async endedInCluster(): ReturnType<InClusterJob['endedUnseen']> {
    return this.record.jobMaster?.kubernetes ? (await this.inClusterJob()).endedUnseen() : undefined;
  }

  /** After the event stream broke: true once the job master answers again (restarted), false when it is gone for good. */
  private async jobMasterBack(): Promise<boolean> {
    // On another host (the first MPI host, a Slurm node) or in a pod its processes cannot be seen from here:
    // it has the recovery time to answer again.
    const deadline = Date.now() + this.recoveryMs();
    for (;;) {
      if (await readFinalStatus(this.jobDir)) return false;
      this.record = await readRecord(this.jobDir).catch(() => this.record);
      const jm = this.record.jobMaster;
      // Restarted after a crash: by its supervisor, or in its pod by the kubelet.
      if (!jm?.supervisorPid && !jm?.kubernetes) return false;
      const here = jm.pid !== undefined && !jm.kubernetes && isLocalAddress(new URL(jm.url).hostname);
      if (here ? !processAliveOf(jm) : Date.now() > deadline) return false;
      // In a pod: the job may have gone with it (its objects deleted, its end recorded in an Event).
      if (await this.endedInCluster()) return false;
      if (await this.client!.status().then(() => true, () => false)) return true;
      await new Promise((r) => setTimeout(r, here ? 100 : 250));
    }
  }

  /** timeouts.jobMasterRecovery of the job (0 if its spec cannot be read). */
  private recoveryMs(): number {
    try {
      return parseSpec(JSON.parse(readFileSync(path.join(this.jobDir, files.spec), 'utf8')), files.spec).timeouts.jobMasterRecovery;
    } catch {
      return 0;
    }
  }

  private async waitRemote(): Promise<JobStatus> {
    const done = await readFinalStatus(this.jobDir);
    if (done) return done;
    const inCluster = this.record.jobMaster?.kubernetes ? this.inClusterJob() : undefined;
    void inCluster?.then((j) => j.mirrorLogs());
    let last: JobStatus | undefined;
    let ended = false;
    // A job master that is restarted after a crash is followed again, as long as it (or what restarts it) lives.
    for (let round = 0; !ended && (round === 0 || (await this.jobMasterBack())); round++) {
      try {
        for await (const e of this.events()) {
          this.emit('event', e);
          const terminal = (e.type === 'job-state' && TERMINAL_JOB_STATES.includes(e.state)) || (e.type === 'snapshot' && TERMINAL_JOB_STATES.includes(e.status.state));
          ended ||= terminal;
          // The job master in a pod goes with the job's objects: ask for the final status while it still answers.
          if (terminal && inCluster) last = await this.client!.status().catch(() => undefined);
        }
      } catch (err) {
        if (!(err instanceof JobMasterUnreachableError)) throw err;
      }
      if (await readFinalStatus(this.jobDir)) break;
    }
    if (inCluster) return (await inCluster).finish(last ?? this.lastTerminal);
    // The job master writes the final status after it released every resource.
    for (let i = 0; i < 600; i++) {
      const status = await readFinalStatus(this.jobDir);
      if (status) return status;
      if (this.record.jobMaster && !(await jobMasterAlive(this.record, this.client))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const status = await readFinalStatus(this.jobDir);
    if (status) return status;
    throw new JobMasterUnreachableError(`the job master of ${this.jobId} ended without recording how the job ended (see ${path.join(this.jobDir, files.jobMasterLog)})`);
  }
}

/** Attaches to a job of this machine by ID or unique ID prefix (for `status`, `kill`, `logs`, ...). */
export async function attachJob(ref: string): Promise<JobHandle> {
  const jobDir = await findJob(ref);
  const record = await readRecord(jobDir);
  const token = await readToken(jobDir).catch(() => undefined);
  return new JobHandle(record.jobId, jobDir, record, token, undefined, await connectJobMaster(record, token));
}

/**
 * Whether a job's job master process still exists. Its PID means something only on this machine; a job
 * master on another host (the first MPI host, say) is asked over HTTP instead.
 */
export async function jobMasterAlive(record: JobRecord, client: JobMasterClient | undefined): Promise<boolean> {
  if (!record.jobMaster) return false;
  if (record.jobMaster.pid !== undefined && isLocalAddress(new URL(record.jobMaster.url).hostname)) return processAliveOf(record.jobMaster);
  return client ? client.status().then(() => true, () => false) : false;
}

/** The job master process, or the supervisor that restarts it when it crashed. */
function processAliveOf(jm: NonNullable<JobRecord['jobMaster']>): boolean {
  return isAlive(jm.pid!) || (jm.supervisorPid !== undefined && isAlive(jm.supervisorPid));
}

function isLocalAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.startsWith('127.') || h === '::1') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.address === h));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** A killed process whose parent has not reaped it yet still answers signal 0, but it is gone (Linux /proc). */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

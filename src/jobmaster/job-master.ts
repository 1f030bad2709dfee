import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  CapabilityError,
  DiscoveryTimeoutError,
  DuplicateWorkerError,
  JobStateError,
  LauncherError,
  MessageRefusedError,
  ProtocolError,
  RegistrationError,
  WorkerCompletedError,
} from '../errors.js';
import { scaleRefusal, type ClusterCapabilities } from '../launchers/capabilities.js';
import { capabilitiesOf } from '../launchers/registry.js';
import type { Launcher, WorkerExit } from '../launchers/launcher.js';
import {
  TERMINAL_JOB_STATES,
  type BarrierResponse,
  type DriverStatus,
  type HeartbeatResponse,
  type JobEvent,
  type JobState,
  type JobStatus,
  type RegisterRequest,
  type RegisterResponse,
  type WorkerInfo,
  type WorkerList,
  type WorkerState,
} from '../protocol/messages.js';
import type { JobSpec } from '../spec/schema.js';
import { formatDuration } from '../spec/units.js';
import { BarrierService } from './barriers.js';
import type { Taken } from './inbox.js';
import { MessageRouter } from './message-router.js';
import type { JournalRecord } from './journal.js';
import type { SavedState } from './saved-state.js';

/** Random bytes for sessions, drawn 512 sessions at a time: a call to the CSPRNG costs more than the rest of a registration. */
let sessionPool = Buffer.alloc(0);
let sessionAt = 0;
function newSession(): string {
  if (sessionAt + 12 > sessionPool.length) {
    sessionPool = randomBytes(12 * 512);
    sessionAt = 0;
  }
  sessionAt += 12;
  return sessionPool.toString('hex', sessionAt - 12, sessionAt);
}

interface WorkerRecord {
  workerId: number;
  state: WorkerState;
  /** Failures so far; each one used a restart. */
  restarts: number;
  info?: WorkerInfo;
  session?: string;
  /** The process that registered (RegisterRequest.incarnation): its retry gets its session back. */
  incarnation?: string;
  /** RUNNING: the last heartbeat. STARTING or FAILED: when it entered that state (registration deadline). */
  lastSeen: number;
  message?: string;
  /** Why the last barrier this worker waited at failed: a worker that fails next most likely failed because of it. */
  barrierFailure?: string;
  /**
   * Failures counted before the launcher reported them (missed heartbeats, a failure the worker reported)
   * whose run's end the launcher has yet to report: that report (WorkerExit.run) is the same failure.
   */
  unreportedRunEnds?: number;
}

export interface JobMasterOptions {
  jobId: string;
  spec: JobSpec;
  launcher: Launcher;
  /** What the job's cluster can do; default: its registry entry. */
  capabilities?: ClusterCapabilities;
  /** Injected for tests; defaults to Date.now. */
  now?: () => number;
  /** Each fact to make durable (the journal); the server answers only once it is written. */
  record?: (r: JournalRecord) => void;
  /** A restarted job master: what its predecessors journaled. */
  saved?: SavedState;
  /** How long workers wait for this job master to come back if lost (0: it is not restarted). */
  recoveryMs?: number;
  /** Who runs this job master and how often it was restarted, for the status. */
  runner?: JobStatus['jobMaster'];
  /** Resolves once every fact given to `record` so far is durable. */
  flushed?: () => Promise<void>;
}

/**
 * The per-job coordinator: registration, discovery, barriers, failure detection, scaling, job state
 * and cleanup. Transport-free: the HTTP server (http-server.ts) exposes it on the wire.
 */
export class JobMaster extends EventEmitter<{ event: [JobEvent] }> {
  readonly jobId: string;
  readonly spec: JobSpec;
  private readonly launcher: Launcher;
  private readonly capabilities: ClusterCapabilities;
  private readonly now: () => number;
  private readonly workers = new Map<number, WorkerRecord>();
  private readonly barriers: BarrierService;
  /** Discovery long polls; called with an error when the job ends first. */
  private readonly allJoinedWaiters = new Set<(err?: Error) => void>();
  private numWorkers: number;
  private jobState: JobState = 'STARTING';
  private message: string | undefined;
  private startedAt = new Date();
  private readonly record: (r: JournalRecord) => void;
  private readonly recoveryMs: number;
  private readonly runner: JobStatus['jobMaster'];
  private readonly flushed: (() => Promise<void>) | undefined;
  /** When the monitor last ran (performance.now()): a long gap means this process was paused (SIGSTOP) or starved. */
  private lastTick: number;
  private endedAt: Date | undefined;
  private monitor: NodeJS.Timeout | undefined;
  private released: Promise<void> | undefined;
  private readonly ended: Promise<JobStatus>;
  private resolveEnded!: (s: JobStatus) => void;
  private readonly messages: MessageRouter;
  /** The job's driver (spec `driver`): undefined until it started, or without one. */
  private driver: DriverStatus | undefined;

  constructor(opts: JobMasterOptions) {
    super();
    this.jobId = opts.jobId;
    this.spec = opts.spec;
    this.launcher = opts.launcher;
    this.capabilities = opts.capabilities ?? capabilitiesOf(opts.spec.cluster);
    this.now = opts.now ?? Date.now;
    this.record = opts.record ?? (() => undefined);
    this.recoveryMs = opts.recoveryMs ?? 0;
    this.runner = opts.runner;
    this.flushed = opts.flushed;
    this.lastTick = performance.now();
    this.numWorkers = opts.spec.workers;
    this.barriers = new BarrierService(() => this.liveIds(), this.record);
    this.messages = new MessageRouter(opts.spec.driver !== undefined);
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    if (opts.saved?.job) this.restore(opts.saved);
    else {
      for (let id = 0; id < this.numWorkers; id++) this.workers.set(id, this.newRecord(id));
      this.record({ t: 'size', numWorkers: this.numWorkers });
      this.recordJob();
    }
  }

  /** Carries on from the journal: every worker keeps its ID, session and restarts, and gets a full heartbeat timeout to be heard again. */
  private restore(saved: SavedState): void {
    const job = saved.job!;
    this.jobState = job.state;
    this.message = job.message;
    this.startedAt = new Date(job.startedAt);
    this.numWorkers = saved.numWorkers ?? this.numWorkers;
    const now = this.now();
    // A worker that never changed state before the crash has no line of its own: it was starting.
    for (let id = 0; id < this.numWorkers; id++) {
      const w = saved.workers.get(id);
      this.workers.set(id, w ? { ...w, lastSeen: now } : this.newRecord(id));
    }
    this.recount();
    this.barriers.restore(saved.barriers.values(), this.spec.timeouts.barrier);
    this.driver = saved.driver;
  }

  /**
   * An answer as the servers send it: once what it tells is durable, so that a worker is never told
   * something (its session, a passed barrier) that a restarted job master would not know. Without a
   * journal, the answer as it is.
   */
  afterDurable<T>(answer: T | Promise<T>): T | Promise<T> {
    const flushed = this.flushed;
    if (!flushed) return answer;
    return Promise.resolve(answer).then(
      async (r) => {
        await flushed();
        return r;
      },
      async (err: unknown) => {
        await flushed();
        throw err;
      },
    );
  }

  get heartbeatTimeoutMs(): number {
    return this.spec.timeouts.heartbeat;
  }

  get heartbeatIntervalMs(): number {
    return Math.floor(this.spec.timeouts.heartbeat / 4);
  }

  /** No job master for the workers (`jobMaster.placement: none`): the job's state follows the launcher's reports. */
  private get untracked(): boolean {
    return this.spec.jobMaster.placement === 'none';
  }

  /** Starts failure detection and registration deadlines. The launcher is started by the caller. */
  start(): void {
    if (this.untracked) return; // nobody registers or heartbeats
    this.lastTick = performance.now();
    // Deadlines count from here: a restored job master paused before it got here (SIGSTOP while it took over
    // its workers) would otherwise fail, at its first check, a worker whose heartbeat came a moment late.
    const now = this.now();
    for (const rec of this.workers.values()) rec.lastSeen = Math.max(rec.lastSeen, now);
    this.monitor = setInterval(() => this.checkDeadlines(), Math.max(50, Math.floor(this.heartbeatIntervalMs / 2)));
    this.monitor.unref();
  }

  /** Resolves with the final status once the job ended and its resources were released. */
  async whenEnded(): Promise<JobStatus> {
    return this.ended;
  }

  get state(): JobState {
    return this.jobState;
  }

  register(req: RegisterRequest): RegisterResponse {
    this.assertActive();
    if (this.jobState === 'QUEUED') this.allocated(); // a worker can be quicker than the cluster's own report
    const rec = this.workers.get(req.workerId);
    if (!rec) {
      throw new RegistrationError(`worker ID ${req.workerId} is not part of this job: valid IDs are 0..${this.numWorkers - 1}`);
    }
    if (rec.state === 'RUNNING' && req.incarnation !== undefined && req.incarnation === rec.incarnation && rec.session) {
      // The same process again: the answer to its registration was lost. A new session would orphan the one journaled.
      rec.lastSeen = this.now();
      return this.registered(rec, rec.session);
    }
    if (rec.state === 'RUNNING') {
      throw new DuplicateWorkerError(
        `worker ID ${req.workerId} is already registered by a live worker (pid ${rec.info?.pid ?? '?'} on ${rec.info?.host ?? '?'}); two workers cannot share an ID`,
      );
    }
    if (rec.state === 'COMPLETED') throw new WorkerCompletedError(`worker ${req.workerId} already completed`);
    const session = newSession();
    const { incarnation, ...info } = req;
    Object.assign(rec, { info: { ...info, restartCount: rec.restarts }, session, incarnation, lastSeen: this.now(), message: undefined });
    this.setWorkerState(rec, 'RUNNING');
    this.checkAllJoined();
    return this.registered(rec, session);
  }

  private registered(rec: WorkerRecord, session: string): RegisterResponse {
    return {
      session,
      jobId: this.jobId,
      numWorkers: this.numWorkers,
      restartCount: rec.restarts,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
      barrierTimeoutMs: this.spec.timeouts.barrier,
      registrationTimeoutMs: this.spec.timeouts.registration,
      ...(this.recoveryMs > 0 ? { jobMasterRecoveryMs: this.recoveryMs } : {}),
    };
  }

  heartbeat(workerId: number, session: string): HeartbeatResponse {
    const rec = this.session(workerId, session);
    rec.lastSeen = this.now();
    return { numWorkers: this.numWorkers, jobState: this.jobState };
  }

  complete(workerId: number, session: string, ok: boolean, message?: string): void {
    // Sent again after a restart of the job master lost its answer: it was taken already.
    if (ok && this.workers.get(workerId)?.state === 'COMPLETED') return;
    this.assertActive();
    const rec = this.session(workerId, session);
    if (!ok) return this.workerFailed(rec, message ?? 'the worker program failed');
    rec.message = message;
    rec.session = undefined; // a completed worker has nothing more to say
    this.setWorkerState(rec, 'COMPLETED');
    this.messages.workerGone(workerId, `worker ${workerId} completed`);
    this.barriers.recheckAll();
    this.checkAllCompleted();
  }

  /** Ports a running worker opened itself: merged into its registration, so discovery shows them to its peers. */
  publishPorts(workerId: number, session: string, ports: Record<string, number>): WorkerInfo {
    this.assertActive();
    const rec = this.session(workerId, session);
    rec.info = { ...rec.info!, ports: { ...rec.info!.ports, ...ports } };
    this.recordWorker(rec);
    return rec.info;
  }

  barrier(name: string, workerId: number, session: string, timeoutMs?: number, key?: string): Promise<BarrierResponse> {
    this.assertActive();
    const rec = this.session(workerId, session);
    rec.barrierFailure = undefined;
    return this.barriers.arrive(name, workerId, timeoutMs ?? this.spec.timeouts.barrier, key).catch((err: Error) => {
      rec.barrierFailure = err.message;
      throw err;
    });
  }

  listWorkers(): WorkerList {
    const workers = [...this.workers.values()]
      .filter((w) => w.state === 'RUNNING' || w.state === 'COMPLETED')
      .flatMap((w) => (w.info ? [w.info] : []));
    return { numWorkers: this.numWorkers, workers };
  }

  /** Discovery: resolves when all current workers have registered, or fails naming the missing IDs. */
  async waitForAll(timeoutMs: number): Promise<WorkerList> {
    this.assertActive();
    if (this.registeredCount() >= this.numWorkers) return this.listWorkers();
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.allJoinedWaiters.delete(done);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        this.allJoinedWaiters.delete(done);
        reject(new DiscoveryTimeoutError(`not all workers joined within ${formatDuration(timeoutMs)}: missing ${this.missingIds().join(', ')}`));
      }, timeoutMs);
      this.allJoinedWaiters.add(done);
    });
    return this.listWorkers();
  }

  /** A worker that has no session yet (it failed before registering) reports why it cannot start. */
  setupFailed(workerId: number, message: string): void {
    const rec = this.workers.get(workerId);
    if (!rec || rec.state !== 'STARTING' || this.isTerminal()) return;
    this.workerFailed(rec, `could not start: ${message}`);
  }

  /** The launcher started the workers. Without a job master for them, that is when the job runs. */
  launched(): void {
    if (this.untracked && this.jobState === 'STARTING') this.setJobState('RUNNING', `${this.numWorkers} workers started (no job master: jobMaster.placement none)`);
  }

  /** The cluster queued the job (Slurm PENDING): shown with its reason; registration deadlines wait. */
  queued(reason: string): void {
    if (this.jobState !== 'STARTING' && this.jobState !== 'QUEUED') return;
    const message = `queued by ${this.spec.cluster}: ${reason}`;
    if (this.jobState === 'QUEUED' && this.message === message) return;
    this.message = message;
    this.setJobState('QUEUED', message);
  }

  /** The cluster allocated the job's resources: registration deadlines count from now. */
  allocated(): void {
    if (this.jobState !== 'QUEUED') return;
    this.message = undefined;
    const now = this.now();
    for (const rec of this.workers.values()) if (rec.state === 'STARTING') rec.lastSeen = now;
    this.setJobState('STARTING', `${this.spec.cluster} allocated the job's resources; workers starting`);
  }

  /** A cluster told us a worker ended. Expected ends (completed, removed, job over) are ignored. */
  workerExited(exit: WorkerExit): void {
    const rec = this.workers.get(exit.workerId);
    if (rec && this.untracked && !this.isTerminal()) return this.untrackedExit(rec, exit);
    if (!rec || this.isTerminal()) return;
    // The end of a run whose failure was counted already, even if the worker registered again since.
    if (exit.run !== undefined && (rec.unreportedRunEnds ?? 0) > 0) {
      rec.unreportedRunEnds! -= 1;
      this.recordWorker(rec);
      return;
    }
    // FAILED: already counted (the launcher stops the old process itself before restarting it).
    if (rec.state === 'COMPLETED' || rec.state === 'FAILED') return;
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    this.workerFailed(rec, `worker process ${how}`, true);
  }

  /**
   * Refused (CapabilityError) before anything changes when the cluster cannot do it. A launcher that fails to
   * add workers is rolled back: the job keeps its workers. One that fails to remove workers fails the job,
   * since which of them still run is then unknown.
   */
  async scale(n: number): Promise<void> {
    this.assertActive();
    if (n === this.numWorkers) return;
    const from = this.numWorkers;
    const refusal = scaleRefusal(this.capabilities, this.spec, from, n);
    if (refusal) throw new CapabilityError(refusal);
    if (!this.launcher.addWorkers || !this.launcher.removeWorkers) {
      throw new CapabilityError(`the ${this.spec.cluster} launcher cannot add or remove workers; the job keeps running with ${from}`);
    }
    this.barriers.failAll(`the job was scaled from ${from} to ${n} workers`);
    this.numWorkers = n;
    this.record({ t: 'size', numWorkers: n });
    if (n > from) {
      const ids = range(from, n);
      for (const id of ids) this.workers.set(id, this.newRecord(id));
      this.recount();
      this.messages.moreWorkers();
      const wasRunning = this.jobState === 'RUNNING';
      if (wasRunning) this.setJobState('STARTING', `scaling up to ${n} workers`);
      this.emitEvent({ type: 'scaled', from, to: n });
      try {
        await this.launcher.addWorkers(ids);
      } catch (err) {
        await this.undoScaleUp(from, ids, wasRunning);
        throw new LauncherError(`could not scale the job from ${from} to ${n} workers: ${(err as Error).message}; it keeps running with ${from}`, { cause: err });
      }
    } else {
      const ids = range(n, from);
      for (const id of ids) {
        const rec = this.workers.get(id)!;
        rec.message = `removed by scaling to ${n} workers`;
        this.setWorkerState(rec, 'REMOVED');
        this.messages.workerGone(id, `worker ${id} was removed by scaling to ${n} workers`);
        this.workers.delete(id);
        this.record({ t: 'removed', workerId: id });
      }
      this.recount();
      this.emitEvent({ type: 'scaled', from, to: n });
      try {
        await this.launcher.removeWorkers(ids);
      } catch (err) {
        const message = `could not scale the job from ${from} down to ${n} workers: ${(err as Error).message}`;
        this.fail(message);
        throw new LauncherError(message, { cause: err });
      }
      this.checkAllJoined();
      this.checkAllCompleted();
    }
  }

  /** Back to `from` workers after a failed scale-up; whatever the launcher started of the new ones is stopped. */
  private async undoScaleUp(from: number, ids: number[], wasRunning: boolean): Promise<void> {
    await this.launcher.removeWorkers?.(ids).catch(() => undefined);
    if (this.isTerminal()) return;
    for (const id of ids) {
      this.workers.delete(id);
      this.record({ t: 'removed', workerId: id });
    }
    this.numWorkers = from;
    this.record({ t: 'size', numWorkers: from });
    this.recount();
    this.emitEvent({ type: 'scaled', from: from + ids.length, to: from });
    if (wasRunning && this.jobState === 'STARTING') this.setJobState('RUNNING', `scaling failed; back to ${from} workers`);
  }

  /** A worker's message to the driver (docs/protocol.md, "Messages"). */
  sendToDriver(workerId: number, session: string, id: string, data: unknown): { seq: number } {
    this.assertActive();
    this.session(workerId, session);
    return this.messages.fromWorker(workerId, id, data);
  }

  /** A worker takes the driver's messages to it; once the job ended, the answer says so. */
  receive(workerId: number, session: string, ack: number | undefined, max: number, timeoutMs: number): Promise<Taken> {
    if (this.isTerminal()) return Promise.resolve({ messages: [], ended: `the job ended (${this.jobState})` });
    this.session(workerId, session);
    return this.messages.receive(workerId, ack, max, timeoutMs);
  }

  /** The driver's message to a worker that is starting, running or restarting; it waits in the worker's inbox until taken. */
  sendToWorker(workerId: number, data: unknown): void {
    this.assertActive();
    const rec = this.workers.get(workerId);
    if (!rec || !mayReceive(rec.state)) {
      const why = !rec ? `not a worker of this job (IDs are 0..${this.numWorkers - 1})` : `${rec.state === 'COMPLETED' ? 'completed' : 'was removed by scaling'}; it receives no more messages`;
      throw new MessageRefusedError(`cannot send to worker ${workerId}: it is ${why}`);
    }
    this.messages.toWorker(workerId, data);
  }

  /** The same message to every worker that may still receive; returns their IDs. */
  broadcast(data: unknown): number[] {
    this.assertActive();
    return this.messages.broadcast([...this.workers.values()].filter((w) => mayReceive(w.state)).map((w) => w.workerId), data);
  }

  driverReceive(ack: number | undefined, max: number, timeoutMs: number): Promise<Taken> {
    return this.messages.driverReceive(ack, max, timeoutMs);
  }

  /** The driver started (again, after a restart of this job master). */
  driverStarted(): void {
    if (!this.isTerminal()) this.setDriver({ state: 'RUNNING' });
  }

  /** The driver's function returned `result`: the job ends now (driver.endsJob) or once every worker completed. */
  driverReturned(result: unknown): void {
    if (this.isTerminal()) return;
    this.setDriver({ state: 'RETURNED', ...(result === undefined ? {} : { result }) });
    if (this.spec.driver?.endsJob) this.end('SUCCEEDED', 'the driver returned (driver.endsJob)');
    else this.checkAllCompleted();
  }

  /** The driver threw (or could not be loaded): the job fails with its message. */
  driverFailed(message: string): void {
    if (this.isTerminal()) return;
    this.setDriver({ state: 'FAILED', message });
    this.end('FAILED', `the driver failed: ${message}`);
  }

  /** Whether a restarted job master must start the driver (again): not once it returned or failed. */
  get driverToRun(): boolean {
    return this.spec.driver !== undefined && !this.isTerminal() && (this.driver === undefined || this.driver.state === 'RUNNING');
  }

  kill(reason = 'killed by the user'): void {
    if (!this.isTerminal()) this.end('KILLED', reason);
  }

  /** Ends the job as FAILED from outside, e.g. when the launcher itself failed. */
  fail(reason: string): void {
    if (!this.isTerminal()) this.end('FAILED', reason);
  }

  status(): JobStatus {
    const barriers = this.isTerminal() ? [] : this.barriers.inProgress();
    return {
      jobId: this.jobId,
      name: this.spec.name,
      cluster: this.spec.cluster,
      state: this.jobState,
      numWorkers: this.numWorkers,
      registered: this.registeredCount(),
      workers: [...this.workers.values()].map((w) => ({
        workerId: w.workerId,
        state: w.state,
        restarts: w.restarts,
        ...(w.info ? { info: w.info } : {}),
        ...(w.message ? { message: w.message } : {}),
        ...(w.state === 'RUNNING' && !this.untracked ? { lastHeartbeatAt: new Date(w.lastSeen).toISOString() } : {}),
      })),
      startedAt: this.startedAt.toISOString(),
      ...(this.endedAt ? { endedAt: this.endedAt.toISOString() } : {}),
      ...(this.message ? { message: this.message } : {}),
      ...(this.runner ? { jobMaster: this.runner } : {}),
      ...(this.driver ? { driver: this.driver } : {}),
      ...(barriers.length > 0 ? { barriers } : {}),
      ...(this.untracked ? {} : { heartbeatTimeoutMs: this.heartbeatTimeoutMs }),
    };
  }

  /** Without registrations, a worker is done when it exits: 0 completes it, anything else fails the job. */
  private untrackedExit(rec: WorkerRecord, exit: WorkerExit): void {
    if (exit.code === 0 && !exit.signal) {
      this.setWorkerState(rec, 'COMPLETED');
      return this.checkAllCompleted();
    }
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    rec.message = `worker ${rec.workerId} ${how}`;
    this.setWorkerState(rec, 'FAILED');
    this.end('FAILED', `worker ${rec.workerId} ${how}`);
  }

  private workerFailed(rec: WorkerRecord, failure: string, reportedByLauncher = false): void {
    if (this.isTerminal()) return;
    if (!reportedByLauncher) rec.unreportedRunEnds = (rec.unreportedRunEnds ?? 0) + 1;
    // A command worker whose `twister2 barrier` failed just exits non-zero: say which barrier it was.
    const barrier = rec.barrierFailure;
    const reason = barrier && !failure.includes(barrier) ? `${failure}, after ${barrier}` : failure;
    rec.barrierFailure = undefined;
    rec.message = reason;
    rec.session = undefined;
    this.setWorkerState(rec, 'FAILED');
    this.barriers.workerFailed(rec.workerId, reason);
    const max = this.spec.restart.maxRestarts;
    if (rec.restarts >= max) {
      const budget = max === 0 ? 'restarts are off (restart.maxRestarts: 0)' : `it used all ${max} restart${max === 1 ? '' : 's'}`;
      this.end('FAILED', `worker ${rec.workerId} failed: ${reason}; ${budget}`);
      return;
    }
    rec.restarts += 1;
    this.recordWorker(rec);
    // Clusters without their own restart policy get an explicit restart (the replacement is STARTING,
    // so its own early death counts too); the others re-register by themselves.
    if (!this.launcher.restartWorker) return;
    this.launcher.restartWorker(rec.workerId, rec.restarts, rec.info).then(
      () => {
        if (rec.state === 'FAILED' && !this.isTerminal()) this.setWorkerState(rec, 'STARTING');
      },
      (err: Error) => this.fail(`could not restart worker ${rec.workerId}: ${err.message}`),
    );
  }

  /** Fails silent workers, and the job when a worker did not (re)register within the registration timeout. */
  private checkDeadlines(): void {
    const now = this.now();
    // Paused (SIGSTOP) or starved for longer than a worker may be silent: the silence was ours, not the
    // workers'. Everyone gets a full timeout from now rather than being failed for it.
    // Real time, not `now` (which tests move by hand): a pause is of this process.
    const tick = performance.now();
    const gap = tick - this.lastTick;
    this.lastTick = tick;
    if (gap > this.heartbeatTimeoutMs / 2) {
      for (const rec of this.workers.values()) rec.lastSeen = Math.max(rec.lastSeen, now);
      return;
    }
    for (const rec of this.workers.values()) {
      if (rec.state === 'RUNNING' && rec.lastSeen < now - this.heartbeatTimeoutMs) {
        this.workerFailed(rec, `no heartbeat for ${formatDuration(this.heartbeatTimeoutMs)}`);
      }
    }
    if (this.jobState === 'QUEUED') return; // a queue is not a missed registration
    const late = [...this.workers.values()].filter(
      (w) => (w.state === 'STARTING' || w.state === 'FAILED') && w.lastSeen < now - this.spec.timeouts.registration,
    );
    if (late.length > 0 && !this.isTerminal()) {
      const ids = late.map((w) => w.workerId).join(', ');
      this.end('FAILED', `worker${late.length === 1 ? '' : 's'} ${ids} did not register within ${formatDuration(this.spec.timeouts.registration)}`);
    }
  }

  private checkAllJoined(): void {
    if (this.registeredCount() !== this.numWorkers) return;
    if (this.jobState === 'STARTING') this.setJobState('RUNNING', `all ${this.numWorkers} workers joined`);
    for (const done of [...this.allJoinedWaiters]) done();
  }

  /**
   * Every worker completed: the job succeeded, unless it has a driver that has not returned yet (still
   * starting, taking the last answers, or about to scale up).
   */
  private checkAllCompleted(): void {
    if (![...this.workers.values()].every((w) => w.state === 'COMPLETED')) return;
    if (this.spec.driver && this.driver?.state !== 'RETURNED') return this.messages.noMoreFromWorkers(`all ${this.numWorkers} workers completed`);
    this.end('SUCCEEDED', `all ${this.numWorkers} workers completed${this.spec.driver ? ' and the driver returned' : ''}`);
  }

  /** The one way into a terminal state; later calls are ignored, so a final state is never overwritten. */
  private end(state: JobState, message: string): void {
    if (this.isTerminal()) return;
    this.message = message;
    this.endedAt = new Date();
    clearInterval(this.monitor);
    this.barriers.failAll(`the job ended (${state}): ${message}`);
    this.messages.endAll(`the job ended (${state})`);
    if (this.driver?.state === 'RUNNING') this.setDriver({ state: 'STOPPED', message: `the job ended (${state}) before the driver returned` });
    const ended = new JobStateError(`job ${this.jobId} ended (${state}) before all workers joined: ${message}`);
    for (const done of [...this.allJoinedWaiters]) done(ended);
    // Every worker gets a final state too: the launcher's release stops whoever still runs.
    for (const rec of this.workers.values()) {
      if (rec.state !== 'STARTING' && rec.state !== 'RUNNING') continue;
      rec.message = `stopped: the job ended (${state})`;
      rec.session = undefined;
      this.setWorkerState(rec, 'STOPPED');
    }
    this.setJobState(state, message);
    this.releaseResources();
  }

  /**
   * Stops whoever still runs and frees the cluster's resources, once; the job then has ended. Only once the
   * end is durable: a job master that crashed after stopping workers but before journaling why would be
   * followed by one that finds them RUNNING and gone, and fails the job for it. A fenced one stops nothing.
   */
  private releaseResources(): void {
    const state = this.jobState;
    const message = this.message ?? '';
    const ending = state === 'SUCCEEDED' ? 'succeeded' : state === 'KILLED' ? 'killed' : 'failed';
    const durable = this.flushed ? this.flushed().then(() => true, () => false) : Promise.resolve(true);
    this.released ??= durable.then((ok) => (ok ? this.launcher.release(ending) : new Promise<void>(() => undefined))).then(
      () => this.resolveEnded(this.status()),
      (err: Error) => {
        this.message = `${message}; cleanup failed: ${err.message}`;
        this.resolveEnded(this.status());
      },
    );
  }

  /** A restarted job master whose job had ended already: its predecessor's clean-up may not have finished. */
  finishEndedJob(): void {
    if (!this.isTerminal()) return;
    this.endedAt ??= new Date();
    this.releaseResources();
  }

  private session(workerId: number, session: string): WorkerRecord {
    const rec = this.workers.get(workerId);
    if (!rec || rec.session !== session) {
      throw new ProtocolError(`worker ${workerId}: unknown or stale session (the worker was replaced, removed or never registered)`);
    }
    return rec;
  }

  private assertActive(): void {
    if (this.isTerminal()) throw new JobStateError(`job ${this.jobId} has already ended (${this.jobState})`);
  }

  private isTerminal(): boolean {
    return TERMINAL_JOB_STATES.includes(this.jobState);
  }

  /**
   * Derived from the worker records and kept up to date on each change, so that registration and barrier
   * arrivals stay O(1): recomputing over 10,000 records per registration made registering quadratic.
   * `live` is rebuilt lazily, only after a change of who is live (a registration does not change it).
   */
  private view: { live: number[] | undefined; registered: number } = { live: undefined, registered: 0 };

  /** After records were added or deleted wholesale (start, scaling). */
  private recount(): void {
    let registered = 0;
    for (const w of this.workers.values()) if (isRegistered(w.state)) registered++;
    this.view = { live: undefined, registered };
  }

  private liveIds(): number[] {
    this.view.live ??= [...this.workers.values()].filter((w) => isLive(w.state)).map((w) => w.workerId);
    return this.view.live;
  }

  private registeredCount(): number {
    return this.view.registered;
  }

  private missingIds(): number[] {
    return [...this.workers.values()].filter((w) => w.state === 'STARTING' || w.state === 'FAILED').map((w) => w.workerId);
  }

  private newRecord(workerId: number): WorkerRecord {
    return { workerId, state: 'STARTING', restarts: 0, lastSeen: this.now() };
  }

  private setWorkerState(rec: WorkerRecord, state: WorkerState): void {
    const before = rec.state;
    rec.state = state;
    this.view.registered += Number(isRegistered(state)) - Number(isRegistered(before));
    if (isLive(state) !== isLive(before)) this.view.live = undefined;
    if (state === 'STARTING' || state === 'FAILED') rec.lastSeen = this.now();
    this.recordWorker(rec);
    this.emitEvent({ type: 'worker-state', workerId: rec.workerId, state, restarts: rec.restarts, ...(rec.message ? { message: rec.message } : {}) });
  }

  private setJobState(state: JobState, message?: string): void {
    this.jobState = state;
    this.recordJob();
    this.emitEvent({ type: 'job-state', state, ...(message ? { message } : {}) });
  }

  /** The worker's record as the journal keeps it: not its last heartbeat nor a barrier's failure, which a restart forgets. */
  private recordWorker(rec: WorkerRecord): void {
    const { lastSeen: _seen, barrierFailure: _failure, ...kept } = rec;
    this.record({ t: 'worker', ...kept });
  }

  private recordJob(): void {
    this.record({
      t: 'job',
      state: this.jobState,
      startedAt: this.startedAt.toISOString(),
      ...(this.message ? { message: this.message } : {}),
      ...(this.endedAt ? { endedAt: this.endedAt.toISOString() } : {}),
    });
  }

  private setDriver(d: DriverStatus): void {
    this.driver = d;
    this.record({ t: 'driver', ...d });
    this.emitEvent({ type: 'driver-state', state: d.state, ...(d.message ? { message: d.message } : {}) });
  }

  private emitEvent(e: JobEvent): void {
    this.emit('event', e);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

const isRegistered = (s: WorkerState): boolean => s === 'RUNNING' || s === 'COMPLETED';
const isLive = (s: WorkerState): boolean => s !== 'COMPLETED' && s !== 'REMOVED';
/** Starting, running, or failed and about to restart: its messages wait in its inbox until it takes them. */
const mayReceive = (s: WorkerState): boolean => s === 'STARTING' || s === 'RUNNING' || s === 'FAILED';

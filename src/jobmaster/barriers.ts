import { BarrierError, BarrierTimeoutError } from '../errors.js';
import type { BarrierProgress, BarrierResponse } from '../protocol/messages.js';
import { formatDuration } from '../spec/units.js';
import type { JournalRecord } from './journal.js';
import type { SavedBarrier } from './saved-state.js';

interface Waiter {
  resolve(r: BarrierResponse): void;
  reject(err: Error): void;
}

interface PendingBarrier {
  name: string;
  generation: number;
  waiters: Map<number, Waiter>;
  /** Each waiter's arrival key (see arrive). */
  keys: Map<number, string>;
  timer: NodeJS.Timeout;
  timeoutMs: number;
}

/** How a name's last generation ended, for arrivals sent again after their answer was lost. */
type LastOutcome = NonNullable<SavedBarrier['last']>;

const noWaiter: Waiter = { resolve: () => undefined, reject: () => undefined };

/**
 * Named barriers across the live workers of a job. A barrier is released only when every live worker
 * has arrived; it fails for every waiter on timeout (measured from the first arrival) or as soon as a
 * worker it waits for fails. A released name can be used again (its generation counts up).
 */
export class BarrierService {
  private readonly pending = new Map<string, PendingBarrier>();
  private readonly generations = new Map<string, number>();
  private readonly last = new Map<string, LastOutcome>();

  /**
   * `participants` is asked afresh on every arrival, so completed or removed workers stop counting.
   * `record` gets each arrival and each end, for the journal.
   */
  constructor(
    private readonly participants: () => number[],
    private readonly record: (r: JournalRecord) => void = () => undefined,
  ) {}

  /**
   * `key` names this arrival, the same when the worker sends it again (its connection broke, or the job
   * master restarted): an arrival whose generation ended already gets that generation's answer at once.
   */
  arrive(name: string, workerId: number, timeoutMs: number, key?: string): Promise<BarrierResponse> {
    const ended = key === undefined ? undefined : this.last.get(name);
    if (ended && key !== undefined && ended.keys.includes(key)) {
      if (ended.error) return Promise.reject(new (ended.error.code === 'T2_BARRIER_TIMEOUT' ? BarrierTimeoutError : BarrierError)(ended.error.message));
      return Promise.resolve({ name, generation: ended.generation, numWorkers: ended.numWorkers ?? 0 });
    }
    const barrier = this.pending.get(name) ?? this.open(name, timeoutMs);
    // A worker that arrives again (a restarted one, or the same arrival resent) replaces its earlier waiter.
    const again = barrier.waiters.get(workerId);
    if (again && barrier.keys.get(workerId) !== key) again.reject(new BarrierError(`worker ${workerId} arrived again at barrier '${name}'`));
    const promise = new Promise<BarrierResponse>((resolve, reject) => barrier.waiters.set(workerId, { resolve, reject }));
    barrier.keys.set(workerId, key ?? '');
    this.record({ t: 'arrive', name, generation: barrier.generation, workerId, key: key ?? '' });
    this.check(name);
    return promise;
  }

  /** A restarted job master: the generations and arrivals its predecessor journaled; arrived workers wait again when they resend. */
  restore(saved: Iterable<SavedBarrier>, timeoutMs: number): void {
    for (const b of saved) {
      this.generations.set(b.name, b.generation);
      if (b.last) this.last.set(b.name, b.last);
      if (b.arrivals.length === 0) continue;
      this.generations.set(b.name, b.generation - 1);
      const barrier = this.open(b.name, timeoutMs);
      for (const [id, key] of b.arrivals) {
        barrier.waiters.set(id, noWaiter);
        barrier.keys.set(id, key);
      }
    }
    this.recheckAll();
  }

  private open(name: string, timeoutMs: number): PendingBarrier {
    const generation = (this.generations.get(name) ?? 0) + 1;
    this.generations.set(name, generation);
    const timer = setTimeout(() => this.expire(name), timeoutMs);
    const barrier: PendingBarrier = { name, generation, waiters: new Map(), keys: new Map(), timer, timeoutMs };
    this.pending.set(name, barrier);
    return barrier;
  }

  /** The barriers some workers wait at now: who arrived, and which live workers each still waits for (for status). */
  inProgress(): BarrierProgress[] {
    const live = this.participants();
    return [...this.pending.values()].map((b) => ({
      name: b.name,
      generation: b.generation,
      arrived: [...b.waiters.keys()].sort((x, y) => x - y),
      missing: live.filter((id) => !b.waiters.has(id)),
    }));
  }

  /** Re-evaluates every pending barrier, e.g. after a worker completed and stopped counting. */
  recheckAll(): void {
    for (const name of [...this.pending.keys()]) this.check(name);
  }

  /**
   * A worker failed: every pending barrier fails, whether or not it had arrived, since a replacement
   * restarts its program from the beginning and would never arrive at this barrier.
   */
  workerFailed(workerId: number, reason: string): void {
    for (const barrier of [...this.pending.values()]) {
      const waiting = [...barrier.waiters.keys()].sort((a, b) => a - b);
      this.fail(barrier, new BarrierError(
        `barrier '${barrier.name}' broken: worker ${workerId} failed (${reason}) while workers ${waiting.join(', ')} were waiting`,
      ));
    }
  }

  /** Fails every pending barrier, e.g. because the job was scaled or ended. */
  failAll(reason: string): void {
    for (const barrier of [...this.pending.values()]) {
      this.fail(barrier, new BarrierError(`barrier '${barrier.name}' aborted: ${reason}`));
    }
  }

  private check(name: string): void {
    const barrier = this.pending.get(name);
    if (!barrier) return;
    const live = this.participants();
    // Cheap test first: with N workers, N arrivals each check, and only the last needs the full one.
    if (barrier.waiters.size < live.length || live.some((id) => !barrier.waiters.has(id))) return;
    const numWorkers = live.length;
    this.finish(barrier, { numWorkers });
    for (const w of barrier.waiters.values()) w.resolve({ name, generation: barrier.generation, numWorkers });
  }

  private expire(name: string): void {
    const barrier = this.pending.get(name);
    if (!barrier) return;
    const arrived = [...barrier.waiters.keys()].sort((a, b) => a - b);
    const missing = this.participants().filter((id) => !barrier.waiters.has(id));
    this.fail(barrier, new BarrierTimeoutError(
      `barrier '${name}' timed out after ${formatDuration(barrier.timeoutMs)}: ` +
        `worker${missing.length === 1 ? '' : 's'} ${missing.join(', ')} never arrived (arrived: ${arrived.join(', ') || 'none'})`,
    ));
  }

  private fail(barrier: PendingBarrier, err: BarrierError): void {
    this.finish(barrier, { error: { code: err.code, message: err.message } });
    for (const w of barrier.waiters.values()) w.reject(err);
  }

  private finish(barrier: PendingBarrier, outcome: Pick<LastOutcome, 'numWorkers' | 'error'>): void {
    clearTimeout(barrier.timer);
    this.pending.delete(barrier.name);
    const last: LastOutcome = { generation: barrier.generation, keys: [...barrier.keys.values()].filter(Boolean), ...outcome };
    this.last.set(barrier.name, last);
    // Without the keys: the journal has them in this generation's arrivals (N of them at every barrier).
    const { keys: _keys, ...said } = last;
    this.record({ t: 'barrier-ended', name: barrier.name, generation: barrier.generation, last: said });
  }
}

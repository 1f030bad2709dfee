import { BarrierError, BarrierTimeoutError } from '../errors.js';
import type { BarrierResponse } from '../protocol/messages.js';
import { formatDuration } from '../spec/units.js';

interface Waiter {
  resolve(r: BarrierResponse): void;
  reject(err: Error): void;
}

interface PendingBarrier {
  name: string;
  generation: number;
  waiters: Map<number, Waiter>;
  timer: NodeJS.Timeout;
  timeoutMs: number;
}

/**
 * Named barriers across the live workers of a job. A barrier is released only when every live worker
 * has arrived; it fails for every waiter on timeout (measured from the first arrival) or as soon as a
 * worker it waits for fails. A released name can be used again (its generation counts up).
 */
export class BarrierService {
  private readonly pending = new Map<string, PendingBarrier>();
  private readonly generations = new Map<string, number>();

  /** `participants` is asked afresh on every arrival, so completed or removed workers stop counting. */
  constructor(private readonly participants: () => number[]) {}

  arrive(name: string, workerId: number, timeoutMs: number): Promise<BarrierResponse> {
    let barrier = this.pending.get(name);
    if (!barrier) {
      const generation = (this.generations.get(name) ?? 0) + 1;
      this.generations.set(name, generation);
      const timer = setTimeout(() => this.expire(name), timeoutMs);
      barrier = { name, generation, waiters: new Map(), timer, timeoutMs };
      this.pending.set(name, barrier);
    }
    // A restarted worker that arrives again replaces its earlier (dead) waiter.
    barrier.waiters.get(workerId)?.reject(new BarrierError(`worker ${workerId} arrived again at barrier '${name}'`));
    const promise = new Promise<BarrierResponse>((resolve, reject) => barrier.waiters.set(workerId, { resolve, reject }));
    this.check(name);
    return promise;
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
    this.finish(barrier);
    const numWorkers = live.length;
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
    this.finish(barrier);
    for (const w of barrier.waiters.values()) w.reject(err);
  }

  private finish(barrier: PendingBarrier): void {
    clearTimeout(barrier.timer);
    this.pending.delete(barrier.name);
  }
}

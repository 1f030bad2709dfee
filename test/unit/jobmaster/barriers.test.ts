import { afterEach, describe, expect, it, vi } from 'vitest';
import { BarrierError, BarrierTimeoutError } from '../../../src/errors.js';
import { BarrierService } from '../../../src/jobmaster/barriers.js';

afterEach(() => vi.useRealTimers());

describe('BarrierService', () => {
  it('releases only when every live worker arrived, and a name can be reused', async () => {
    const svc = new BarrierService(() => [0, 1, 2]);
    let released = 0;
    const a = svc.arrive('x', 0, 10_000).then(() => released++);
    const b = svc.arrive('x', 1, 10_000).then(() => released++);
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(0);
    const c = svc.arrive('x', 2, 10_000);
    await Promise.all([a, b]);
    expect((await c).generation).toBe(1);
    const again = await Promise.all([0, 1, 2].map((id) => svc.arrive('x', id, 10_000)));
    expect(again.map((r) => r.generation)).toEqual([2, 2, 2]);
  });

  it('times out for every waiter and names the missing workers', async () => {
    vi.useFakeTimers();
    const svc = new BarrierService(() => [0, 1, 2, 3]);
    const waits = [0, 2].map((id) => svc.arrive('sync', id, 5000).catch((e: unknown) => e));
    vi.advanceTimersByTime(5000);
    for (const err of await Promise.all(waits)) {
      expect(err).toBeInstanceOf(BarrierTimeoutError);
      expect((err as Error).message).toBe("barrier 'sync' timed out after 5s: workers 1, 3 never arrived (arrived: 0, 2)");
    }
  });

  it('fails every waiter when a worker fails during the barrier', async () => {
    const svc = new BarrierService(() => [0, 1, 2]);
    const waits = [0, 1].map((id) => svc.arrive('b', id, 60_000).catch((e: unknown) => e));
    svc.workerFailed(2, 'killed by SIGKILL');
    for (const err of await Promise.all(waits)) {
      expect(err).toBeInstanceOf(BarrierError);
      expect((err as Error).message).toMatch(/worker 2 failed \(killed by SIGKILL\) while workers 0, 1 were waiting/);
    }
  });

  it('stops waiting for workers that are no longer live', async () => {
    let live = [0, 1, 2];
    const svc = new BarrierService(() => live);
    const waits = [0, 1].map((id) => svc.arrive('b', id, 60_000));
    live = [0, 1];
    svc.recheckAll();
    expect((await Promise.all(waits)).every((r) => r.numWorkers === 2)).toBe(true);
  });
});

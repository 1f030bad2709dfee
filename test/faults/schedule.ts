/** A fault and when to inject it, in ms after all workers started. */
export type Fault =
  | { at: number; kind: 'kill-jobmaster' }
  | { at: number; kind: 'pause-jobmaster'; ms: number }
  | { at: number; kind: 'pause-worker'; workerId: number; ms: number };

/** mulberry32: a small PRNG whose whole state is the seed, so a schedule is replayed from the seed alone. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ScheduleOptions {
  workers: number;
  /** How long the job's barriers take without faults, roughly: faults fall within it. */
  spanMs: number;
  heartbeatMs: number;
}

/**
 * The faults of one run, drawn from `seed`: always two job master kills (one of them while workers wait at
 * a barrier, as they mostly do) and one job master pause longer than the heartbeat timeout; then up to two
 * more of any kind, worker pauses shorter than half the heartbeat timeout among them. Sorted by time,
 * at least 1.5 s apart, so that each fault meets a job master that is back.
 */
export interface Schedule {
  /** Kill the job master as soon as `submit --detach` returned, while the workers are being started. */
  killAtLaunch: boolean;
  faults: Fault[];
  /** Kill the job master once the first worker finished its program, while the job ends. */
  killAtEnd: boolean;
}

/** The whole schedule of a run: the faults in mid-run (drawSchedule), and whether to kill the job master at launch and at the end too. */
export function drawRun(seed: number, o: ScheduleOptions): Schedule {
  const faults = drawSchedule(seed, o);
  const r = random(seed ^ 0x5bd1e995);
  const atLaunch = r() < 0.35;
  const atEnd = r() < 0.5;
  // On unless turned off (T2_FAULT_KILL_AT_END=0), to tell another failure apart from it.
  return { killAtLaunch: atLaunch, faults, killAtEnd: atEnd && process.env.T2_FAULT_KILL_AT_END !== '0' };
}

export function drawSchedule(seed: number, o: ScheduleOptions): Fault[] {
  const r = random(seed);
  const kinds: Fault['kind'][] = ['kill-jobmaster', 'kill-jobmaster', 'pause-jobmaster'];
  const extra = Math.floor(r() * 3);
  for (let i = 0; i < extra; i++) kinds.push((['kill-jobmaster', 'pause-jobmaster', 'pause-worker'] as const)[Math.floor(r() * 3)]!);
  // Shuffled, then placed in slots of the span.
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const slot = o.spanMs / kinds.length;
  return kinds.map((kind, i): Fault => {
    const at = Math.round(i * slot + r() * Math.max(0, slot - 1500));
    if (kind === 'kill-jobmaster') return { at, kind };
    if (kind === 'pause-jobmaster') return { at, kind, ms: Math.round(o.heartbeatMs * (1.2 + r())) };
    return { at, kind, workerId: Math.floor(r() * o.workers), ms: Math.round((o.heartbeatMs / 2) * (0.2 + 0.6 * r())) };
  });
}

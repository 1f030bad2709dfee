import type { Fault } from './schedule.js';

/** What a worker recorded (test/fixtures/fault-worker.mjs). */
export interface WorkerRecord {
  id: number;
  pid: number;
  restart: number;
  t: number;
  step: 'start' | 'arrive' | 'pass' | 'done';
  n?: number;
}

/** The history of one run: the faults as injected (with the time they were), what workers recorded, how it ended. */
export interface History {
  workers: number;
  rounds: number;
  injected: (Fault & { t: number; pid?: number })[];
  records: WorkerRecord[];
  final: {
    state: string;
    message?: string;
    workers: { workerId: number; state: string; restarts: number }[];
    jobMaster?: { pid: number; epoch: number; restarts: number };
  };
  /** Processes of the job (workers, job master, supervisor) still running at the end. */
  leftovers: string[];
}

/** The invariants the fault suite checks (README.md); each violation names the invariant and the evidence. */
export function check(h: History): string[] {
  const v: string[] = [];
  const ids = h.final.workers.map((w) => w.workerId).sort((a, b) => a - b);
  const expected = Array.from({ length: h.workers }, (_, i) => i);
  if (JSON.stringify(ids) !== JSON.stringify(expected)) v.push(`worker IDs: expected exactly 0..${h.workers - 1}, the final status has ${ids.join(', ')}`);

  // No ID held by two live workers at once: each ID's processes follow one another.
  for (const id of expected) {
    const runs = new Map<number, { from: number; to: number }>();
    for (const r of h.records.filter((x) => x.id === id)) {
      const run = runs.get(r.pid) ?? { from: r.t, to: r.t };
      run.from = Math.min(run.from, r.t);
      run.to = Math.max(run.to, r.t);
      runs.set(r.pid, run);
    }
    const sorted = [...runs.entries()].sort((a, b) => a[1].from - b[1].from);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]![1].from <= sorted[i - 1]![1].to) v.push(`worker ID ${id} held by two live processes at once: pids ${sorted[i - 1]![0]} and ${sorted[i]![0]}`);
    }
  }

  // No worker passes barrier n before every worker arrived at it (all runs of one job are on this machine's clock).
  for (let n = 1; n <= h.rounds; n++) {
    const arrivals = h.records.filter((r) => r.step === 'arrive' && r.n === n);
    const passes = h.records.filter((r) => r.step === 'pass' && r.n === n);
    if (passes.length === 0) continue;
    const firstPass = Math.min(...passes.map((p) => p.t));
    for (const id of expected) {
      const arrived = arrivals.filter((a) => a.id === id).map((a) => a.t);
      if (arrived.length === 0 || Math.min(...arrived) > firstPass) {
        v.push(`barrier b${n}: a worker passed at ${firstPass} before worker ${id} arrived${arrived.length ? ` (at ${Math.min(...arrived)})` : ' (it never did)'}`);
      }
    }
    // Passed by all or by none.
    const passedBy = new Set(passes.map((p) => p.id));
    if (h.final.state === 'SUCCEEDED' && passedBy.size !== h.workers) v.push(`barrier b${n}: passed by workers ${[...passedBy].sort().join(', ')} only`);
  }

  // The final state is the one the history implies: the faults all fall within the recovery time, so the job succeeds,
  // no worker is restarted (a job master's crash or pause is not theirs), and the job master's restarts are the kills.
  if (h.final.state !== 'SUCCEEDED') v.push(`final state: expected SUCCEEDED, got ${h.final.state} (${h.final.message ?? 'no message'})`);
  const restarted = h.final.workers.filter((w) => w.restarts > 0);
  if (restarted.length) v.push(`workers restarted though none failed: ${restarted.map((w) => `${w.workerId} (${w.restarts})`).join(', ')}`);
  const kills = h.injected.filter((f) => f.kind === 'kill-jobmaster').length;
  if (h.final.jobMaster?.restarts !== kills) v.push(`job master restarts: ${kills} kills injected, the status says ${h.final.jobMaster?.restarts ?? 'nothing'}`);
  for (const id of expected) {
    const done = h.records.filter((r) => r.id === id && r.step === 'done').length;
    if (h.final.state === 'SUCCEEDED' && done !== 1) v.push(`worker ${id} finished its program ${done} times, expected once`);
  }
  if (h.leftovers.length) v.push(`left running after the job: ${h.leftovers.join(', ')}`);
  return v;
}

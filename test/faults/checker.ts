import type { Fault } from './schedule.js';

/** What a worker recorded (test/fixtures/fault-worker.mjs). */
export interface WorkerRecord {
  id: number;
  pid: number;
  restart: number;
  t: number;
  step: 'start' | 'arrive' | 'pass' | 'broken' | 'done';
  n?: number;
  /** A broken barrier's error message. */
  error?: string;
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
    endedAt?: string;
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
  v.push(...printedTwice(h.records));
  return v;
}

/** The job's logs hold each line a worker printed once (every record has its process and time): none twice, also when a job master restarted while following the output. */
function printedTwice(records: WorkerRecord[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const r of records) {
    const line = JSON.stringify(r);
    if (seen.has(line)) twice.add(line);
    seen.add(line);
  }
  return [...twice].map((line) => `a record is in the job's logs more than once: ${line}`);
}

/** The history of a partition run (partition.ts): which workers' host was cut off, when, and what to expect. */
export interface PartitionHistory extends Omit<History, 'injected'> {
  cut: { ids: number[]; from: number; to: number };
  expect: 'replace' | 'fail';
  /** The workers' output, for what the runtime said. */
  logs: string;
}

/** The invariants of a partition run (README.md), over each ID's processes in the order they started. */
export function checkPartition(h: PartitionHistory): string[] {
  const v: string[] = [];
  const expected = Array.from({ length: h.workers }, (_, i) => i);
  const ids = h.final.workers.map((w) => w.workerId).sort((a, b) => a - b);
  if (JSON.stringify(ids) !== JSON.stringify(expected)) v.push(`worker IDs: expected exactly 0..${h.workers - 1}, the final status has ${ids.join(', ')}`);
  const runs = new Map<number, { pid: number; from: number }[]>();
  for (const id of expected) {
    const firsts = new Map<number, number>();
    for (const r of h.records.filter((x) => x.id === id)) firsts.set(r.pid, Math.min(firsts.get(r.pid) ?? Infinity, r.t));
    runs.set(id, [...firsts].map(([pid, from]) => ({ pid, from })).sort((a, b) => a.from - b.from));
  }
  /** The process holding `id` at time t: the last of its processes to have started by then. */
  const holder = (id: number, t: number) => runs.get(id)!.filter((p) => p.from <= t).at(-1)?.pid;

  // One holder per ID: once a replacement started, the process it replaced neither starts, passes nor finishes.
  for (const id of expected) {
    const list = runs.get(id)!;
    for (let i = 1; i < list.length; i++) {
      const [old, next] = [list[i - 1]!, list[i]!];
      const late = h.records.filter((r) => r.pid === old.pid && r.t >= next.from && ['start', 'pass', 'done'].includes(r.step));
      for (const r of late) v.push(`worker ID ${id} held by two processes: pid ${old.pid} recorded ${r.step}${r.n ? ` b${r.n}` : ''} at ${r.t}, after its replacement pid ${next.pid} started at ${next.from}`);
    }
  }
  // No pass before every worker's holder at that time arrived.
  for (const p of h.records.filter((r) => r.step === 'pass')) {
    for (const id of expected) {
      const pid = holder(id, p.t);
      if (!h.records.some((r) => r.pid === pid && r.step === 'arrive' && r.n === p.n && r.t <= p.t)) {
        v.push(`barrier b${p.n}: worker ${p.id} (pid ${p.pid}) passed at ${p.t} before worker ${id} (pid ${pid ?? 'none yet'}) arrived`);
      }
    }
  }
  // Every broken barrier names its cause.
  for (const b of h.records.filter((r) => r.step === 'broken')) {
    if (!/worker \d+ failed \(.+\)|timed out|aborted: .+|stale session \(the worker was replaced/.test(b.error ?? '')) v.push(`barrier b${b.n} broke for worker ${b.id} without a named cause: ${b.error ?? '(no message)'}`);
  }
  const unheard = (m: string | undefined) => h.cut.ids.some((id) => (m ?? '').includes(`worker ${id} failed`) && (m ?? '').includes('no heartbeat'));
  if (h.expect === 'replace') {
    // The job carries on: the cut workers were replaced, the old ones told so, every worker's last run done once.
    if (h.final.state !== 'SUCCEEDED') v.push(`final state: expected SUCCEEDED, got ${h.final.state} (${h.final.message ?? 'no message'})`);
    for (const id of h.cut.ids) {
      if ((h.final.workers.find((w) => w.workerId === id)?.restarts ?? 0) < 1) v.push(`worker ${id} was cut off but not replaced`);
    }
    if (!h.records.some((r) => r.step === 'broken' && unheard(r.error))) v.push(`no barrier broke naming a cut worker (${h.cut.ids.join(', ')}) and its missed heartbeats`);
    // Told by its next heartbeat's answer, or by its barrier call's.
    for (const id of h.cut.ids) {
      if (!new RegExp(`^\\[twister2 worker ${id}\\] .*(no longer accepts this worker|stale session)`, 'm').test(h.logs)) v.push(`worker ${id}: its replaced process was not told so once the link was back`);
    }
    for (const id of expected) {
      const done = h.records.filter((r) => r.id === id && r.step === 'done');
      const last = runs.get(id)!.at(-1)?.pid;
      if (done.length !== 1 || done[0]!.pid !== last) v.push(`worker ${id}: its last process (pid ${last}) should finish its program once; done by ${done.map((d) => d.pid).join(', ') || 'none'}`);
    }
  } else {
    // The cluster cannot replace one worker: the job fails naming a cut worker and why.
    if (h.final.state !== 'FAILED' || !unheard(h.final.message)) v.push(`final state: expected FAILED naming a cut worker (${h.cut.ids.join(', ')}) and its missed heartbeats, got ${h.final.state} (${h.final.message ?? 'no message'})`);
  }
  if (h.leftovers.length) v.push(`left running after the job: ${h.leftovers.join(', ')}`);
  v.push(...printedTwice(h.records));
  return v;
}

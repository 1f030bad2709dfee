import type { DriverStatus, JobState, WorkerInfo, WorkerState } from '../protocol/messages.js';
import type { JournalRecord } from './journal.js';

/** A worker's record as the journal keeps it (what the job master needs to carry on; not its last heartbeat). */
export interface SavedWorker {
  workerId: number;
  state: WorkerState;
  restarts: number;
  info?: WorkerInfo;
  session?: string;
  /** The registering process's own ID (RegisterRequest.incarnation). */
  incarnation?: string;
  message?: string;
  unreportedRunEnds?: number;
}

/** A barrier name: its current generation, who arrived at it (with their arrival keys), and how the last one ended. */
export interface SavedBarrier {
  name: string;
  generation: number;
  /** [workerId, arrival key] of the pending generation; empty when none is pending. */
  arrivals: [number, string][];
  /** The last generation that ended: the keys that were answered, and the answer. */
  last?: { generation: number; keys: string[]; numWorkers?: number; error?: { code: string; message: string } };
}

/** Everything a restarted job master carries on from (docs/protocol.md §7). */
export interface SavedState {
  job?: { state: JobState; message?: string; startedAt: string; endedAt?: string };
  numWorkers?: number;
  workers: Map<number, SavedWorker>;
  barriers: Map<string, SavedBarrier>;
  /** What the launcher asked to keep (LauncherListener.remember), by key. */
  launcher: Record<string, unknown>;
  /** Where the package was uploaded: a restarted job master does not upload it again. */
  packageRef?: unknown;
  /** The driver's last state (a restarted job master starts it again unless it returned or failed). */
  driver?: DriverStatus;
  /** The epochs so far, oldest first: who ran the job master, and how often it was restarted. */
  epochs: { epoch: number; pid: number; host: string; at: string }[];
}

/** Replays journal records, in order; later records win. */
export function replay(records: JournalRecord[]): SavedState {
  const s: SavedState = { workers: new Map(), barriers: new Map(), epochs: [], launcher: {} };
  const barrier = (name: string) => {
    let b = s.barriers.get(name);
    if (!b) s.barriers.set(name, (b = { name, generation: 0, arrivals: [] }));
    return b;
  };
  for (const r of records) {
    switch (r.t) {
      case 'epoch':
        s.epochs.push(r as unknown as SavedState['epochs'][number]);
        break;
      case 'job':
        s.job = { state: r.state as JobState, startedAt: String(r.startedAt), ...(r.message ? { message: String(r.message) } : {}), ...(r.endedAt ? { endedAt: String(r.endedAt) } : {}) };
        break;
      case 'size':
        s.numWorkers = r.numWorkers as number;
        break;
      case 'worker': {
        const { t: _t, ...w } = r;
        s.workers.set(w.workerId as number, w as unknown as SavedWorker);
        break;
      }
      case 'removed':
        s.workers.delete(r.workerId as number);
        break;
      case 'arrive': {
        const b = barrier(String(r.name));
        if ((r.generation as number) !== b.generation) b.arrivals = [];
        b.generation = r.generation as number;
        b.arrivals = b.arrivals.filter(([id]) => id !== r.workerId);
        b.arrivals.push([r.workerId as number, String(r.key)]);
        break;
      }
      case 'barrier-ended': {
        const b = barrier(String(r.name));
        const last = r.last as Omit<NonNullable<SavedBarrier['last']>, 'keys'> & { keys?: string[] };
        // The keys answered are those of the generation's arrivals (a compacted journal lists them instead).
        const keys = last.keys ?? (b.generation === r.generation ? b.arrivals.map(([, key]) => key).filter(Boolean) : []);
        b.generation = r.generation as number;
        b.arrivals = [];
        b.last = { ...last, keys };
        break;
      }
      case 'package':
        s.packageRef = r.ref;
        break;
      case 'launcher':
        s.launcher[String(r.key)] = r.value;
        break;
      case 'driver': {
        const { t: _t, ...d } = r;
        s.driver = d as unknown as DriverStatus;
        break;
      }
    }
  }
  return s;
}

/** The fewest records that replay to the same state: what a new job master rewrites the journal as. */
export function compactRecords(s: SavedState): JournalRecord[] {
  const out: JournalRecord[] = [...s.epochs.map((e) => ({ t: 'epoch', ...e }))];
  if (s.packageRef !== undefined) out.push({ t: 'package', ref: s.packageRef });
  if (s.job) out.push({ t: 'job', ...s.job });
  if (s.numWorkers !== undefined) out.push({ t: 'size', numWorkers: s.numWorkers });
  for (const w of s.workers.values()) out.push({ t: 'worker', ...w });
  for (const b of s.barriers.values()) {
    if (b.last || b.arrivals.length === 0) out.push({ t: 'barrier-ended', name: b.name, generation: b.last?.generation ?? b.generation, last: b.last });
    for (const [workerId, key] of b.arrivals) out.push({ t: 'arrive', name: b.name, generation: b.generation, workerId, key });
  }
  for (const [key, value] of Object.entries(s.launcher)) out.push({ t: 'launcher', key, value });
  if (s.driver) out.push({ t: 'driver', ...s.driver });
  return out;
}

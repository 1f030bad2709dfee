import { JobMasterFencedError } from '../errors.js';

/** One line of the job master's journal: a fact it must not forget, replayed in order (later lines win). */
export type JournalRecord = { t: string } & Record<string, unknown>;

/**
 * Where a journal lives: a file in the job directory (FileJournalStore), or objects of the cluster that
 * outlive the job master's machine, pod or allocation (a Kubernetes ConfigMap, Nomad Variables). The store is what fences: `claim`
 * takes the next epoch, and `append` and `rewrite` write only while that epoch is still the current one.
 */
export interface JournalStore {
  /** What earlier job masters wrote (a torn last record dropped), rewritten as `compact` makes it with `epochRecord` of the next epoch at its end; that epoch is claimed. */
  claim(compact: (records: JournalRecord[]) => JournalRecord[], epochRecord: (epoch: number) => JournalRecord): Promise<{ epoch: number; records: JournalRecord[]; bytes: number }>;
  /** Stores `text` (whole JSON lines) durably after what is there; JobMasterFencedError once `epoch` is no longer the current one. */
  append(text: string, epoch: number): Promise<void>;
  /** Rewrites what is stored as `compact` makes it; its size. */
  rewrite(compact: (records: JournalRecord[]) => JournalRecord[], epoch: number): Promise<number>;
  close(): Promise<void>;
  /** Deletes what is stored, once the job ended and the journal closed: for a store that nothing else removes (Nomad Variables). */
  discard?(): Promise<void>;
  /** The store's own size to compact at, and the most it holds (a ConfigMap: 1 MiB). */
  readonly compactAtBytes?: number;
  readonly limitBytes?: number;
}

/** What a store says when a job master's epoch is no longer the current one (another took over). */
export function supersededError(epoch: number, current: number): JobMasterFencedError {
  return new JobMasterFencedError(`job master epoch ${epoch} was superseded by epoch ${current}: another job master took over this job`);
}

/**
 * The records of a journal's text, one JSON line each. `torn: 'drop'` for a store whose last write can be
 * cut short by a crash (a file): the records before the first unreadable line, that line never having
 * been acknowledged. Stores that write whole commits atomically throw on an unreadable line.
 */
export function parseJournalLines(text: string, torn: 'drop' | 'throw' = 'throw'): JournalRecord[] {
  const records: JournalRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      records.push(JSON.parse(line) as JournalRecord);
    } catch (err) {
      if (torn === 'drop') break;
      throw err;
    }
  }
  return records;
}

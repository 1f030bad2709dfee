import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { JobMasterFencedError } from '../errors.js';
import { parseJournalLines, supersededError, type JournalRecord, type JournalStore } from '../job/journal-store.js';

export type { JournalRecord, JournalStore } from '../job/journal-store.js';

export const JOURNAL_FILE = 'jobmaster.journal';
/** The epoch of the job master that may act now; a job master with an older one stops (fencing). */
export const EPOCH_FILE = 'jobmaster.epoch';

/** Past this size the journal is rewritten compactly (about 400,000 barrier arrivals). */
const COMPACT_AT_BYTES = 32 * 2 ** 20;

export interface JournalOptions {
  /** The fewest records that replay to the same state as `records`. */
  compact(records: JournalRecord[]): JournalRecord[];
  /** Another job master took over: this one has written its last. */
  onFenced(err: JobMasterFencedError): void;
  /** For tests: when to compact (default: the store's, else 32 MiB). */
  compactAtBytes?: number;
}

/**
 * The job master's durable state: an append-only sequence of JSON lines in a JournalStore. Appends are
 * group-committed: every record appended during one turn of the event loop is written together, and
 * `flushed()` resolves once all records appended so far are stored, so an answer sent after it never
 * tells a worker something a restarted job master would not know.
 *
 * Fencing: each job master claims the next epoch when it opens the journal, and the store writes only
 * while that epoch is the current one. A job master that was paused or cut off while another took over
 * writes nothing more and is told through `onFenced`.
 */
export class Journal {
  private buffer: string[] = [];
  private committing: Promise<void> | undefined;
  private scheduled = false;
  private waiters: { resolve(): void; reject(err: Error): void }[] = [];
  private fenced: JobMasterFencedError | undefined;
  private compactAt: number;

  private constructor(
    private readonly store: JournalStore,
    /** Bytes stored now: past `compactAt`, the journal is rewritten compactly. */
    private bytes: number,
    readonly epoch: number,
    private readonly opts: JournalOptions,
  ) {
    this.compactAt = this.nextCompaction(bytes);
  }

  /** Opens the journal of `jobDir` (a file there) as its new owner; see openIn. */
  static open(jobDir: string, opts: JournalOptions): Promise<{ journal: Journal; records: JournalRecord[] }> {
    return Journal.openIn(new FileJournalStore(jobDir), opts);
  }

  /**
   * Opens the journal in `store` as its new owner: reads what earlier job masters wrote, rewrites it as
   * `compact` makes it (one line per fact still true) with this job master's epoch record at its end,
   * and claims that epoch. `records` is what was read, the new epoch record last.
   */
  static async openIn(store: JournalStore, opts: JournalOptions): Promise<{ journal: Journal; records: JournalRecord[] }> {
    const epochRecord = (epoch: number) => ({ t: 'epoch', epoch, pid: process.pid, host: os.hostname(), at: new Date().toISOString() });
    const { epoch, records, bytes } = await store.claim(opts.compact, epochRecord);
    return { journal: new Journal(store, bytes, epoch, opts), records };
  }

  append(record: JournalRecord): void {
    if (this.fenced) return;
    this.buffer.push(`${JSON.stringify(record)}\n`);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.commit());
    }
  }

  /** Resolves when every record appended so far is stored; rejects once this job master was fenced off. */
  flushed(): Promise<void> {
    if (this.fenced) return Promise.reject(this.fenced);
    if (this.buffer.length === 0) {
      // Nothing new: what was appended so far is stored once the commit under way (if any) is.
      const committing = this.committing;
      if (!committing) return Promise.resolve();
      return committing.then(() => {
        if (this.fenced) throw this.fenced;
      });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async close(): Promise<void> {
    while (this.committing || this.buffer.length > 0) await (this.committing ?? this.commit());
    await this.store.close();
  }

  /** A state that is itself large is not rewritten on every commit: next time at twice its size (within the store's limit). */
  private nextCompaction(bytes: number): number {
    const at = Math.max(this.opts.compactAtBytes ?? this.store.compactAtBytes ?? COMPACT_AT_BYTES, 2 * bytes);
    return Math.min(at, this.store.limitBytes ?? Infinity);
  }

  private async commit(): Promise<void> {
    this.scheduled = false;
    if (this.committing) return this.committing.then(() => this.commit());
    if (this.buffer.length === 0) return;
    const lines = this.buffer.join('');
    const waiters = this.waiters;
    this.buffer = [];
    this.waiters = [];
    this.committing = (async () => {
      try {
        await this.store.append(lines, this.epoch);
        this.bytes += Buffer.byteLength(lines);
        // A long-running job's journal (a line per barrier arrival) is rewritten compactly now and then.
        if (this.bytes > this.compactAt) {
          this.bytes = await this.store.rewrite(this.opts.compact, this.epoch);
          this.compactAt = this.nextCompaction(this.bytes);
        }
        for (const w of waiters) w.resolve();
      } catch (err) {
        const fenced = err instanceof JobMasterFencedError ? err : new JobMasterFencedError(`could not write the job master's journal: ${(err as Error).message}`);
        this.fenced = fenced;
        for (const w of [...waiters, ...this.waiters]) w.reject(fenced);
        this.waiters = [];
        this.opts.onFenced(fenced);
      } finally {
        this.committing = undefined;
      }
    })();
    await this.committing;
    if (this.buffer.length > 0 && !this.scheduled) await this.commit();
  }
}

/** The journal as a file of the job directory, fsync'd at each commit; its epoch in a file beside it. */
export class FileJournalStore implements JournalStore {
  private handle: FileHandle | undefined;

  constructor(private readonly dir: string) {}

  private get file(): string {
    return path.join(this.dir, JOURNAL_FILE);
  }

  async claim(compact: (records: JournalRecord[]) => JournalRecord[], epochRecord: (epoch: number) => JournalRecord): Promise<{ epoch: number; records: JournalRecord[]; bytes: number }> {
    const epoch = readEpoch(this.dir) + 1;
    const records = [...readRecords(this.file), epochRecord(epoch)];
    const bytes = rewrite(this.file, compact(records));
    writeDurably(path.join(this.dir, `${EPOCH_FILE}.tmp`), String(epoch));
    renameSync(path.join(this.dir, `${EPOCH_FILE}.tmp`), path.join(this.dir, EPOCH_FILE));
    fsyncDir(this.dir);
    this.handle = await open(this.file, 'a', 0o600);
    return { epoch, records, bytes };
  }

  async append(text: string, epoch: number): Promise<void> {
    const current = Number((await readFile(path.join(this.dir, EPOCH_FILE), 'utf8')).trim());
    if (current !== epoch) throw supersededError(epoch, current);
    await this.handle!.write(text);
    await this.handle!.datasync();
  }

  async rewrite(compact: (records: JournalRecord[]) => JournalRecord[]): Promise<number> {
    await this.handle!.close();
    const bytes = rewrite(this.file, compact(readRecords(this.file)));
    fsyncDir(this.dir);
    this.handle = await open(this.file, 'a', 0o600);
    return bytes;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }
}

/** Rewrites `file` as `records`, whole, then renamed over the old one: a crash in between leaves either file, never half of one. Returns its size. */
function rewrite(file: string, records: JournalRecord[]): number {
  const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
  writeDurably(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
  return Buffer.byteLength(text);
}

/** The journal's records; a torn last line (a crash mid-write) is dropped, as it was never acknowledged. */
export function readRecords(file: string): JournalRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseJournalLines(text, 'drop');
}

export function readEpoch(jobDir: string): number {
  try {
    const n = Number(readFileSync(path.join(jobDir, EPOCH_FILE), 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function writeDurably(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseJournalLines, supersededError, type JournalRecord, type JournalStore } from '../../job/journal-store.js';
import type { NomadApi } from './nomad-api.js';

/** Where a job's journal lives: outside `nomad/jobs/<job>`, which the job's own tasks (the workers) may read. */
export const journalPrefix = (jobId: string) => `twister2/jobs/${jobId}/`;
/** Items of the head variable: the fence, the snapshot's reference, then one `r<8 digits>` per commit. */
const EPOCH = 'epoch';
const SNAPSHOT = 'snapshot';
const COMMIT = 'r';
/** A Nomad variable holds 64 KiB at most: larger texts go, gzip'd, into pieces of their own (blobs). */
const PIECE_CHARS = 40 * 1024;
const INLINE_CHARS = 8 * 1024;
const BLOB = '@blob:';
/** Commits kept in the head before they are folded into a new snapshot. */
const COMPACT_AT_BYTES = 24 * 1024;

/**
 * The job master's journal in Nomad Variables (replicated by Nomad's servers), so it outlives the job
 * master's allocation and node. The head variable `twister2/jobs/<job>/journal` holds the epoch, the
 * snapshot (a blob reference) and the commits since; every write replaces the head with check-and-set on
 * its ModifyIndex, so a job master that another took over (it claimed the next epoch, changing the head)
 * fails its next write and finds the newer epoch: fencing, on every write. Blobs are written before the
 * head that refers to them and deleted once no head does; `discard` deletes everything at the job's end.
 */
export class NomadVariablesJournalStore implements JournalStore {
  readonly compactAtBytes = COMPACT_AT_BYTES;
  private head = { index: 0, items: {} as Record<string, string> };
  private commits = 0;

  constructor(
    private readonly api: NomadApi,
    private readonly jobId: string,
  ) {}

  private get headPath(): string {
    return `${journalPrefix(this.jobId)}journal`;
  }

  async claim(compact: (records: JournalRecord[]) => JournalRecord[], epochRecord: (epoch: number) => JournalRecord): Promise<{ epoch: number; records: JournalRecord[]; bytes: number }> {
    for (;;) {
      const head = await this.readHead();
      const epoch = Number(head.items[EPOCH] ?? 0);
      const records = [...(await this.decode(head.items)), epochRecord(epoch + 1)];
      if (await this.replace(head, epoch + 1, compact(records))) return { epoch: epoch + 1, records, bytes: 0 };
      // Another job master claimed or wrote in between: read again.
    }
  }

  async append(text: string, epoch: number): Promise<void> {
    const key = `${COMMIT}${String(this.commits).padStart(8, '0')}`;
    const value = text.length > INLINE_CHARS ? await this.putBlob(epoch, text) : text;
    const items = { ...this.head.items, [key]: value };
    const index = await this.api.putVariableIfUnchanged(this.headPath, items, this.head.index);
    if (index === undefined) {
      const current = Number((await this.readHead()).items[EPOCH] ?? 0);
      throw current !== epoch ? supersededError(epoch, current) : new Error(`the journal variable ${this.headPath} changed under job master epoch ${epoch}`);
    }
    this.head = { index, items };
    this.commits += 1;
  }

  async rewrite(compact: (records: JournalRecord[]) => JournalRecord[], epoch: number): Promise<number> {
    for (;;) {
      const head = await this.readHead();
      const current = Number(head.items[EPOCH] ?? 0);
      if (current !== epoch) throw supersededError(epoch, current);
      if (await this.replace(head, epoch, compact(await this.decode(head.items)))) return 0;
    }
  }

  async close(): Promise<void> {}

  async discard(): Promise<void> {
    for (const p of await this.api.variablePaths(journalPrefix(this.jobId))) await this.api.deleteVariable(p);
  }

  private async readHead(): Promise<{ index: number; items: Record<string, string> }> {
    return (await this.api.variable(this.headPath)) ?? { index: 0, items: {} };
  }

  /** Replaces `head` (as read) by a snapshot of `records` at `epoch`; false when the head changed meanwhile. */
  private async replace(head: { index: number; items: Record<string, string> }, epoch: number, records: JournalRecord[]): Promise<boolean> {
    const snapshot = await this.putBlob(epoch, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const items = { [EPOCH]: String(epoch), [SNAPSHOT]: snapshot };
    const index = await this.api.putVariableIfUnchanged(this.headPath, items, head.index);
    if (index === undefined) {
      await this.deleteBlob(snapshot);
      return false;
    }
    this.head = { index, items };
    this.commits = 0;
    // The old head's blobs: nothing refers to them now.
    for (const v of Object.values(head.items)) if (v.startsWith(BLOB)) await this.deleteBlob(v);
    return true;
  }

  /** The head's records: the snapshot's, then each commit's, in order. */
  private async decode(items: Record<string, string>): Promise<JournalRecord[]> {
    const texts = [items[SNAPSHOT] ? await this.text(items[SNAPSHOT]) : ''];
    for (const k of Object.keys(items).filter((key) => key.startsWith(COMMIT)).sort()) texts.push(await this.text(items[k]!));
    return parseJournalLines(texts.join(''));
  }

  private async text(value: string): Promise<string> {
    if (!value.startsWith(BLOB)) return value;
    const { name, pieces } = parseBlob(value);
    const parts: string[] = [];
    for (let i = 0; i < pieces; i++) {
      const v = await this.api.variable(`${journalPrefix(this.jobId)}${name}-${i}`);
      if (!v) throw new Error(`the journal's piece ${name}-${i} is missing`);
      parts.push(v.items.data ?? '');
    }
    return gunzipSync(Buffer.from(parts.join(''), 'base64')).toString('utf8');
  }

  /** Stores `text` gzip'd in pieces (variables of their own, under a name no other writer picks); its reference. */
  private async putBlob(epoch: number, text: string): Promise<string> {
    const data = gzipSync(text).toString('base64');
    const name = `blob-${epoch}-${randomBytes(6).toString('hex')}`;
    const pieces = Math.max(1, Math.ceil(data.length / PIECE_CHARS));
    for (let i = 0; i < pieces; i++) await this.api.putVariable(`${journalPrefix(this.jobId)}${name}-${i}`, { data: data.slice(i * PIECE_CHARS, (i + 1) * PIECE_CHARS) });
    return `${BLOB}${name}:${pieces}`;
  }

  private async deleteBlob(ref: string): Promise<void> {
    const { name, pieces } = parseBlob(ref);
    for (let i = 0; i < pieces; i++) await this.api.deleteVariable(`${journalPrefix(this.jobId)}${name}-${i}`);
  }
}

function parseBlob(ref: string): { name: string; pieces: number } {
  const [name, pieces] = ref.slice(BLOB.length).split(':');
  return { name: name!, pieces: Number(pieces) };
}

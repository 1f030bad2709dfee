import { gunzipSync, gzipSync } from 'node:zlib';
import { ApiException, type V1ConfigMap } from '@kubernetes/client-node';
import { parseJournalLines, supersededError, type JournalRecord, type JournalStore } from '../../job/journal-store.js';
import { kubeCall, type KubeApi } from './kube-api.js';

/** The epoch that may write (a decimal string): the fence. */
const EPOCH_KEY = 'epoch';
/** binaryData: the compacted journal, gzip'd JSON lines (a job's state compresses about tenfold). */
const SNAPSHOT_KEY = 'snapshot';
/** data: one key per commit since the snapshot, `r<8 digits>`, in order. */
const COMMIT_PREFIX = 'r';
/** A ConfigMap holds at most 1 MiB: rewrite well before, and refuse a state that cannot fit. */
const COMPACT_AT_BYTES = 256 * 1024;
const LIMIT_BYTES = 900 * 1024;

/**
 * The in-cluster job master's journal in a ConfigMap of the job (jobMasterJournal), which outlives the job
 * master's pod: deleted, evicted or moved to another node, its successor in the new pod carries on from it.
 *
 * Each commit is one JSON patch that adds a key and first tests that the `epoch` key still holds this job
 * master's epoch; the API server applies both or neither, so a job master that another one took over
 * (it claimed the next epoch) cannot write again: fencing, checked on every write. Claiming and
 * compacting replace the whole ConfigMap under its resourceVersion.
 */
export class ConfigMapJournalStore implements JournalStore {
  readonly compactAtBytes = COMPACT_AT_BYTES;
  readonly limitBytes = LIMIT_BYTES;
  private next = 0;

  constructor(
    private readonly api: KubeApi,
    private readonly name: string,
  ) {}

  /** What earlier job masters wrote, without claiming anything: whether a new pod carries on a job. */
  async peek(): Promise<JournalRecord[]> {
    return decode(await this.get()).records;
  }

  async claim(compact: (records: JournalRecord[]) => JournalRecord[], epochRecord: (epoch: number) => JournalRecord): Promise<{ epoch: number; records: JournalRecord[]; bytes: number }> {
    for (;;) {
      const cm = await this.get();
      const { epoch, records } = decode(cm);
      const all = [...records, epochRecord(epoch + 1)];
      const bytes = await this.replace(cm, epoch + 1, compact(all));
      if (bytes !== undefined) return { epoch: epoch + 1, records: all, bytes };
      // Another job master claimed or wrote in between: read again.
    }
  }

  async append(text: string, epoch: number): Promise<void> {
    const key = `${COMMIT_PREFIX}${String(this.next).padStart(8, '0')}`;
    const body = [
      { op: 'test', path: `/data/${EPOCH_KEY}`, value: String(epoch) },
      { op: 'add', path: `/data/${key}`, value: text },
    ];
    try {
      await this.api.core.patchNamespacedConfigMap({ name: this.name, namespace: this.api.namespace, body });
    } catch (err) {
      // A failed test is a newer epoch; anything else is the API's failure (not fenced, but unwritten).
      const current = decode(await this.get()).epoch;
      if (current !== epoch) throw supersededError(epoch, current);
      throw err;
    }
    this.next += 1;
  }

  async rewrite(compact: (records: JournalRecord[]) => JournalRecord[], epoch: number): Promise<number> {
    for (;;) {
      const cm = await this.get();
      const { epoch: current, records } = decode(cm);
      if (current !== epoch) throw supersededError(epoch, current);
      const bytes = await this.replace(cm, epoch, compact(records));
      if (bytes !== undefined) return bytes;
    }
  }

  async close(): Promise<void> {}

  private get(): Promise<V1ConfigMap> {
    return kubeCall(`read the job master's journal, ConfigMap "${this.name}" in namespace "${this.api.namespace}"`, () =>
      this.api.core.readNamespacedConfigMap({ name: this.name, namespace: this.api.namespace }),
    );
  }

  /** Replaces `cm` (as read: its resourceVersion is the precondition) by `records` at `epoch`; undefined when someone wrote in between. */
  private async replace(cm: V1ConfigMap, epoch: number, records: JournalRecord[]): Promise<number | undefined> {
    const snapshot = gzipSync(records.map((r) => `${JSON.stringify(r)}\n`).join('')).toString('base64');
    if (snapshot.length > LIMIT_BYTES) {
      throw new Error(`the job's state (${snapshot.length} bytes compressed) no longer fits its journal ConfigMap "${this.name}" (1 MiB at most)`);
    }
    const body: V1ConfigMap = { ...cm, data: { [EPOCH_KEY]: String(epoch) }, binaryData: { [SNAPSHOT_KEY]: snapshot } };
    try {
      await this.api.core.replaceNamespacedConfigMap({ name: this.name, namespace: this.api.namespace, body });
    } catch (err) {
      if (err instanceof ApiException && (err as ApiException<unknown>).code === 409) return undefined;
      throw err;
    }
    this.next = 0;
    return snapshot.length;
  }
}

/** The epoch and the records of a journal ConfigMap: the snapshot's, then each commit's, in order. */
function decode(cm: V1ConfigMap): { epoch: number; records: JournalRecord[] } {
  const epoch = Number(cm.data?.[EPOCH_KEY] ?? 0);
  const snapshot = cm.binaryData?.[SNAPSHOT_KEY];
  const texts = [snapshot ? gunzipSync(Buffer.from(snapshot, 'base64')).toString('utf8') : ''];
  const commits = Object.keys(cm.data ?? {})
    .filter((k) => k.startsWith(COMMIT_PREFIX))
    .sort();
  for (const k of commits) texts.push(cm.data![k]!);
  return { epoch: Number.isSafeInteger(epoch) ? epoch : 0, records: parseJournalLines(texts.join('')) };
}

import { once } from 'node:events';
import { existsSync, readdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { MAX_LINE_CHARS } from '../../line-splitter.js';
import { WorkerLogFiles } from '../worker-log-files.js';
import type { NomadApi } from './nomad-api.js';

type LogType = 'stdout' | 'stderr';

/**
 * How far a worker's log file was written, kept for a restarted job master: its length, and for each of
 * the worker's streams (key `allocId/stdout`) the offset in the allocation's log whose bytes are all in it.
 * One record per file, not per stream: two streams share the file, and a stream's offset alone would not
 * say where the other's bytes end (a restarted follower would write some of them twice).
 */
export interface LogProgress {
  length: number;
  offsets: Record<string, number>;
}

interface Followed {
  workerId: number;
  /** Bytes already written to the worker's log: where a new follow or the final read starts. */
  received: number;
  /** The end of the output received so far when it is not a whole line: held until its newline comes. */
  pending: Buffer;
  stream?: Readable | undefined;
}

/**
 * The whole lines `chunk` completes, with what was held before it; the unfinished rest is held in
 * `f.pending`. stdout and stderr go to the same file, and Nomad's frames end anywhere: written as they
 * come, a stderr line could land inside a stdout line and corrupt both. A line without an end is handed
 * on once it is MAX_LINE_CHARS bytes long, so what is held stays bounded.
 */
function wholeLines(f: Followed, chunk: Buffer): Buffer | undefined {
  const all = f.pending.length ? Buffer.concat([f.pending, chunk]) : chunk;
  const end = all.lastIndexOf(0x0a) + 1;
  const cut = end === 0 && all.length >= MAX_LINE_CHARS ? all.length : end;
  f.pending = Buffer.from(all.subarray(cut));
  return cut ? all.subarray(0, cut) : undefined;
}

/**
 * Each allocation's stdout and stderr, appended to `logs/worker-<index>.log` while the job runs (Nomad's
 * logs API, followed). A follow that failed (the task had not started yet) is started again from where it
 * stopped. Nomad never ends a followed stream by itself, so at the end every log is read once more,
 * without following, from the last byte received: nothing a worker printed is lost. A log file that
 * cannot take more pauses the stream until it drained, so memory stays bounded.
 */
export class AllocationLogs {
  private readonly followed = new Map<string, Followed>();
  private readonly files: WorkerLogFiles;

  /** Each worker log file's length with every write queued so far (from its size when first written). */
  private readonly lengths = new Map<number, number>();
  /** Per worker: each stream's offset with every write queued so far. */
  private readonly queued = new Map<number, Record<string, number>>();

  /**
   * `progress`, for a job master that can be restarted: after each write reached a worker's log file (key
   * the worker ID), the file's length and every stream's offset as of that write. `from`: the last progress
   * its predecessor kept. Each log file is cut back to the length kept for it (to nothing without one), and
   * each stream read on from the offset kept with that length: every line lands in the file exactly once.
   */
  constructor(
    private readonly api: NomadApi,
    private readonly task: string,
    private readonly logsDir: string,
    private readonly resumeAt: { from?: Map<string, LogProgress>; progress?: (workerId: string, p: LogProgress) => void } = {},
  ) {
    this.files = new WorkerLogFiles(logsDir);
    const from = resumeAt.from;
    if (!from) return;
    for (const name of existsSync(logsDir) ? readdirSync(logsDir) : []) {
      const workerId = /^worker-(\d+)\.log$/.exec(name)?.[1];
      if (workerId === undefined) continue;
      const kept = from.get(workerId);
      const file = path.join(logsDir, name);
      if (statSync(file).size > (kept?.length ?? 0)) truncateSync(file, kept?.length ?? 0);
    }
    for (const [workerId, p] of from) this.queued.set(Number(workerId), { ...p.offsets });
  }

  private fileOf(workerId: number): string {
    return path.join(this.logsDir, `worker-${workerId}.log`);
  }

  /** Writes `lines` to the worker's log file; once they are in it, reports the file's progress. Returns false when the file wants a drain. */
  private write(key: string, workerId: number, lines: Buffer, offset: number): boolean {
    const file = this.files.of(workerId);
    const before = this.lengths.get(workerId) ?? (existsSync(this.fileOf(workerId)) ? statSync(this.fileOf(workerId)).size : 0);
    const length = before + lines.length;
    this.lengths.set(workerId, length);
    const offsets = { ...this.queued.get(workerId), [key]: offset };
    this.queued.set(workerId, offsets);
    const progress = this.resumeAt.progress;
    // Writes to one file complete in order: when this one is in, so is everything queued before it.
    return file.write(lines, progress && (() => progress(String(workerId), { length, offsets })));
  }

  /** A stream not followed yet: from where its predecessor's bytes end in the file (0 for a new one). */
  private startAt(key: string, workerId: number): Followed {
    return { workerId, received: this.queued.get(workerId)?.[key] ?? 0, pending: Buffer.alloc(0) };
  }

  /** Follows an allocation's logs, or resumes a follow that failed. Cheap to call on every poll. */
  follow(allocId: string, workerId: number): void {
    for (const type of ['stdout', 'stderr'] as const) {
      const key = `${allocId}/${type}`;
      const f = this.followed.get(key) ?? this.startAt(key, workerId);
      this.followed.set(key, f);
      if (f.stream) continue;
      const stream = this.api.logStream(allocId, this.task, type, f.received);
      f.stream = stream;
      stream.on('data', (chunk: Buffer) => {
        f.received += chunk.length;
        const lines = wholeLines(f, chunk);
        if (!lines) return;
        if (this.write(key, workerId, lines, f.received - f.pending.length)) return;
        stream.pause();
        this.files.of(workerId).once('drain', () => stream.resume());
      });
      const lost = () => {
        if (f.stream === stream) f.stream = undefined;
      };
      stream.on('error', lost);
      stream.on('close', lost);
    }
  }

  /**
   * Makes sure the final read covers an allocation even if no poll saw it running: a short worker can
   * start and finish between two polls.
   */
  include(allocId: string, workerId: number): void {
    for (const type of ['stdout', 'stderr'] as const) {
      const key = `${allocId}/${type}`;
      if (!this.followed.has(key)) this.followed.set(key, this.startAt(key, workerId));
    }
  }

  private finished: Promise<void> | undefined;

  /** Stops following and reads what the follows had not delivered yet; call once the allocations ended. Idempotent. */
  finish(): Promise<void> {
    this.finished ??= this.readRest();
    return this.finished;
  }

  private async readRest(): Promise<void> {
    for (const f of this.followed.values()) {
      const s = f.stream;
      f.stream = undefined;
      s?.destroy();
    }
    await Promise.all(
      [...this.followed.entries()].map(async ([key, f]) => {
        const [allocId, type] = key.split('/') as [string, LogType];
        const file = this.files.of(f.workerId);
        try {
          for await (const chunk of this.api.logStream(allocId, this.task, type, f.received, false) as AsyncIterable<Buffer>) {
            f.received += chunk.length;
            const lines = wholeLines(f, chunk);
            if (lines && !this.write(key, f.workerId, lines, f.received - f.pending.length)) await once(file, 'drain');
          }
        } catch {
          // The allocation is gone, or its log with it: nothing more to read.
        }
        // A last line without a newline gets one, so that it does not run into the other stream's output.
        if (f.pending.length) this.write(key, f.workerId, Buffer.concat([f.pending, Buffer.from('\n')]), f.received);
        f.pending = Buffer.alloc(0);
      }),
    );
    await this.files.close();
  }
}

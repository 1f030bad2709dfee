import { once } from 'node:events';
import { createWriteStream, existsSync, statSync, truncateSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { LineSplitter, MAX_LINE_CHARS } from '../../line-splitter.js';
import { WorkerLogFiles } from '../worker-log-files.js';

/** A tag of `mpirun --tag-output` (OpenMPI 4): `[jobid,rank]<stdout>:` before each piece of a rank's output. */
const TAG_ANYWHERE = /\[\d+,(\d+)\]<(stdout|stderr|stddiag)>:/g;

/**
 * Puts the ranks' lines back together from the lines of mpirun's output. mpirun tags each piece of output
 * it reads from a rank, not each line: a line the rank wrote in two pieces arrives as
 * `[1,2]<stdout>:seq 2 23 xx[1,2]<stdout>:xx`, maybe with another rank's piece between them. A tag within
 * a line therefore starts a piece of that rank's current line, which ends where mpirun's line ends.
 */
export class RankLines {
  /** `rank<stream>` → the start of a line of that rank not finished yet. */
  private readonly pending = new Map<string, { rank: number; text: string }>();

  /** The ranks' lines (with `rank`) and mpirun's own lines that one line of mpirun's output completes. */
  push(line: string): { rank?: number; text: string }[] {
    const tags = [...line.matchAll(TAG_ANYWHERE)];
    if (tags[0]?.index !== 0) {
      const own = { text: line.slice(0, tags[0]?.index ?? line.length) };
      if (tags.length === 0) return [own];
      return [own, ...this.push(line.slice(tags[0]!.index))];
    }
    const done: { rank: number; text: string }[] = [];
    tags.forEach((m, i) => {
      const key = `${m[1]}<${m[2]}>`;
      const piece = line.slice(m.index + m[0].length, tags[i + 1]?.index ?? line.length);
      const text = (this.pending.get(key)?.text ?? '') + piece;
      this.pending.delete(key);
      // Only the last piece ends with mpirun's line; a line grown too long is handed on as it is.
      if (i === tags.length - 1 || text.length > MAX_LINE_CHARS) done.push({ rank: Number(m[1]), text });
      else this.pending.set(key, { rank: Number(m[1]), text });
    });
    return done;
  }

  /** Lines whose end never came (mpirun ended in the middle of one). */
  end(): { rank: number; text: string }[] {
    const rest = [...this.pending.values()];
    this.pending.clear();
    return rest;
  }
}

/**
 * Splits mpirun's output by rank: a rank's lines, untagged, go to `logs/worker-<rank>.log` (the files the
 * client follows), everything else (mpirun's and OpenMPI's own messages) to `logs/mpirun.log`.
 */
export class TaggedOutputSplitter {
  private readonly workerLogs: WorkerLogFiles;
  private readonly mpirunLog: WriteStream;
  private readonly ranks = new RankLines();
  /** Files over their buffer limit since the last settle(). */
  private readonly full = new Set<WriteStream>();
  /** Per rank: the length of its log file once every write so far is in it, and the last write's completion. */
  private readonly lengths = new Map<number, number>();
  private readonly lastWrite = new Map<number, Promise<void>>();

  constructor(
    private readonly logsDir: string,
    /** Sees every line that is not a rank's (mpirun's own, and what runs around it). */
    private readonly onUntagged?: (line: string) => void,
    /**
     * A restarted job master: the ranks' log lengths its predecessor saw written with the output it had
     * read. Anything after them was written again from that output on: cut it, so no line is there twice.
     */
    keep: Record<string, number> = {},
  ) {
    this.mpirunLog = createWriteStream(path.join(logsDir, 'mpirun.log'), { flags: 'a' });
    this.workerLogs = new WorkerLogFiles(logsDir);
    for (const [rank, length] of Object.entries(keep)) {
      const file = this.fileOf(Number(rank));
      if (existsSync(file) && statSync(file).size > length) truncateSync(file, length);
    }
  }

  /** Writes the lines one line of mpirun's output completes where they belong (see settle()). */
  push(line: string): void {
    for (const file of this.line(line)) this.full.add(file);
  }

  /** Resolves once the files pushed to beyond their buffer limit drained: when to read more output. */
  settle(): Promise<void> | undefined {
    if (this.full.size === 0) return undefined;
    const files = [...this.full];
    this.full.clear();
    return Promise.all(files.map((f) => once(f, 'drain'))).then(() => undefined);
  }

  /** The ranks' log lengths with what was pushed so far, once it is all in the files (for `keep`). */
  async written(): Promise<Record<number, number>> {
    const lengths = Object.fromEntries(this.lengths);
    await Promise.all(this.lastWrite.values());
    return lengths;
  }

  private fileOf(rank: number): string {
    return path.join(this.logsDir, `worker-${rank}.log`);
  }

  /**
   * Follows one of mpirun's output streams until it ends. A log file that cannot take more pauses the
   * stream until it drained, so ranks printing faster than the disk writes do not fill memory.
   */
  follow(stream: NodeJS.ReadableStream): Promise<void> {
    const lines = new LineSplitter();
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer | string) => {
        const full = new Set<WriteStream>();
        for (const line of lines.push(chunk)) for (const file of this.line(line)) full.add(file);
        if (full.size === 0) return;
        stream.pause();
        void Promise.all([...full].map((f) => once(f, 'drain'))).finally(() => stream.resume());
      });
      stream.once('close', () => {
        const rest = lines.end();
        if (rest !== undefined) this.line(rest);
        resolve();
      });
    });
  }

  /** A line of the launcher's own, for the record. */
  note(line: string): void {
    this.mpirunLog.write(`--- twister2: ${line} ---\n`);
  }

  /** Writes the lines one line of mpirun's output completes where they belong; returns the files over their buffer limit. */
  private line(line: string): WriteStream[] {
    return this.ranks.push(line).flatMap((l) => this.write(l));
  }

  private write(l: { rank?: number; text: string }): WriteStream[] {
    const text = `${l.text}\n`;
    if (l.rank === undefined) {
      const room = this.mpirunLog.write(text);
      this.onUntagged?.(l.text);
      return room ? [] : [this.mpirunLog];
    }
    const rank = l.rank;
    const file = this.workerLogs.of(rank);
    const before = this.lengths.get(rank) ?? (existsSync(this.fileOf(rank)) ? statSync(this.fileOf(rank)).size : 0);
    this.lengths.set(rank, before + Buffer.byteLength(text));
    let room = true;
    this.lastWrite.set(rank, new Promise<void>((resolve) => (room = file.write(text, () => resolve()))));
    return room ? [] : [file];
  }

  async close(): Promise<void> {
    for (const l of this.ranks.end()) this.write(l);
    await new Promise<void>((resolve) => this.mpirunLog.end(resolve));
    await this.workerLogs.close();
  }
}

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
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

  constructor(
    logsDir: string,
    /** Sees every line that is not a rank's (mpirun's own, and what runs around it). */
    private readonly onUntagged?: (line: string) => void,
  ) {
    this.mpirunLog = createWriteStream(path.join(logsDir, 'mpirun.log'), { flags: 'a' });
    this.workerLogs = new WorkerLogFiles(logsDir);
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
    const file = l.rank === undefined ? this.mpirunLog : this.workerLogs.of(l.rank);
    const room = file.write(`${l.text}\n`);
    if (l.rank === undefined) this.onUntagged?.(l.text);
    return room ? [] : [file];
  }

  async close(): Promise<void> {
    for (const l of this.ranks.end()) this.write(l);
    await new Promise<void>((resolve) => this.mpirunLog.end(resolve));
    await this.workerLogs.close();
  }
}

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { LineSplitter } from '../../line-splitter.js';
import { WorkerLogFiles } from '../worker-log-files.js';

/** A line of `mpirun --tag-output`: `[jobid,rank]<stdout>:text` (OpenMPI 4). */
const TAG = /^\[\d+,(\d+)\]<(?:stdout|stderr|stddiag)>:(.*)$/;

export function parseTaggedLine(line: string): { rank: number; text: string } | undefined {
  const m = TAG.exec(line);
  return m ? { rank: Number(m[1]), text: m[2]! } : undefined;
}

/**
 * Splits mpirun's output by rank: a rank's lines, untagged, go to `logs/worker-<rank>.log` (the files the
 * client follows), everything else (mpirun's and OpenMPI's own messages) to `logs/mpirun.log`.
 */
export class TaggedOutputSplitter {
  private readonly workerLogs: WorkerLogFiles;
  private readonly mpirunLog: WriteStream;

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
        for (const line of lines.push(chunk)) {
          const file = this.line(line);
          if (file) full.add(file);
        }
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

  /** Writes one line where it belongs; returns that file if it is over its buffer limit (wait for 'drain'). */
  line(line: string): WriteStream | undefined {
    const tagged = parseTaggedLine(line);
    const file = tagged ? this.workerLogs.of(tagged.rank) : this.mpirunLog;
    const room = file.write(`${tagged ? tagged.text : line}\n`);
    if (!tagged) this.onUntagged?.(line);
    return room ? undefined : file;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.mpirunLog.end(resolve));
    await this.workerLogs.close();
  }
}

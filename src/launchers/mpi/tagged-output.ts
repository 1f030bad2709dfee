import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
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
  private readonly partial = new Map<NodeJS.ReadableStream, string>();

  constructor(
    logsDir: string,
    /** Sees every line that is not a rank's (mpirun's own, and what runs around it). */
    private readonly onUntagged?: (line: string) => void,
  ) {
    this.mpirunLog = createWriteStream(path.join(logsDir, 'mpirun.log'), { flags: 'a' });
    this.workerLogs = new WorkerLogFiles(logsDir);
  }

  /** Follows one of mpirun's output streams until it ends. */
  follow(stream: NodeJS.ReadableStream): Promise<void> {
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer | string) => {
        const text = (this.partial.get(stream) ?? '') + chunk.toString();
        const lines = text.split('\n');
        this.partial.set(stream, lines.pop()!);
        for (const line of lines) this.line(line);
      });
      stream.once('close', () => {
        const rest = this.partial.get(stream);
        if (rest) this.line(rest);
        this.partial.delete(stream);
        resolve();
      });
    });
  }

  /** A line of the launcher's own, for the record. */
  note(line: string): void {
    this.mpirunLog.write(`--- twister2: ${line} ---\n`);
  }

  line(line: string): void {
    const tagged = parseTaggedLine(line);
    if (tagged) this.workerLogs.of(tagged.rank).write(`${tagged.text}\n`);
    else {
      this.mpirunLog.write(`${line}\n`);
      this.onUntagged?.(line);
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.mpirunLog.end(resolve));
    await this.workerLogs.close();
  }
}

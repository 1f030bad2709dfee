import { open } from 'node:fs/promises';
import { LineSplitter } from '../line-splitter.js';

export interface FileTailOptions {
  pollMs?: number;
  /** Where to start reading: how far an earlier reader got (see onProgress). */
  from?: number;
  /** After lines were handed on: the offset just past the last whole line, to start from after a restart. */
  onProgress?: (offset: number) => void;
  /** Awaited after each chunk's lines were handed on, before the next is read: backpressure from where they went. */
  afterChunk?: () => Promise<void> | undefined;
}

/**
 * Follows a file another program appends to (a batch system's output file on a shared file system),
 * line by line, by polling: inotify does not see writes made on other NFS clients.
 */
export class FileTail {
  private offset: number;
  private lineEnd: number;
  private readonly lines = new LineSplitter();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly onLine: (line: string) => void,
    private readonly options: FileTailOptions = {},
  ) {
    this.offset = this.lineEnd = options.from ?? 0;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.poll(), this.options.pollMs ?? 500);
  }

  /** Reads what is left, including a last line without a newline, and stops. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.poll();
    const rest = this.lines.end();
    if (rest !== undefined) this.onLine(rest);
  }

  /** Reads what was appended since the last read. */
  poll(): Promise<void> {
    this.reading = this.reading.then(() => this.readMore());
    return this.reading;
  }

  private async readMore(): Promise<void> {
    let fh;
    try {
      fh = await open(this.file, 'r');
    } catch {
      return; // not created yet
    }
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        const newline = chunk.lastIndexOf(0x0a);
        if (newline >= 0) this.lineEnd = this.offset + newline + 1;
        this.offset += bytesRead;
        for (const line of this.lines.push(chunk)) this.onLine(line);
        if (newline >= 0) this.options.onProgress?.(this.lineEnd);
        await this.options.afterChunk?.();
      }
    } finally {
      await fh.close();
    }
  }
}

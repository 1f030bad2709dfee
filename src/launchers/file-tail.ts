import { open } from 'node:fs/promises';
import { LineSplitter } from '../line-splitter.js';

/**
 * Follows a file another program appends to (a batch system's output file on a shared file system),
 * line by line, by polling: inotify does not see writes made on other NFS clients.
 */
export class FileTail {
  private offset = 0;
  private readonly lines = new LineSplitter();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly onLine: (line: string) => void,
    private readonly pollMs = 500,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.poll(), this.pollMs);
  }

  /** Reads what is left, including a last line without a newline, and stops. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.poll();
    const rest = this.lines.end();
    if (rest !== undefined) this.onLine(rest);
  }

  private poll(): Promise<void> {
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
        this.offset += bytesRead;
        for (const line of this.lines.push(buf.subarray(0, bytesRead))) this.onLine(line);
      }
    } finally {
      await fh.close();
    }
  }
}

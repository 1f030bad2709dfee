import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/**
 * Follows a file another program appends to (a batch system's output file on a shared file system),
 * line by line, by polling: inotify does not see writes made on other NFS clients.
 */
export class FileTail {
  private offset = 0;
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
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
    if (this.partial) this.onLine(this.partial);
    this.partial = '';
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
        const lines = (this.partial + this.decoder.write(buf.subarray(0, bytesRead))).split('\n');
        this.partial = lines.pop()!;
        for (const line of lines) this.onLine(line);
      }
    } finally {
      await fh.close();
    }
  }
}

import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';

/**
 * The job's `logs/worker-<id>.log` files, which the client follows and tags by worker ID; launchers that
 * collect the workers' output themselves (pod logs, allocation logs, mpirun's tagged output) write them
 * here. Opened on first use, appended to (a restarted worker continues its file).
 */
export class WorkerLogFiles {
  private readonly files = new Map<number, WriteStream>();

  constructor(private readonly logsDir: string) {}

  of(workerId: number): WriteStream {
    let f = this.files.get(workerId);
    if (!f) {
      f = createWriteStream(path.join(this.logsDir, `worker-${workerId}.log`), { flags: 'a' });
      this.files.set(workerId, f);
    }
    return f;
  }

  /** Ends every file once what was written to it is flushed. */
  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => new Promise((r) => f.end(r))));
  }
}

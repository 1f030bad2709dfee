import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { NomadApi } from './nomad-api.js';

type LogType = 'stdout' | 'stderr';

interface Followed {
  workerId: number;
  /** Bytes already written to the worker's log: where a new follow or the final read starts. */
  received: number;
  stream?: Readable | undefined;
}

/**
 * Each allocation's stdout and stderr, appended to `logs/worker-<index>.log` while the job runs (Nomad's
 * logs API, followed). A follow that failed (the task had not started yet) is started again from where it
 * stopped. Nomad never ends a followed stream by itself, so at the end every log is read once more,
 * without following, from the last byte received: nothing a worker printed is lost.
 */
export class AllocationLogs {
  private readonly followed = new Map<string, Followed>();
  private readonly files = new Map<number, WriteStream>();

  constructor(
    private readonly api: NomadApi,
    private readonly task: string,
    private readonly logsDir: string,
  ) {}

  /** Follows an allocation's logs, or resumes a follow that failed. Cheap to call on every poll. */
  follow(allocId: string, workerId: number): void {
    for (const type of ['stdout', 'stderr'] as const) {
      const key = `${allocId}/${type}`;
      const f = this.followed.get(key) ?? { workerId, received: 0 };
      this.followed.set(key, f);
      if (f.stream) continue;
      const stream = this.api.logStream(allocId, this.task, type, f.received);
      f.stream = stream;
      stream.on('data', (chunk: Buffer) => {
        f.received += chunk.length;
        this.file(workerId).write(chunk);
      });
      const lost = () => {
        if (f.stream === stream) f.stream = undefined;
      };
      stream.on('error', lost);
      stream.on('close', lost);
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
        const rest = await this.api.readLog(allocId, this.task, type, f.received).catch(() => undefined);
        if (rest && rest.length > 0) {
          f.received += rest.length;
          this.file(f.workerId).write(rest);
        }
      }),
    );
    await Promise.all([...this.files.values()].map((file) => new Promise((r) => file.end(r))));
  }

  private file(workerId: number): WriteStream {
    let f = this.files.get(workerId);
    if (!f) {
      f = createWriteStream(path.join(this.logsDir, `worker-${workerId}.log`), { flags: 'a' });
      this.files.set(workerId, f);
    }
    return f;
  }
}

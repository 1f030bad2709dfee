import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { DRIVER_LOG } from '../../job/job-store.js';
import { LineSplitter } from '../../line-splitter.js';

/**
 * A job master in a pod prints its driver's lines with this prefix, among its own: its job directory is the
 * pod's, so the client takes them from the job master container's log.
 */
export const DRIVER_LINE_PREFIX = '[twister2 driver] ';

/** Takes the driver's lines out of job master container logs into the client's `logs/driver.log`. */
export class DriverLinesFromJobMaster {
  private readonly out: WriteStream;

  constructor(logsDir: string) {
    this.out = createWriteStream(path.join(logsDir, DRIVER_LOG), { flags: 'a' });
  }

  /** Where one run's log goes (a stream of its own per run: a restarted container starts a new line). */
  stream(): Writable {
    const lines = new LineSplitter();
    const write = (batch: string[], done: () => void) => {
      const ours = batch.filter((l) => l.startsWith(DRIVER_LINE_PREFIX)).map((l) => l.slice(DRIVER_LINE_PREFIX.length));
      if (ours.length === 0 || this.out.write(ours.join('\n') + '\n')) done();
      else this.out.once('drain', done);
    };
    return new Writable({
      write: (chunk: Buffer, _enc, done) => write(lines.push(chunk), () => done()),
      final: (done) => {
        const rest = lines.end();
        write(rest === undefined ? [] : [rest], () => done());
      },
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}

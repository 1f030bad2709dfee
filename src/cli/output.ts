import type { JobStatus } from '../protocol/messages.js';
import { ExitCode } from '../errors.js';
import type { LogLine } from '../client/log-follower.js';

export { exitWhenFlushed } from '../exit-flushed.js';

export function exitCodeOf(status: JobStatus): number {
  switch (status.state) {
    case 'SUCCEEDED':
      return ExitCode.succeeded;
    case 'FAILED':
      return ExitCode.jobFailed;
    case 'KILLED':
      return ExitCode.jobKilled;
    default:
      return ExitCode.infrastructure;
  }
}

export function formatLogLine(l: LogLine): string {
  return l.workerId === 'driver' ? `[driver] ${l.line}` : `[worker ${l.workerId}] ${l.line}`;
}

/**
 * Prints worker output honouring backpressure: a write the stream cannot take at once waits for
 * 'drain', so a slow reader slows the reading of the logs instead of piling them up in memory.
 */
export async function printLines(lines: AsyncIterable<LogLine>, stream: NodeJS.WriteStream, before?: () => void): Promise<void> {
  for await (const line of lines) {
    if (stream.destroyed) return; // the reader went away
    before?.();
    if (!stream.write(formatLogLine(line) + '\n')) await drained(stream);
  }
}

function drained(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/**
 * A reader that went away (`twister2 logs job | head`) ends our output, not the CLI with an internal
 * error: EPIPE destroys the stream, and later writes are dropped as nobody reads them.
 */
export function toleratePipeErrors(): void {
  for (const s of [process.stdout, process.stderr]) s.on('error', () => s.destroy());
}

export function formatStatus(s: JobStatus): string {
  const lines = [
    `job       ${s.jobId}`,
    `state     ${s.state}${s.message ? ` (${s.message})` : ''}`,
    `cluster   ${s.cluster}`,
    `workers   ${s.registered}/${s.numWorkers} registered`,
    `started   ${s.startedAt}${s.endedAt ? `\nended     ${s.endedAt}` : ''}`,
    ...(s.jobMaster ? [`jobmaster ${jobMasterInWords(s.jobMaster)}`] : []),
    '',
    'ID  STATE      RESTARTS  HOST                 PID      MESSAGE',
  ];
  for (const w of s.workers) {
    lines.push(
      `${String(w.workerId).padEnd(3)} ${w.state.padEnd(10)} ${String(w.restarts).padEnd(9)} ${(w.info?.host ?? '-').padEnd(20)} ${String(w.info?.pid ?? '-').padEnd(8)} ${w.message ?? ''}`.trimEnd(),
    );
  }
  return lines.join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Where the job master runs and how often it was restarted, as `status` says it. */
function jobMasterInWords(jm: NonNullable<JobStatus['jobMaster']>): string {
  const restarts = jm.restarts === 0 ? 'never restarted' : `restarted ${jm.restarts} time${jm.restarts === 1 ? '' : 's'} after a crash`;
  return `pid ${jm.pid} on ${jm.host}, epoch ${jm.epoch}, ${restarts}`;
}

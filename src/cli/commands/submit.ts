import { submit } from '../../client/submit.js';
import type { JobHandle } from '../../client/job-handle.js';
import { ExitCode } from '../../errors.js';
import { TERMINAL_JOB_STATES, type JobEvent } from '../../protocol/messages.js';
import { workersFlag } from '../flags.js';
import type { SubmitArgs } from '../submit-argv.js';
import { exitCodeOf, exitWhenFlushed, formatBytes, printLines } from '../output.js';

/** Submits, shows registration progress and worker output, and exits with the job's outcome. */
export async function submitCommand(args: SubmitArgs): Promise<number> {
  const started = Date.now();
  const workers = args.workers === undefined ? undefined : workersFlag('--workers', args.workers, 'twister2 submit --workers 4 <job>');
  // Ctrl-C while submitting (uploading, or waiting for a queued job master) cancels the job.
  const submitting = new AbortController();
  const cancel = () => submitting.abort();
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  let handle: JobHandle;
  try {
    handle = await submit({
      job: args.job,
      cluster: args.cluster,
      workers,
      detach: args.detach,
      ...(args.dashboard !== undefined ? { dashboard: args.dashboard } : {}),
      overridesSource: 'the command line',
      signal: submitting.signal,
      onUploadProgress: uploadProgress(),
      onQueued: (message) => console.error(`twister2: the job master is queued: ${message}`),
      onWarning: (message) => console.error(`twister2: warning: ${message}`),
    });
  } finally {
    process.off('SIGINT', cancel);
    process.off('SIGTERM', cancel);
  }
  const status = await handle.status();
  const say = (s: string) => console.error(`twister2: ${s}`);
  say(`job ${handle.jobId} submitted to ${status.cluster} (${status.numWorkers} workers, package ${formatBytes(handle.record.package.size)}, sha256 ${handle.record.package.sha256.slice(0, 12)})`);
  if (args.detach && TERMINAL_JOB_STATES.includes(status.state)) {
    // A short job can end before a slow client got back to it: its outcome is what there is to say.
    say(`job ${handle.jobId} ended ${status.state}${status.message ? `: ${status.message}` : ''}`);
    if (args.json) console.log(JSON.stringify(status));
    return exitCodeOf(status);
  }
  if (args.detach) {
    const jm = handle.record.jobMaster;
    say(`job master running ${jm?.kubernetes ? `in a pod of Kubernetes namespace "${jm.kubernetes.namespace}"` : `in process ${jm?.pid}`}; follow with \`twister2 logs -f ${handle.jobId}\`, stop with \`twister2 kill ${handle.jobId}\``);
    if (args.json) console.log(JSON.stringify(status));
    return ExitCode.succeeded;
  }
  const interrupted = watchInterrupts(handle, say);
  const progress = new Progress(status.numWorkers, handle.record.placement !== 'none');
  handle.on('event', (e) => progress.update(e));
  const printing = printLines(handle.logs({ follow: true }), args.json ? process.stderr : process.stdout, () => progress.clear());
  const final = await handle.wait();
  await printing;
  progress.clear();
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  say(`job ${handle.jobId} ${final.state}${final.message ? `: ${final.message}` : ''} (${seconds}s)`);
  if (final.driver?.state === 'RETURNED' && final.driver.result !== undefined) say(`the driver returned ${JSON.stringify(final.driver.result)}`);
  if (args.json) console.log(JSON.stringify(final));
  return interrupted.value ? ExitCode.interrupted : exitCodeOf(final);
}

/** Upload progress for packages worth watching (over 4 MiB), at most 4 lines a second off a terminal. */
function uploadProgress(): (sent: number, total: number) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return (sent, total) => {
    if (total < 4 * 2 ** 20) return;
    const now = Date.now();
    if (sent < total && now - last < (tty ? 100 : 250)) return;
    last = now;
    const text = `twister2: uploading package ${formatBytes(sent)} of ${formatBytes(total)} (${Math.floor((100 * sent) / total)}%)`;
    process.stderr.write(tty ? `\r${text}\x1b[K${sent >= total ? '\n' : ''}` : `${text}\n`);
  };
}

/**
 * First Ctrl-C kills the job cleanly; a second one exits at once, once the output already written is
 * flushed (the launcher's exit hook still kills workers).
 */
function watchInterrupts(handle: JobHandle, say: (s: string) => void): { value: boolean } {
  const state = { value: false };
  const onSignal = (sig: NodeJS.Signals) => {
    if (state.value) return exitWhenFlushed(ExitCode.interrupted);
    state.value = true;
    say(`${sig}: killing job ${handle.jobId} (press Ctrl-C again to exit at once)`);
    handle.kill(`interrupted (${sig})`).catch(() => undefined);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state;
}

/**
 * "workers registered n/N" while the job starts: rewritten in place on a terminal, one line per change otherwise.
 * Without a job master (jobMaster.placement none) no worker registers: the job's own RUNNING message is shown.
 */
class Progress {
  private readonly registered = new Set<number>();
  private shown = '';
  private readonly tty = process.stderr.isTTY === true;

  constructor(
    private total: number,
    private readonly registering: boolean,
  ) {}

  update(e: JobEvent): void {
    if (e.type === 'scaled') this.total = e.to;
    if (e.type === 'worker-state') {
      if (e.state === 'RUNNING' || e.state === 'COMPLETED') this.registered.add(e.workerId);
      else this.registered.delete(e.workerId);
    }
    if (e.type === 'job-state' && e.state === 'QUEUED') {
      this.clear();
      process.stderr.write(`twister2: job QUEUED by the cluster: ${e.message ?? 'waiting'}\n`);
      return;
    }
    if (e.type === 'job-state' && e.state !== 'STARTING') {
      this.clear();
      if (e.state === 'RUNNING') {
        process.stderr.write(this.registering ? `twister2: all ${this.total} workers registered; job RUNNING\n` : `twister2: job RUNNING${e.message ? `: ${e.message}` : ''}\n`);
      }
      return;
    }
    if (e.type !== 'worker-state' || e.state !== 'RUNNING') return;
    const text = `twister2: workers registered ${this.registered.size}/${this.total}`;
    if (text === this.shown) return;
    this.shown = text;
    process.stderr.write(this.tty ? `\r${text}\x1b[K` : `${text}\n`);
  }

  clear(): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[K');
    this.shown = '';
  }
}

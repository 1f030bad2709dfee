import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ExitCode, JobKilledError, JobMasterUnreachableError, OptionsError, UsageError } from '../errors.js';
import { hostJobMaster } from '../jobmaster/host.js';
import type { QueuedJobMaster } from '../launchers/launcher.js';
import { jobMasterPlacement } from '../launchers/registry.js';
import { CLUSTER_KINDS, WorkersSchema, type ClusterKind, type JobSpecInput } from '../spec/schema.js';
import { formatPath } from '../spec/validate.js';
import { mergeSpec } from '../spec/load.js';
import { isAlive, JobHandle } from './job-handle.js';
import { files, readRecord, writeJson, type JobRecord } from '../job/job-store.js';
import { connectJobMaster } from './jobmaster-connection.js';
import { prepareJob, type PreparedJob } from './prepare.js';

export interface SubmitOptions {
  /** The job: a directory, a .zip or a .tar.gz holding the program and (usually) a twister2.yaml. */
  job: string;
  /** Overrides on top of the job's spec file (or the whole spec, if the job has none). */
  spec?: Partial<JobSpecInput>;
  cluster?: ClusterKind;
  workers?: number;
  /** Run the job master in its own process, so the job outlives this one (the `cluster` placement). */
  detach?: boolean;
  /** A dashboard (`twister2 dashboard`) the job master reports to: spec `dashboard.url`. */
  dashboard?: string;
  /** Aborting kills the job. */
  signal?: AbortSignal;
  /** Upload progress of the job package (client placement only). */
  onUploadProgress?: (sent: number, total: number) => void;
  /** While a cluster's queue holds a `cluster`-placement job master (Slurm), what the queue says, on each change. */
  onQueued?: (message: string) => void;
  /** What the job goes on without (a dashboard that cannot be asked for the job's token); default: process.emitWarning. */
  onWarning?: (message: string) => void;
  /** How errors name where `spec`, `cluster`, `workers` and `detach` came from (default: "the submit() call"; the CLI: "the command line"). */
  overridesSource?: string;
}

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { error: 'expected a function' });

/** The options are a trust boundary for code calling the library: checked before anything is read or created. */
const SubmitOptionsSchema = z.strictObject(
  {
    job: z.string({ error: 'is required: the job directory, .zip or .tar.gz to submit' }).min(1, 'expected a path to the job directory, .zip or .tar.gz'),
    spec: z.record(z.string(), z.unknown(), { error: 'expected an object of spec fields, e.g. { workers: 4 }' }).optional(),
    cluster: z.enum(CLUSTER_KINDS, { error: `expected one of ${CLUSTER_KINDS.join(', ')}` }).optional(),
    workers: WorkersSchema.optional(),
    detach: z.boolean({ error: 'expected true or false' }).optional(),
    dashboard: z.string({ error: 'expected the dashboard\'s address, e.g. http://127.0.0.1:8642' }).optional(),
    signal: z.instanceof(AbortSignal, { error: 'expected an AbortSignal' }).optional(),
    onUploadProgress: fn.optional(),
    onQueued: fn.optional(),
    onWarning: fn.optional(),
    overridesSource: z.string().optional(),
    // Every option needs its check here: a new field of SubmitOptions without one does not compile.
  } satisfies Record<keyof SubmitOptions, z.ZodType>,
  { error: 'expected an options object such as { job: "./my-job" }' },
);

function checkOptions(opts: unknown): asserts opts is SubmitOptions {
  const result = SubmitOptionsSchema.safeParse(opts);
  if (result.success) return;
  throw new OptionsError(
    result.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({ path: k, message: `unknown option; the options are ${Object.keys(SubmitOptionsSchema.shape).join(', ')}` }))
        : [{ path: formatPath(i.path), message: i.message }],
    ),
    'submit()',
  );
}

const CLI = fileURLToPath(new URL('../../bin/twister2.js', import.meta.url));

/** Submits a job and returns its handle as soon as the workers were handed to the cluster. */
export async function submit(opts: SubmitOptions): Promise<JobHandle> {
  checkOptions(opts);
  // An already-aborted call creates nothing; one aborted while the job is prepared is checked again below.
  if (opts.signal?.aborted) throw new JobKilledError('submit() was aborted before the job was submitted; nothing was created');
  const flags: Partial<JobSpecInput> = {
    ...(opts.cluster ? { cluster: opts.cluster } : {}),
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.detach ? { jobMaster: { placement: 'cluster' } } : {}),
    ...(opts.dashboard !== undefined ? { dashboard: { url: opts.dashboard } } : {}),
  };
  const overrides = mergeSpec(opts.spec ?? {}, flags) as Partial<JobSpecInput>;
  const job = await prepareJob(opts.job, overrides, opts.overridesSource, opts.onWarning);
  let handle: JobHandle;
  try {
    if (opts.signal?.aborted) throw new JobKilledError('submit() was aborted before the job was submitted; nothing was created');
    // `none` still keeps the job's state, logs and kill in this process; only the workers do without it.
    handle = job.spec.jobMaster.placement === 'cluster' ? await startDetached(job, opts) : await startInProcess(job, opts.onUploadProgress);
  } catch (err) {
    // No job master ever ran, so nothing else knows the job: its directory would only show as LOST.
    if (!(err instanceof StartedError)) await rm(job.jobDir, { recursive: true, force: true });
    throw err instanceof StartedError ? err.cause : err;
  }
  if (opts.signal) {
    const onAbort = () => void handle.kill('aborted by the caller').catch(() => undefined);
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
    void handle.wait().finally(() => opts.signal?.removeEventListener('abort', onAbort)).catch(() => undefined);
  }
  return handle;
}

async function startInProcess(job: PreparedJob, onUploadProgress?: (sent: number, total: number) => void): Promise<JobHandle> {
  const running = await hostJobMaster({ ...job, ...(onUploadProgress ? { onUploadProgress } : {}) });
  const record = { ...(await readRecord(job.jobDir)), jobMaster: { url: running.url, pid: process.pid } };
  await writeJson(path.join(job.jobDir, files.record), record);
  return new JobHandle(job.jobId, job.jobDir, record, job.token, running);
}

/**
 * Starts `twister2 jobmaster` as a detached process and waits until it recorded its address. The
 * cluster decides where: here, or on one of its hosts (MPI: the first host, over ssh, which then lives
 * exactly as long as the remote job master and carries its output to the local job master log).
 */
async function startDetached(job: PreparedJob, opts: SubmitOptions): Promise<JobHandle> {
  const placement = jobMasterPlacement(job.spec.cluster);
  if (placement.queueJobMaster) {
    const queued = await placement.queueJobMaster(job.spec, job.jobDir, process.execPath, CLI, job.secrets);
    // The cluster has the job now: its directory holds what it logged, so it stays whatever happens next.
    return waitForQueued(job, queued, opts).catch((err: Error) => {
      throw new StartedError(err);
    });
  }
  const command = await placement.jobMasterCommand(job.spec, job.jobDir, process.execPath, CLI);
  const logFile = path.join(job.jobDir, files.jobMasterLog);
  const log = openSync(logFile, 'a');
  const child = spawn(command.program, command.args, { detached: true, stdio: ['pipe', log, log] });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.once('exit', (code) => (exitCode = code));
  // Credentials go through a pipe, never through a file or the command line.
  child.stdin?.end(JSON.stringify(job.secrets));
  child.unref();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const record = await readRecord(job.jobDir);
    if (record.jobMaster) return handleOf(job, record);
    if (child.pid === undefined || !isAlive(child.pid)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const where = command.host ? ` on ${command.host}` : '';
  if (child.pid !== undefined && isAlive(child.pid)) {
    // Still running, just slow (a remote host): its directory stays, since it may yet start the job.
    throw new StartedError(new JobMasterUnreachableError(`the job master process did not record its address within 30s${where}; see ${logFile}`));
  }
  // It exited: what it said last is why (a user mistake, such as a port in use, exits 2).
  if (exitCode === undefined) {
    // Gone by /proc before its 'exit' event arrived: wait for the event, briefly.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  const said = lastErrorLine(await readFile(logFile, 'utf8').catch(() => ''));
  if (exitCode === ExitCode.userError && said) throw new UsageError(said);
  throw new JobMasterUnreachableError(`the job master process${where} exited before it started the job${said ? `: ${said}` : ''}`);
}

/** The `twister2: ...` paragraph a failed CLI process printed last, without the prefix. */
function lastErrorLine(log: string): string | undefined {
  const at = log.lastIndexOf('twister2: ');
  if (at < 0) return undefined;
  // An internal error's stack stays in the log.
  const lines = log.slice(at + 'twister2: '.length).split('\n').filter((l) => !/^\s+at /.test(l));
  return lines.join('\n').trim() || undefined;
}

/** A failure after the job master started: the job exists and its directory is kept. */
class StartedError extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}

/**
 * A job master that a cluster's queue starts (Slurm): no deadline while the queue holds it, since a busy
 * cluster may queue a job for hours; the caller sees the queue's reason and may abort, which cancels it.
 */
async function waitForQueued(job: PreparedJob, queued: QueuedJobMaster, opts: SubmitOptions): Promise<JobHandle> {
  let said = '';
  for (let round = 0; ; round++) {
    const record = await readRecord(job.jobDir);
    if (record.jobMaster) return handleOf(job, record);
    const address = await queued.address?.();
    if (address) {
      const recorded = { ...record, jobMaster: address };
      await writeJson(path.join(job.jobDir, files.record), recorded);
      return handleOf(job, recorded);
    }
    if (opts.signal?.aborted) {
      await queued.cancel();
      throw new JobKilledError(`${queued.name} was cancelled while it waited in the queue`);
    }
    if (round % 4 === 0) {
      const gone = await queued.whyGone();
      if (gone) throw new JobMasterUnreachableError(gone);
      const waiting = await queued.waiting();
      if (waiting && waiting !== said) opts.onQueued?.((said = waiting));
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function handleOf(job: PreparedJob, record: JobRecord): Promise<JobHandle> {
  return new JobHandle(job.jobId, job.jobDir, record, job.token, undefined, await connectJobMaster(record, job.token));
}

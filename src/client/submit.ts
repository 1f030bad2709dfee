import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobKilledError, JobMasterUnreachableError } from '../errors.js';
import { hostJobMaster } from '../jobmaster/host.js';
import type { QueuedJobMaster } from '../launchers/launcher.js';
import { jobMasterPlacement } from '../launchers/registry.js';
import type { ClusterKind, JobSpecInput } from '../spec/schema.js';
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
  /** Aborting kills the job. */
  signal?: AbortSignal;
  /** Upload progress of the job package (client placement only). */
  onUploadProgress?: (sent: number, total: number) => void;
  /** While a cluster's queue holds a `cluster`-placement job master (Slurm), what the queue says, on each change. */
  onQueued?: (message: string) => void;
}

const CLI = fileURLToPath(new URL('../../bin/twister2.js', import.meta.url));

/** Submits a job and returns its handle as soon as the workers were handed to the cluster. */
export async function submit(opts: SubmitOptions): Promise<JobHandle> {
  const flags: Partial<JobSpecInput> = {
    ...(opts.cluster ? { cluster: opts.cluster } : {}),
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.detach ? { jobMaster: { placement: 'cluster' } } : {}),
  };
  const overrides = mergeSpec(opts.spec ?? {}, flags) as Partial<JobSpecInput>;
  const job = await prepareJob(opts.job, overrides);
  // `none` still keeps the job's state, logs and kill in this process; only the workers do without it.
  const handle = job.spec.jobMaster.placement === 'cluster' ? await startDetached(job, opts) : await startInProcess(job, opts.onUploadProgress);
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
  if (placement.queueJobMaster) return waitForQueued(job, await placement.queueJobMaster(job.spec, job.jobDir, process.execPath, CLI, job.secrets), opts);
  const command = await placement.jobMasterCommand(job.spec, job.jobDir, process.execPath, CLI);
  const log = openSync(path.join(job.jobDir, files.jobMasterLog), 'a');
  const child = spawn(command.program, command.args, { detached: true, stdio: ['pipe', log, log] });
  closeSync(log);
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
  throw new JobMasterUnreachableError(`the job master process did not start${command.host ? ` on ${command.host}` : ''}; see ${path.join(job.jobDir, files.jobMasterLog)}`);
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

import os from 'node:os';
import path from 'node:path';
import { files, writeJson } from '../job/job-store.js';
import type { JobSecrets } from '../job/secrets.js';
import { createLauncher } from '../launchers/registry.js';
import type { Launcher, WorkerExit } from '../launchers/launcher.js';
import { TERMINAL_JOB_STATES, type JobEvent, type JobStatus } from '../protocol/messages.js';
import type { JobSpec } from '../spec/schema.js';
import { createUploader } from '../uploader/registry.js';
import type { PackageRef, Uploader } from '../uploader/uploader.js';
import { FileJournalStore, Journal, type JournalRecord, type JournalStore } from './journal.js';
import { compactRecords, replay, type SavedState } from './saved-state.js';
import { UsageError } from '../errors.js';
import { JobMasterServer, type Caller } from './http-server.js';
import type { DriverRun } from './driver/driver-host.js';
import { JobMaster } from './job-master.js';
import { DashboardReporter } from './dashboard-reporter.js';
import { copyLogsToPersistent } from './persistent-logs.js';

export interface HostedJob {
  jobId: string;
  spec: JobSpec;
  secrets: JobSecrets;
  jobDir: string;
  packageFile: string;
  packageSha256: string;
  packageSize: number;
  token: string;
  onUploadProgress?: (sent: number, total: number) => void;
  /** Each authenticated request to the job master's server (see JobMasterServer). */
  onRequest?: (r: { proxied: boolean; caller: Caller }) => void;
  /** Where this job master sees a storage.persistent volume the cluster mounts (nfs, pvc: the job master pod's mount), for `logs: true`. */
  persistentMount?: string;
  /** Each line the driver prints, besides its log file: for a job master whose job directory the client cannot read (in a pod). */
  onDriverLine?: (line: string) => void;
  /**
   * A job master process that journals its state in the job directory and, when it finds a journal there,
   * carries on from it (it was restarted after a crash): same address, same workers, no new upload or launch.
   */
  durable?: {
    /** The address the job master had before, to listen on again. */
    url?: string;
    /** Another job master took over (a newer epoch): this one must stop at once (the launcher abandoned its workers). */
    onFenced(err: Error): void;
    /** Where it runs, for `status` (default: this host's name): a pod's name, say. */
    where?: string;
    /** Where the journal is kept (default: a file in the job directory). */
    store?: JournalStore;
  };
}

export interface RunningJobMaster {
  url: string;
  jobMaster: JobMaster;
  launcher: Launcher;
  /** Resolves after the job ended, its resources were released and the final status was written. */
  ended: Promise<JobStatus>;
}

/**
 * Runs a job master with its server, the job's uploader and its launcher in this process: the client
 * does this for the `client` placement, `twister2 jobmaster` for the `cluster` placement. Whatever way
 * the job ends, the launcher releases the workers and the uploader deletes the package it stored.
 */
export async function hostJobMaster(
  job: HostedJob,
  launcher: Launcher = createLauncher(job.spec.cluster),
  uploaderOverride?: Uploader,
): Promise<RunningJobMaster> {
  const uploader = uploaderOverride ?? (await createUploader(job.spec, job.secrets));
  const fenced = (err: Error) => {
    launcher.abandon?.(); // the workers are the newer job master's now
    job.durable?.onFenced(err);
  };
  const durable = job.durable ? await openJournal(job.durable.store ?? new FileJournalStore(job.jobDir), fenced) : undefined;
  const saved = durable?.saved.job ? durable.saved : undefined;
  const record = durable ? (r: JournalRecord) => durable.journal.append(r) : undefined;
  const jobMaster = new JobMaster({
    jobId: job.jobId,
    spec: job.spec,
    launcher,
    ...(durable
      ? {
          record: record!,
          flushed: () => durable.journal.flushed(),
          saved,
          recoveryMs: job.spec.timeouts.jobMasterRecovery,
          runner: { pid: process.pid, host: job.durable!.where ?? os.hostname(), epoch: durable.journal.epoch, restarts: durable.journal.epoch - 1 },
        }
      : {}),
  });
  // A dashboard to report to (spec `dashboard.url`), if the client got the job a token from it.
  const reporter = job.spec.dashboard && job.secrets.dashboardToken ? new DashboardReporter(jobMaster, job.spec.dashboard.url, job.secrets.dashboardToken) : undefined;
  reporter?.start();
  const server = new JobMasterServer(jobMaster, job.token, job.onRequest);
  // A restarted job master listens where its workers knew it.
  const port = saved && job.durable?.url ? Number(new URL(job.durable.url).port) : job.spec.jobMaster.port;
  const url = await server.listen(job.spec.jobMaster.host, port).catch((err: NodeJS.ErrnoException) => {
    throw listenError(err, job.spec.jobMaster.host, port);
  });
  // The job's driver (spec `driver`), loaded only for a job that has one.
  let driver: Promise<DriverRun | undefined> = Promise.resolve(undefined);
  const runDriver = (jobMasterRestarts: number) => {
    if (!job.spec.driver) return;
    const echo = job.onDriverLine ? { echo: job.onDriverLine } : {};
    driver = import('./driver/driver-host.js')
      .then((m) => m.startDriver(jobMaster, { jobDir: job.jobDir, packageFile: job.packageFile, jobMasterRestarts, ...echo }))
      .catch((err: Error) => {
        jobMaster.driverFailed(`could not start it: ${err.message}`);
        return undefined;
      });
  };
  const ended = jobMaster.whenEnded().then(async (status) => {
    // Its last lines are in its log before the job's end is recorded (clients read the logs to the end then).
    await (await driver)?.stopped;
    await uploader.delete().catch((err: Error) => {
      status.message = `${status.message ?? ''}; could not delete the uploaded package: ${err.message}`;
    });
    // The workers are gone (the launcher released them): their logs are complete.
    // A Nomad host volume is on the client nodes: there each allocation's post-stop task copies its worker's log.
    const persistent = job.spec.storage?.persistent;
    const persistentDir = persistent?.dir ?? job.persistentMount;
    if (persistent?.logs && persistent.hostVolume === undefined) {
      const copied = persistentDir === undefined ? Promise.reject(new Error('the volume is not mounted in the job master')) : copyLogsToPersistent(job.jobDir, job.jobId, persistentDir);
      await copied.catch((err: Error) => {
        status.message = `${status.message ?? ''}; could not copy the workers' logs to storage.persistent (${persistentDir ?? 'not mounted here'}): ${err.message}`;
      });
    }
    await writeJson(path.join(job.jobDir, files.status), status);
    // Give clients following the event stream a moment to read the final state before closing; the
    // dashboard gets its last report meanwhile (at most a second more if it is slow).
    await Promise.all([new Promise((r) => setTimeout(r, 200)), reporter?.finish(status)]);
    await server.close();
    await durable?.journal.close().catch(() => undefined);
    await durable?.store.discard?.().catch((err: Error) => console.error(`could not delete the job master's journal: ${err.message}`));
    return status;
  });
  const listener = {
    workerExited: (exit: WorkerExit) => jobMaster.workerExited(exit),
    queued: (reason: string) => jobMaster.queued(reason),
    allocated: () => jobMaster.allocated(),
    clusterEnded: (message: string) => jobMaster.fail(message),
    ...(record ? { remember: (key: string, value: unknown) => record({ t: 'launcher', key, value }) } : {}),
  };
  if (saved) void resume(saved);
  else void start();
  return { url, jobMaster, launcher, ended };

  /** After a crash: the package is where it was, the workers run; the launcher takes them over. */
  async function resume(s: SavedState): Promise<void> {
    // Crashed before the launch was journaled (still STARTING, no package): start afresh. Launching again
    // is safe: the local launcher first ends what its predecessor started, a cluster job is the same job.
    if (s.packageRef === undefined && jobMaster.state === 'STARTING') return start();
    uploader.adopt?.(job.jobId);
    const ctx = { jobId: job.jobId, spec: job.spec, jobDir: job.jobDir, packageRef: s.packageRef as PackageRef, jobMasterUrl: url, token: job.token };
    try {
      if (!launcher.resume) throw new Error(`the ${job.spec.cluster} launcher cannot take over the workers of an earlier job master`);
      await launcher.resume(ctx, listener, jobMaster.status().workers, s.launcher);
    } catch (err) {
      jobMaster.fail(`the restarted job master could not take over the workers: ${(err as Error).message}`);
    }
    if (jobMaster.state === 'QUEUED' || jobMaster.state === 'STARTING' || jobMaster.state === 'RUNNING') jobMaster.start();
    // A driver that had not returned starts again: what it held in memory went with the crashed job master.
    if (jobMaster.driverToRun) runDriver(durable ? durable.journal.epoch - 1 : 0);
    jobMaster.finishEndedJob();
  }

  /** Upload, then launch; registration deadlines start only once workers can exist. */
  async function start(): Promise<void> {
    let packageRef;
    // A job killed while its package is still uploading stops the upload.
    const abort = new AbortController();
    const onEvent = (e: JobEvent) => e.type === 'job-state' && TERMINAL_JOB_STATES.includes(e.state) && abort.abort();
    jobMaster.on('event', onEvent);
    try {
      const pkg = { jobId: job.jobId, file: job.packageFile, sha256: job.packageSha256, size: job.packageSize };
      packageRef = await uploader.upload(pkg, { signal: abort.signal, ...(job.onUploadProgress ? { onProgress: job.onUploadProgress } : {}) });
    } catch (err) {
      return jobMaster.fail(`could not upload the job package (${job.spec.uploader.kind}): ${(err as Error).message}`);
    } finally {
      jobMaster.off('event', onEvent);
    }
    if (jobMaster.state !== 'STARTING') return; // killed while uploading
    record?.({ t: 'package', ref: packageRef });
    jobMaster.start();
    runDriver(0);
    try {
      await launcher.start({ jobId: job.jobId, spec: job.spec, jobDir: job.jobDir, packageRef, jobMasterUrl: url, token: job.token }, listener);
      jobMaster.launched();
    } catch (err) {
      jobMaster.fail(`the ${job.spec.cluster} launcher could not start the workers: ${(err as Error).message}`);
    }
  }
}

/** The job's journal, opened as its next epoch: what earlier job masters of the job saved (nothing but the epochs for the first). */
async function openJournal(store: JournalStore, onFenced: (err: Error) => void): Promise<{ journal: Journal; store: JournalStore; saved: SavedState }> {
  const { journal, records } = await Journal.openIn(store, { compact: (r) => compactRecords(replay(r)), onFenced });
  return { journal, store, saved: replay(records) };
}

/** Why the job master cannot listen where the spec says, as the user's mistake when it is one. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UsageError(`jobMaster.host "${host}" does not resolve to an address (${err.code}); set jobMaster.host to an address or host name of the machine the job master runs on`);
    case 'EADDRNOTAVAIL':
      return new UsageError(`jobMaster.host "${host}" is not an address of the machine the job master runs on; set jobMaster.host to one of its addresses, or 0.0.0.0 for all of them`);
    case 'EADDRINUSE':
      return new UsageError(`jobMaster.port ${port} is already in use on ${host}; choose another port, or 0 to pick a free one`);
    case 'EACCES':
      return new UsageError(`jobMaster.port ${port} on ${host} needs privileges this process does not have; choose a port above 1023, or 0 to pick a free one`);
    default:
      return err;
  }
}

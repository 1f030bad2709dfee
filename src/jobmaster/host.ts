import path from 'node:path';
import { files, writeJson } from '../job/job-store.js';
import type { JobSecrets } from '../job/secrets.js';
import { createLauncher } from '../launchers/registry.js';
import type { Launcher } from '../launchers/launcher.js';
import { TERMINAL_JOB_STATES, type JobEvent, type JobStatus } from '../protocol/messages.js';
import type { JobSpec } from '../spec/schema.js';
import { createUploader } from '../uploader/registry.js';
import type { Uploader } from '../uploader/uploader.js';
import { UsageError } from '../errors.js';
import { JobMasterServer, type Caller } from './http-server.js';
import { JobMaster } from './job-master.js';

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
  const jobMaster = new JobMaster({ jobId: job.jobId, spec: job.spec, launcher });
  const server = new JobMasterServer(jobMaster, job.token, job.onRequest);
  const url = await server.listen(job.spec.jobMaster.host, job.spec.jobMaster.port).catch((err: NodeJS.ErrnoException) => {
    throw listenError(err, job.spec.jobMaster.host, job.spec.jobMaster.port);
  });
  const ended = jobMaster.whenEnded().then(async (status) => {
    await uploader.delete().catch((err: Error) => {
      status.message = `${status.message ?? ''}; could not delete the uploaded package: ${err.message}`;
    });
    await writeJson(path.join(job.jobDir, files.status), status);
    // Give clients following the event stream a moment to read the final state before closing.
    await new Promise((r) => setTimeout(r, 200));
    await server.close();
    return status;
  });
  void start();
  return { url, jobMaster, launcher, ended };

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
    jobMaster.start();
    try {
      await launcher.start(
        { jobId: job.jobId, spec: job.spec, jobDir: job.jobDir, packageRef, jobMasterUrl: url, token: job.token },
        {
          workerExited: (exit) => jobMaster.workerExited(exit),
          queued: (reason) => jobMaster.queued(reason),
          allocated: () => jobMaster.allocated(),
          clusterEnded: (message) => jobMaster.fail(message),
        },
      );
      jobMaster.launched();
    } catch (err) {
      jobMaster.fail(`the ${job.spec.cluster} launcher could not start the workers: ${(err as Error).message}`);
    }
  }
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

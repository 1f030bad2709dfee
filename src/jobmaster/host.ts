import path from 'node:path';
import { createLauncher } from '../launchers/registry.js';
import type { Launcher } from '../launchers/launcher.js';
import type { JobStatus } from '../protocol/messages.js';
import type { JobSpec } from '../spec/schema.js';
import { files, writeJson } from '../client/job-store.js';
import { JobMasterServer } from './http-server.js';
import { JobMaster } from './job-master.js';

export interface HostedJob {
  jobId: string;
  spec: JobSpec;
  jobDir: string;
  packageFile: string;
  packageSha256: string;
  token: string;
}

export interface RunningJobMaster {
  url: string;
  jobMaster: JobMaster;
  launcher: Launcher;
  /** Resolves after the job ended, its resources were released and the final status was written. */
  ended: Promise<JobStatus>;
}

/**
 * Runs a job master with its server and its launcher in this process: the client does this for the
 * `client` placement, `twister2 jobmaster` for the `cluster` placement.
 */
export async function hostJobMaster(job: HostedJob, launcher: Launcher = createLauncher(job.spec.cluster)): Promise<RunningJobMaster> {
  const jobMaster = new JobMaster({ jobId: job.jobId, spec: job.spec, launcher });
  const server = new JobMasterServer(jobMaster, job.token);
  const url = await server.listen(job.spec.jobMaster.host, job.spec.jobMaster.port);
  const ended = jobMaster.whenEnded().then(async (status) => {
    await writeJson(path.join(job.jobDir, files.status), status);
    // Give clients following the event stream a moment to read the final state before closing.
    await new Promise((r) => setTimeout(r, 200));
    await server.close();
    return status;
  });
  jobMaster.start();
  try {
    await launcher.start(
      { jobId: job.jobId, spec: job.spec, jobDir: job.jobDir, packageFile: job.packageFile, packageSha256: job.packageSha256, jobMasterUrl: url, token: job.token },
      { workerExited: (exit) => jobMaster.workerExited(exit) },
    );
  } catch (err) {
    jobMaster.fail(`the ${job.spec.cluster} launcher could not start the workers: ${(err as Error).message}`);
  }
  return { url, jobMaster, launcher, ended };
}

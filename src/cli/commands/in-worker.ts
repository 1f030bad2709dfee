import { attachJob } from '../../client/job-handle.js';
import { ExitCode, UsageError } from '../../errors.js';
import { JobMasterClient } from '../../protocol/jobmaster-client.js';
import { parseDuration } from '../../spec/units.js';
import { ENV, readCommandWorkerEnvironment } from '../../job/worker-environment.js';

/** Inside a command worker the runtime puts the job master's address, the worker token and the session in the environment. */
function fromWorkerEnv(): { client: JobMasterClient; workerId: number; session: string } | undefined {
  const w = readCommandWorkerEnvironment(process.env);
  return w && { client: new JobMasterClient({ url: w.url, token: w.token }), workerId: w.workerId, session: w.session };
}

export async function barrierCommand(a: { name: string; timeout?: string | undefined }): Promise<number> {
  const w = fromWorkerEnv();
  if (!w) throw new UsageError(`\`twister2 barrier\` runs inside a twister2 command worker (${ENV.jobMasterUrl}, ${ENV.workerId} and ${ENV.workerSession} are not set)`);
  let timeoutMs: number | undefined;
  if (a.timeout !== undefined) {
    timeoutMs = parseDuration(a.timeout);
    if (!timeoutMs) throw new UsageError(`--timeout "${a.timeout}" is not a duration; use e.g. 30s, 500ms or 2m`);
  }
  await w.client.barrier(a.name, w.workerId, w.session, timeoutMs);
  return ExitCode.succeeded;
}

export async function workersCommand(a: { job?: string | undefined; json: boolean; wait: boolean }): Promise<number> {
  const w = a.job ? undefined : fromWorkerEnv();
  if (!a.job && !w) throw new UsageError('give a job ID, or run `twister2 workers` inside a twister2 worker');
  const client = w?.client ?? (await attachJob(a.job!)).client;
  if (!client) throw new UsageError(`job ${a.job} has no running job master`);
  const list = await client.workers({ waitForAll: a.wait });
  if (a.json) console.log(JSON.stringify(list));
  else for (const x of list.workers) console.log(`${x.workerId}\t${x.host}\t${x.ip}\t${x.pid ?? ''}`);
  return ExitCode.succeeded;
}

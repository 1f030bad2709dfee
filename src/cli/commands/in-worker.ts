import { attachJob } from '../../client/job-handle.js';
import { ExitCode, UsageError } from '../../errors.js';
import { JobMasterClient } from '../../protocol/jobmaster-client.js';
import { parseDuration } from '../../spec/units.js';

/** Inside a command worker the runtime puts the job master's address, the secret and the session in the environment. */
function fromWorkerEnv(): { client: JobMasterClient; workerId: number; session: string } | undefined {
  const { TWISTER2_JOB_MASTER_URL: url, TWISTER2_JOB_TOKEN: token, TWISTER2_WORKER_ID: id, TWISTER2_WORKER_SESSION: session } = process.env;
  if (!url || !token || id === undefined || !session) return undefined;
  return { client: new JobMasterClient({ url, token }), workerId: Number(id), session };
}

export async function barrierCommand(a: { name: string; timeout?: string | undefined }): Promise<number> {
  let timeoutMs: number | undefined;
  if (a.timeout !== undefined) {
    timeoutMs = parseDuration(a.timeout);
    if (!timeoutMs) throw new UsageError(`--timeout "${a.timeout}" is not a positive duration; use e.g. 30s, 500ms or 2m`);
    // The longest delay a Node timer (the job master's) can hold.
    if (timeoutMs > 2 ** 31 - 1) throw new UsageError(`--timeout "${a.timeout}" is too long: at most 24 days`);
  }
  const w = fromWorkerEnv();
  if (!w) throw new UsageError('`twister2 barrier` runs inside a twister2 command worker (TWISTER2_JOB_MASTER_URL, TWISTER2_WORKER_ID and TWISTER2_WORKER_SESSION are not set)');
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

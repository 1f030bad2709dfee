import { ExitCode, UsageError } from '../../errors.js';
import { JobMasterClient } from '../../protocol/jobmaster-client.js';
import { PORT_NAME } from '../../protocol/wire.js';
import { parseDuration } from '../../spec/units.js';
import { ENV, readCommandWorkerEnvironment } from '../../job/worker-environment.js';

/** Inside a command worker the runtime puts the job master's address, the worker token and the session in the environment. */
function fromWorkerEnv(): { client: JobMasterClient; workerId: number; session: string } | undefined {
  const w = readCommandWorkerEnvironment(process.env);
  if (!w) return undefined;
  const client = new JobMasterClient({ url: w.url, token: w.token });
  client.recoveryMs = w.recoveryMs;
  return { client, workerId: w.workerId, session: w.session };
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
  if (!w) throw new UsageError(`\`twister2 barrier\` runs inside a twister2 command worker (${ENV.jobMasterUrl}, ${ENV.workerId} and ${ENV.workerSession} are not set)`);
  await w.client.barrier(a.name, w.workerId, w.session, timeoutMs);
  return ExitCode.succeeded;
}

export async function workersCommand(a: { job?: string | undefined; json: boolean; wait: boolean }): Promise<number> {
  const w = a.job ? undefined : fromWorkerEnv();
  if (!a.job && !w) throw new UsageError('give a job ID, or run `twister2 workers` inside a twister2 worker');
  // The client's job handling (spec schema, launchers) is loaded only for a job named from outside a worker.
  const client = w?.client ?? (await (await import('../../client/job-handle.js')).attachJob(a.job!)).client;
  if (!client) throw new UsageError(`job ${a.job} has no running job master`);
  const list = await client.workers({ waitForAll: a.wait });
  if (a.json) console.log(JSON.stringify(list));
  else for (const x of list.workers) console.log(`${x.workerId}\t${x.host}\t${x.ip}\t${x.pid ?? ''}\t${Object.entries(x.ports).map(([n, p]) => `${n}=${p}`).join(',')}`);
  return ExitCode.succeeded;
}

/** `twister2 ports publish data=5000 ctrl=5001`: ports the program opened itself, added to this worker's entry in discovery. */
export async function publishPortsCommand(a: { ports: string[] }): Promise<number> {
  const w = fromWorkerEnv();
  if (!w) throw new UsageError(`\`twister2 ports publish\` runs inside a twister2 command worker (${ENV.jobMasterUrl}, ${ENV.workerId} and ${ENV.workerSession} are not set)`);
  const ports: Record<string, number> = {};
  for (const pair of a.ports) {
    const m = /^([^=]+)=(\d{1,5})$/.exec(pair);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !PORT_NAME.test(m[1]!) || port < 1 || port > 65535) {
      throw new UsageError(`"${pair}" is not a port to publish: give name=port, the name 1-15 of a-z 0-9 - starting with a letter, the port 1-65535 (e.g. data=5000)`);
    }
    ports[m[1]!] = port;
  }
  await w.client.publishPorts(w.workerId, w.session, ports);
  return ExitCode.succeeded;
}

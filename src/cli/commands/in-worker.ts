import { randomUUID } from 'node:crypto';
import { ExitCode, UsageError } from '../../errors.js';
import { JobMasterClient } from '../../protocol/jobmaster-client.js';
import { MAX_RECEIVE_WAIT_MS, messageBytes, PORT_NAME } from '../../protocol/wire.js';
import { formatDuration, parseDuration } from '../../spec/units.js';
import { ENV, readCommandWorkerEnvironment } from '../../job/worker-environment.js';

/** Inside a command worker the runtime puts the job master's address, the worker token and the session in the environment. */
function fromWorkerEnv(): { client: JobMasterClient; workerId: number; session: string } | undefined {
  const w = readCommandWorkerEnvironment(process.env);
  if (!w) return undefined;
  const client = new JobMasterClient({ url: w.url, token: w.token });
  client.recoveryMs = w.recoveryMs;
  return { client, workerId: w.workerId, session: w.session };
}

/** The command worker's environment, or a clear error naming the command that needs it. */
function inWorker(command: string): NonNullable<ReturnType<typeof fromWorkerEnv>> {
  const w = fromWorkerEnv();
  if (!w) throw new UsageError(`\`twister2 ${command}\` runs inside a twister2 command worker (${ENV.jobMasterUrl}, ${ENV.workerId} and ${ENV.workerSession} are not set)`);
  return w;
}

/** --timeout as milliseconds: a positive duration a Node timer can hold (at most 24 days). */
function timeoutFlag(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (!ms) throw new UsageError(`--timeout "${raw}" is not a positive duration; use e.g. 30s, 500ms or 2m`);
  if (ms > 2 ** 31 - 1) throw new UsageError(`--timeout "${raw}" is too long: at most 24 days`);
  return ms;
}

export async function barrierCommand(a: { name: string; timeout?: string | undefined }): Promise<number> {
  const timeoutMs = timeoutFlag(a.timeout);
  const w = inWorker('barrier');
  await w.client.barrier(a.name, w.workerId, w.session, timeoutMs);
  return ExitCode.succeeded;
}

/** `twister2 message send <json>` (or `-`: the JSON on stdin): one message to the job's driver. */
export async function messageSendCommand(a: { json: string }): Promise<number> {
  const text = a.json === '-' ? await readStdin() : a.json;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new UsageError(`the message is not JSON: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}; quote it for the shell, e.g. twister2 message send '{"answer": 42}'`);
  }
  messageBytes(data);
  const w = inWorker('message send');
  await w.client.sendMessage(w.workerId, w.session, randomUUID(), data);
  return ExitCode.succeeded;
}

/**
 * `twister2 message recv [--timeout 30s]`: prints the driver's next message to this worker as one JSON line
 * `{"from":"driver","data":...}` and exits 0; 1 when none came within the timeout; 3 when none will come
 * (the job ended, or this worker was scaled away). A message printed is acknowledged before the exit.
 */
export async function messageRecvCommand(a: { timeout?: string | undefined }): Promise<number> {
  const timeoutMs = timeoutFlag(a.timeout) ?? 30_000;
  const w = inWorker('message recv');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wait = Math.max(0, Math.min(MAX_RECEIVE_WAIT_MS, deadline - Date.now()));
    const { messages, ended } = await w.client.receiveMessages(w.workerId, w.session, { max: 1, timeoutMs: wait });
    const m = messages[0];
    if (m) {
      console.log(JSON.stringify({ from: m.from, data: m.data }));
      await w.client.receiveMessages(w.workerId, w.session, { ack: m.seq, max: 0 });
      return ExitCode.succeeded;
    }
    if (ended !== undefined) {
      console.error(`twister2: no more messages: ${ended}`);
      return ExitCode.jobKilled;
    }
    if (Date.now() >= deadline) {
      console.error(`twister2: no message within ${formatDuration(timeoutMs)}`);
      return ExitCode.jobFailed;
    }
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
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
  const w = inWorker('ports publish');
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

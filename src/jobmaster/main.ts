import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { files, readRecord, readToken, writeJson } from '../job/job-store.js';
import { JobSecretsSchema, type JobSecrets } from '../job/secrets.js';
import { capabilitiesOf, jobMasterPlacement } from '../launchers/registry.js';
import { parseSpec } from '../spec/validate.js';
import { hostJobMaster } from './host.js';
import { SUPERVISED_VAR, superviseJobMaster } from './supervisor.js';
import type { JobState } from '../protocol/messages.js';

/** A job master process's exit code: how its job ended. */
export const exitCodes: Record<JobState, number> = { SUCCEEDED: 0, FAILED: 1, KILLED: 3, QUEUED: 4, STARTING: 4, RUNNING: 4 };

/** `twister2 jobmaster --job-dir D`: the job master as its own process (the `cluster` placement). */
export async function runJobMasterProcess(jobDir: string): Promise<number> {
  const record = await readRecord(jobDir);
  const stored = parseSpec(JSON.parse(await readFile(path.join(jobDir, files.spec), 'utf8')), files.spec);
  const secrets = await readSecretsFromStdin();
  // A job master started by a batch system gets no stdin from the client: its dashboard token is in the job directory.
  secrets.dashboardToken ??= await readFile(path.join(jobDir, files.dashboardToken), 'utf8').then((t) => t.trim(), () => undefined);
  if (secrets.dashboardToken === undefined) delete secrets.dashboardToken;
  // Where the cluster's launcher can take over the workers of a crashed job master, it is restarted.
  const recoverable = capabilitiesOf(stored.cluster).jobMasterRecovery === true;
  const supervisor = Number(process.env[SUPERVISED_VAR]) || undefined;
  if (recoverable && !supervisor) {
    return superviseJobMaster(jobDir, secrets, (line) => console.error(`twister2 jobmaster supervisor: ${line}`));
  }
  // A job master running on one of the cluster's hosts listens on that host's address.
  const placement = jobMasterPlacement(stored.cluster);
  const spec = await placement.jobMasterProcessSpec(stored);
  const packageFile = path.join(jobDir, files.package);
  const running = await hostJobMaster({
    jobId: record.jobId,
    spec,
    secrets,
    jobDir,
    packageFile,
    packageSha256: record.package.sha256,
    packageSize: record.package.size,
    token: await readToken(jobDir),
    ...(recoverable
      ? {
          durable: {
            ...(record.jobMaster ? { url: record.jobMaster.url } : {}),
            ...(placement.journalStore ? { store: await placement.journalStore(spec, record.jobId) } : {}),
            onFenced: (err: Error) => {
              // Another job master acts for the job now: stop without touching its workers.
              console.error(`twister2 jobmaster: ${err.message}; stopping`);
              process.exit(5);
            },
          },
        }
      : {}),
  });
  // Before it says it is up: a supervisor passes a stop on as soon as it is.
  const stop = () => running.jobMaster.kill('the job master process was stopped');
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await writeJson(path.join(jobDir, files.record), { ...record, jobMaster: { url: running.url, pid: process.pid, ...(supervisor ? { supervisorPid: supervisor } : {}) } });
  const status = await running.ended;
  console.log(`job ${record.jobId} ended ${status.state}: ${status.message ?? ''}`);
  return exitCodes[status.state];
}

/** The client hands the job's credentials over on stdin (see client/submit.ts). */
async function readSecretsFromStdin(): Promise<JobSecrets> {
  if (process.stdin.isTTY) return {};
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JobSecretsSchema.parse(JSON.parse(text)) : {};
}

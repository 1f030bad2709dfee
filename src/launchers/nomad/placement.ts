import path from 'node:path';
import { files, readRecord, readToken } from '../../job/job-store.js';
import { workerTokenOf } from '../../job/worker-environment.js';
import type { JournalStore } from '../../job/journal-store.js';
import type { JobSpec } from '../../spec/schema.js';
import type { JobMasterCommand, QueuedJobMaster } from '../launcher.js';
import { JOB_MASTER_GROUP, WORKER_GROUP } from './job-builder.js';
import { NomadApi } from './nomad-api.js';
import { inAllocation, nomadJobFor, nomadSection } from './nomad-launcher.js';
import { registerNomadJob, removeNomadJob } from './registration.js';
import { NomadVariablesJournalStore } from './variables-journal.js';

/**
 * `jobMaster.placement: cluster` on Nomad: the job master is one more allocation of the job, registered in
 * Nomad's service discovery, where the workers find it. The client registers the whole job and waits until
 * the job master has recorded its address in the job directory, which its allocation must be able to read
 * and write: raw_exec or exec on this machine or a shared file system.
 */
export async function queueJobMaster(spec: JobSpec, jobDir: string, node: string, cli: string): Promise<QueuedJobMaster> {
  const nomad = nomadSection(spec);
  const api = new NomadApi(nomad);
  const record = await readRecord(jobDir);
  const token = await readToken(jobDir);
  // Workers start with the job master, so they read the package where the client wrote it.
  const packageRef = { kind: 'file' as const, path: path.join(jobDir, files.package), sha256: record.package.sha256, size: record.package.size };
  const ctx = { jobId: record.jobId, spec, jobDir, packageRef, jobMasterUrl: 'http://unknown.invalid', token };
  const job = await nomadJobFor(ctx, nomad, api, process.env, { command: [node, cli, 'jobmaster', '--job-dir', jobDir] });
  // The variable holds the worker token only; the job master allocation reads the admin secret from the job directory.
  const { unplaced } = await registerNomadJob(api, nomad, job as { ID: string }, workerTokenOf(token));
  const jobId = record.jobId;
  return {
    name: `Nomad job ${jobId}`,
    async whyGone() {
      if (!(await api.job(jobId))) return `Nomad job ${jobId} is gone before its job master recorded its address`;
      const jm = (await api.allocations(jobId)).filter((a) => a.TaskGroup === JOB_MASTER_GROUP);
      const ended = jm.find((a) => ['failed', 'complete', 'lost'].includes(a.ClientStatus));
      if (!ended) return undefined;
      const events = ended.TaskStates?.[JOB_MASTER_GROUP]?.Events ?? [];
      const last = events.filter((e) => e.DisplayMessage).slice(-2).map((e) => `${e.Type}: ${e.DisplayMessage}`).join('; ');
      await removeNomadJob(api, jobId).catch(() => undefined);
      return `the job master allocation of Nomad job ${jobId} ended (${ended.ClientStatus}) before it recorded its address${last ? `: ${last}` : ''}; see ${path.join(jobDir, 'jobmaster.log')}`;
    },
    async waiting() {
      return unplaced ? `Nomad could not place every allocation yet: ${unplaced}` : undefined;
    },
    cancel: () => removeNomadJob(api, jobId, { groups: [WORKER_GROUP, JOB_MASTER_GROUP] }),
  };
}

/** Inside its allocation the job master listens on the dynamic port Nomad gave it. */
export async function jobMasterProcessSpec(spec: JobSpec): Promise<JobSpec> {
  const env = process.env;
  if (!inAllocation(env) || !env.NOMAD_IP_jm || !env.NOMAD_PORT_jm) return spec;
  return { ...spec, jobMaster: { ...spec.jobMaster, host: env.NOMAD_IP_jm, port: Number(env.NOMAD_PORT_jm) } };
}

export async function jobMasterCommand(_spec: JobSpec, jobDir: string, node: string, cli: string): Promise<JobMasterCommand> {
  return { program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] };
}

/** The job master's journal: in Nomad Variables, which Nomad's servers keep whatever becomes of its allocation. */
export async function journalStore(spec: JobSpec, jobId: string): Promise<JournalStore> {
  return new NomadVariablesJournalStore(new NomadApi(nomadSection(spec)), jobId);
}

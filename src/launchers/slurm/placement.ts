import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { files } from '../../job/job-store.js';
import { primaryAddress } from '../../net/primary-address.js';
import { isLoopbackHost } from '../../net/loopback.js';
import type { JobSpec } from '../../spec/schema.js';
import type { JobMasterCommand, QueuedJobMaster } from '../launcher.js';
import { batchScript } from './batch-script.js';
import { describeReason, slurmPhase, UNSATISFIABLE_REASONS } from './job-states.js';
import { SlurmCommands, slurmEnvironment } from './slurm-commands.js';
import { IN_ALLOCATION_ENV, slurmSection } from './slurm-launcher.js';

/**
 * `jobMaster.placement: cluster` on Slurm: the job master runs inside the job's own allocation, in the
 * batch step on the first node, and starts the workers there with srun. The client submits that batch
 * job and waits (however long Slurm queues it) until the job master has recorded its address in the job
 * directory, which must be on a file system the nodes share, as home directories on Slurm clusters are.
 */
export async function queueJobMaster(spec: JobSpec, jobDir: string, node: string, cli: string): Promise<QueuedJobMaster> {
  const slurm = slurmSection(spec);
  // sbatch passes its environment on to the batch step: that is how the job master there knows where it runs.
  const commands = new SlurmCommands(slurm, { ...slurmEnvironment(slurm), [IN_ALLOCATION_ENV]: '1' });
  const logsDir = path.join(jobDir, files.logs);
  const script = path.join(jobDir, 'slurm', 'jobmaster.sbatch');
  mkdirSync(path.dirname(script), { recursive: true });
  const body = { kind: 'jobmaster' as const, jobMasterCommand: [node, cli, 'jobmaster', '--job-dir', jobDir] };
  writeFileSync(script, batchScript({ jobId: path.basename(jobDir), spec, slurm, logsDir, body }), { mode: 0o644 });
  const id = await commands.submit(script);
  writeFileSync(path.join(jobDir, 'slurm', 'job-id'), `${id}\n`);
  const output = path.join(logsDir, `slurm-${id}.out`);
  return {
    name: `Slurm job ${id}`,
    async whyGone() {
      const entry = await commands.queueEntry(id);
      if (entry) {
        if (slurmPhase(entry.state).phase !== 'queued' || !UNSATISFIABLE_REASONS.has(entry.reason)) return undefined;
        await commands.cancel(id);
        return `Slurm cannot run job ${id} as submitted: ${describeReason(entry.reason)}`;
      }
      const record = await commands.finalRecord(id);
      return `Slurm job ${id} ended (${record?.state || 'no record left'}) before its job master recorded its address; see ${output}`;
    },
    async waiting() {
      const entry = await commands.queueEntry(id);
      return entry && slurmPhase(entry.state).phase === 'queued' ? `Slurm job ${id} ${entry.state} (${describeReason(entry.reason)})` : undefined;
    },
    cancel: () => commands.cancel(id),
  };
}

/** Inside the allocation the job master listens on the node's address, which the other nodes reach. */
export async function jobMasterProcessSpec(spec: JobSpec): Promise<JobSpec> {
  if (process.env[IN_ALLOCATION_ENV] !== '1' || !isLoopbackHost(spec.jobMaster.host)) return spec;
  return { ...spec, jobMaster: { ...spec.jobMaster, host: primaryAddress() } };
}

export async function jobMasterCommand(_spec: JobSpec, jobDir: string, node: string, cli: string): Promise<JobMasterCommand> {
  return { program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] };
}

import path from 'node:path';
import { ENV } from '../../job/worker-environment.js';
import type { JobSpec } from '../../spec/schema.js';
import type { SlurmSpec } from './section.js';
import { mpirunArgs } from '../mpi/mpirun-command.js';
import type { MpiSpec } from '../mpi/section.js';
import { shellQuote } from '../../shell-quote.js';
import { leaseLockOf, memoryDirOf } from '../../job/storage.js';

const MIB = 1024 * 1024;

/** What runs in the batch step: the workers (job master in the client) or the job master itself. */
export type BatchBody =
  | { kind: 'workers'; env: Record<string, string>; workerCommand: string[]; mpirunIsRoot?: boolean }
  | { kind: 'jobmaster'; jobMasterCommand: string[] };

export interface BatchScriptInput {
  jobId: string;
  spec: JobSpec;
  slurm: SlurmSpec;
  logsDir: string;
  body: BatchBody;
}

/** The `#SBATCH` options for a job, one per line, in a fixed order (stable for snapshots and diffs). */
export function sbatchDirectives(input: Pick<BatchScriptInput, 'jobId' | 'spec' | 'slurm' | 'logsDir'>): string[] {
  const { spec, slurm } = input;
  const cpus = slurm.cpusPerTask ?? Math.ceil(spec.resources.cpu);
  const d: string[] = [`--job-name=${input.jobId}`, `--ntasks=${spec.workers}`];
  if (slurm.nodes !== undefined) d.push(`--nodes=${slurm.nodes}`);
  if (slurm.tasksPerNode !== undefined) d.push(`--ntasks-per-node=${slurm.tasksPerNode}`);
  d.push(`--cpus-per-task=${cpus}`);
  if (slurm.memoryPerNode !== undefined) d.push(`--mem=${Math.ceil(slurm.memoryPerNode / MIB)}M`);
  else d.push(`--mem-per-cpu=${Math.ceil(spec.resources.memory / MIB / cpus)}M`);
  // GPUs per task rather than --gres=gpu:N per node: with it Slurm binds each task (worker) to its own GPUs
  // and sets its CUDA_VISIBLE_DEVICES (and SLURM_STEP_GPUS) to them, where a per-node gres would show every task
  // on a node all of the node's GPUs. The workers' srun inherits it (SLURM_GPUS_PER_TASK). slurm.gres is for
  // other generic resources, or a GPU type, and is passed on as it is.
  if (spec.resources.gpus > 0) d.push(`--gpus-per-task=${spec.resources.gpus}`);
  if (slurm.gres) d.push(`--gres=${slurm.gres}`);
  if (slurm.time) d.push(`--time=${slurm.time}`);
  if (slurm.partition) d.push(`--partition=${slurm.partition}`);
  if (slurm.account) d.push(`--account=${slurm.account}`);
  if (slurm.qos) d.push(`--qos=${slurm.qos}`);
  if (slurm.constraint) d.push(`--constraint=${slurm.constraint}`);
  if (slurm.nodelist) d.push(`--nodelist=${slurm.nodelist}`);
  if (slurm.exclude) d.push(`--exclude=${slurm.exclude}`);
  if (slurm.exclusive) d.push('--exclusive');
  // twister2 restarts workers itself; a requeued batch script would start a second set of the same IDs.
  d.push('--no-requeue');
  d.push(`--output=${path.join(input.logsDir, 'slurm-%j.out')}`);
  d.push(...slurm.directives);
  return d;
}

/**
 * The srun that starts the workers inside the allocation: task N is worker N (SLURM_PROCID), its output
 * goes to logs/worker-N.log, which the client follows. --kill-on-bad-exit=0 keeps the other workers
 * running when one fails: the job master decides whether to restart it or end the job.
 */
export function srunWorkersArgs(opts: { spec: JobSpec; slurm: SlurmSpec; logsDir: string; workerCommand: string[] }): string[] {
  const log = path.join(opts.logsDir, 'worker-%t.log');
  return [
    `--ntasks=${opts.spec.workers}`,
    ...(opts.slurm.mpi ? [`--mpi=${opts.slurm.mpi}`] : []),
    '--kill-on-bad-exit=0',
    `--output=${log}`,
    `--error=${log}`,
    '--open-mode=append',
    ...opts.slurm.srunArgs,
    '--',
    ...opts.workerCommand,
  ];
}

/**
 * The environment of the workers' srun with `slurm.mpi`: srun --mpi=pmix starts a PMIx server in each node's
 * slurmstepd and hands every task PMIX_NAMESPACE, PMIX_RANK (= SLURM_PROCID = worker ID) and the server's
 * address; OpenMPI's MPI_Init finds them through its pmix component (Debian's OpenMPI 4 is built against the
 * same libpmix as Slurm's plugin), so it needs no setting of its own to use PMIx. With no mpirun to take
 * `--mca`, the job's MCA parameters reach the ranks as OMPI_MCA_<name>, which OpenMPI reads the same way.
 */
export function srunMpiEnv(slurm: SlurmSpec): Record<string, string> {
  if (!slurm.mpi) return {};
  return Object.fromEntries(Object.entries(slurm.mca).map(([k, v]) => [`OMPI_MCA_${k}`, v]));
}

/**
 * mpirun inside the allocation, built as the MPI launcher builds it: OpenMPI reads the hosts from Slurm (no
 * hostfile, no ssh) and the ranks inherit the batch step's environment; rank N is worker N. `slurm.mca`
 * goes on the command line as `--mca`, as `mpi.mca` does for cluster: mpi.
 */
export function mpirunWorkersArgs(opts: { spec: JobSpec; slurm: Pick<SlurmSpec, 'mca'>; workerCommand: string[]; asRoot: boolean }): string[] {
  const mpi: MpiSpec = { oversubscribe: false, bindToCore: false, mca: opts.slurm.mca, ssh: {}, mpirun: 'mpirun' };
  // The uid only decides --allow-run-as-root.
  return mpirunArgs({ mpi, np: opts.spec.workers, envNames: [], uid: opts.asRoot ? 0 : 1, program: opts.workerCommand });
}

/** Step IDs twister2 starts later (restarted workers) must end before the batch step does, or Slurm kills them. */
const WAIT_FOR_STEPS = [
  'while squeue -h -s -j "$SLURM_JOB_ID" -o %i 2>/dev/null | grep -qvE \'\\.(batch|extern|interactive)$\'; do',
  '  sleep 1',
  'done',
];

/**
 * A job that starts after its job master is gone (the client was killed while the job was queued) must
 * not hold an allocation: the script checks that the job master's port answers before starting workers.
 */
function jobMasterCheck(url: string | undefined): string[] {
  if (!url) return [];
  const u = new URL(url);
  const target = `/dev/tcp/${u.hostname.replace(/^\[|\]$/g, '')}/${u.port}`;
  return [
    `if ! (exec 3<>${shellQuote(target)}) 2>/dev/null; then`,
    `  echo "twister2: the job master (${u.host}) does not answer; it ended before this job started, so there is nothing to run" >&2`,
    '  exit 3',
    'fi',
  ];
}

/**
 * What the job may leave on each node, which its last step removes: the work directory (the unpacked package
 * and storage.scratch) and, with storage.memory, the job's /dev/shm directory, each with its lease lock. The
 * last worker on a node removes them itself, unless it was SIGKILLed.
 */
export function nodeLeftovers(jobId: string, spec: Pick<JobSpec, 'storage'>, workDir: string): string[] {
  const memory = spec.storage?.memory ? [memoryDirOf(jobId), leaseLockOf(memoryDirOf(jobId))] : [];
  return [workDir, leaseLockOf(workDir), ...memory];
}

/**
 * The whole batch script. Nothing secret is written here: the worker token reaches the workers through a
 * file of mode 0600 in the job directory (ENV.workerTokenFile), never through the script or Slurm's copy
 * of the job's environment.
 */
export function batchScript(input: BatchScriptInput): string {
  const lines = ['#!/bin/bash', ...sbatchDirectives(input).map((d) => `#SBATCH ${d}`), `# Generated by twister2 for job ${input.jobId}.`];
  const { body } = input;
  if (body.kind === 'jobmaster') {
    lines.push('# The job master runs here, in the batch step; it starts the workers with srun in this allocation.');
    lines.push(`exec ${body.jobMasterCommand.map(shellQuote).join(' ')} </dev/null`);
    return lines.join('\n') + '\n';
  }
  for (const [name, value] of Object.entries({ ...body.env, ...srunMpiEnv(input.slurm) })) lines.push(`export ${name}=${shellQuote(value)}`);
  lines.push(...jobMasterCheck(body.env[ENV.jobMasterUrl]));
  const launch =
    input.slurm.launch === 'mpirun'
      ? [input.slurm.mpirun, ...mpirunWorkersArgs({ spec: input.spec, slurm: input.slurm, workerCommand: body.workerCommand, asRoot: body.mpirunIsRoot ?? false })]
      : ['srun', ...srunWorkersArgs({ spec: input.spec, slurm: input.slurm, logsDir: input.logsDir, workerCommand: body.workerCommand })];
  lines.push(launch.map(shellQuote).join(' '));
  lines.push('status=$?', ...WAIT_FOR_STEPS);
  const workDir = body.env[ENV.workDir];
  if (workDir) {
    lines.push('# Each node unpacked the package once, under the work directory: remove it on every node.');
    const gone = nodeLeftovers(input.jobId, input.spec, workDir).map(shellQuote).join(' ');
    lines.push(`srun --overlap --ntasks-per-node=1 --ntasks="$SLURM_JOB_NUM_NODES" rm -rf -- ${gone} || true`);
  }
  lines.push('exit $status');
  return lines.join('\n') + '\n';
}

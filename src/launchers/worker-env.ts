import type { LaunchContext } from './launcher.js';

/**
 * The environment every launcher gives the worker runtime. Launchers whose cluster assigns the worker ID
 * itself (MPI rank, Slurm proc ID, Nomad alloc index) leave `workerId` out.
 */
export function workerEnvironment(ctx: LaunchContext, opts: { workerId?: number; restartCount?: number } = {}): Record<string, string> {
  return {
    TWISTER2_JOB_ID: ctx.jobId,
    TWISTER2_CLUSTER: ctx.spec.cluster,
    TWISTER2_JOB_MASTER_URL: ctx.jobMasterUrl,
    TWISTER2_JOB_TOKEN: ctx.token,
    TWISTER2_PACKAGE_REF: JSON.stringify(ctx.packageRef),
    TWISTER2_REGISTRATION_TIMEOUT_MS: String(ctx.spec.timeouts.registration),
    ...(opts.workerId === undefined ? {} : { TWISTER2_WORKER_ID: String(opts.workerId) }),
    ...(opts.restartCount === undefined ? {} : { TWISTER2_RESTART_COUNT: String(opts.restartCount) }),
  };
}

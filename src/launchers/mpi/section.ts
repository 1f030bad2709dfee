import { z } from 'zod';
import { isLoopbackHost } from '../../net/loopback.js';
import { gpuIndexesSchema } from '../../spec/gpu-schema.js';
import { listText, type GpuPlan } from '../gpus.js';

/**
 * The `mpi` section: where mpirun starts the ranks and how it reaches the hosts. The checks that need the
 * rest of the spec (slots for the workers, a job master address the hosts reach) are refineMpiSpec below.
 */

/** A host name or an IPv4/IPv6 address as OpenMPI's hostfile takes it (no user, no port: those are `mpi.ssh`). */
const MPI_HOST_RULE = 'expected a host name or IP address such as "node1" or "10.0.0.5" (set the ssh user and port in mpi.ssh)';
const mpiHost = z
  .string({ error: MPI_HOST_RULE })
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$/, MPI_HOST_RULE);

/** OpenMPI's MCA parameters (`--mca NAME VALUE`, or `OMPI_MCA_NAME` where no mpirun runs); also Slurm's MPI modes'. */
export const mcaSchema = z
  .record(z.string().regex(/^[A-Za-z0-9_]+$/, 'expected an MCA parameter name such as btl_tcp_if_include'), z.string({ error: 'expected an MCA value as a string, e.g. "self,tcp"' }), {
    error: 'expected a map of MCA parameter names to string values',
  })
  .default({});

/** The OpenMPI launcher (`cluster: mpi`): where mpirun starts the ranks and how it reaches the hosts. */
export const MpiSpecSchema = z
  .strictObject({
    hosts: z
      .array(
        z.strictObject({
          host: mpiHost,
          slots: z.number({ error: 'expected a whole number of slots, at least 1' }).int('expected a whole number of slots').min(1, 'expected at least 1 slot'),
          gpus: gpuIndexesSchema.optional().describe("the host's GPU indexes, divided among the ranks on it (resources.gpus each) as CUDA_VISIBLE_DEVICES"),
        }),
        { error: 'expected a list of { host, slots, gpus? }' },
      )
      .min(1, 'expected at least one host')
      .optional()
      .describe('hosts and how many ranks each may run; or use mpi.hostfile'),
    hostfile: z.string().startsWith('/', 'expected an absolute path to an OpenMPI hostfile').optional(),
    oversubscribe: z.boolean().default(false).describe('allow more ranks than slots'),
    mapBy: z.string().min(1).optional().describe('passed as --map-by'),
    bindToCore: z.boolean().default(false).describe('--bind-to core; otherwise --bind-to none'),
    mca: mcaSchema,
    ssh: z
      .strictObject({
        user: z.string().min(1).optional(),
        identityFile: z.string().min(1).optional(),
        port: z.number({ error: 'expected a port number' }).int('expected a whole port number').min(1, 'expected a port from 1 to 65535').max(65535, 'expected a port from 1 to 65535').optional(),
      })
      .prefault({}),
    mpirun: z.string().min(1).default('mpirun').describe('the mpirun program: a name on PATH or a path'),
    interfaces: z.string().min(1).optional().describe('passed as btl_tcp_if_include and oob_tcp_if_include, e.g. "eth0" or "10.0.0.0/24"'),
  })
  .superRefine((m, ctx) => {
    if ((m.hosts === undefined) === (m.hostfile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          m.hosts === undefined
            ? 'missing hosts: set mpi.hosts (a list of { host, slots }) or mpi.hostfile (an absolute path)'
            : 'set either mpi.hosts or mpi.hostfile, not both',
      });
    }
  });
export type MpiSpec = z.output<typeof MpiSpecSchema>;

/** The part of the spec the cross-field checks read. */
export interface MpiCheckInput {
  workers: number;
  resources: { gpus: number };
  jobMaster: { host: string; placement: string };
  mpi?: MpiSpec | undefined;
}

/** For the job spec's superRefine, when cluster is "mpi": `refineMpiSpec(spec, ctx)`. */
export function refineMpiSpec(spec: MpiCheckInput, ctx: z.RefinementCtx): void {
  const mpi = spec.mpi;
  if (!mpi) {
    ctx.addIssue({ code: 'custom', path: ['mpi'], message: 'cluster is "mpi" but the mpi section is missing; add mpi.hosts (a list of { host, slots }) or mpi.hostfile' });
    return;
  }
  if (!mpi.hosts) {
    if (spec.resources.gpus > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['mpi', 'hostfile'],
        message: `resources.gpus is ${spec.resources.gpus}, and GPUs are divided per host from mpi.hosts[].gpus; list the hosts in mpi.hosts ({ host, slots, gpus: [0, 1, ...] }) instead of mpi.hostfile`,
      });
    }
    return; // a hostfile is read (and checked) by the launcher, on the machine that has it
  }
  const slots = mpi.hosts.reduce((n, h) => n + h.slots, 0);
  if (slots < spec.workers && !mpi.oversubscribe) {
    ctx.addIssue({
      code: 'custom',
      path: ['mpi', 'hosts'],
      message: `the hosts have ${slots} slots in total but workers is ${spec.workers}; add hosts or slots, lower workers, or set mpi.oversubscribe: true`,
    });
  }
  refineMpiGpus(spec, mpi, mpi.hosts, ctx);
  const remote = mpi.hosts.find((h) => !isLoopbackHost(h.host));
  // With the `cluster` placement the job master runs on, and listens on, the first host (jobMaster.host is not used).
  if (remote && isLoopbackHost(spec.jobMaster.host) && spec.jobMaster.placement === 'client') {
    ctx.addIssue({
      code: 'custom',
      path: ['jobMaster', 'host'],
      message: `"${spec.jobMaster.host}" cannot be reached from mpi host "${remote.host}"; set jobMaster.host to an address of this machine that the hosts can reach`,
    });
  }
}

/**
 * How many ranks each host may run: OpenMPI fills the hosts' slots in order unless mpi.mapBy says otherwise;
 * with mapBy, any host may get up to its slots. (More ranks than slots, with oversubscribe, is refused with GPUs.)
 */
export function ranksPerHost(workers: number, hosts: readonly { slots: number }[], mapBy: string | undefined): number[] {
  let left = workers;
  return hosts.map((h) => {
    if (mapBy !== undefined) return Math.min(h.slots, workers);
    const n = Math.min(h.slots, left);
    left -= n;
    return n;
  });
}

/** resources.gpus against each host's GPU list: no host runs more ranks than its list has GPUs for. */
function refineMpiGpus(spec: MpiCheckInput, mpi: MpiSpec, hosts: NonNullable<MpiSpec['hosts']>, ctx: z.RefinementCtx): void {
  const g = spec.resources.gpus;
  if (g === 0) return;
  const slots = hosts.reduce((n, h) => n + h.slots, 0);
  if (spec.workers > slots) {
    if (!mpi.oversubscribe) return; // the slots check above names that
    ctx.addIssue({
      code: 'custom',
      path: ['mpi', 'oversubscribe'],
      message: `with more ranks (${spec.workers}) than slots (${slots}) OpenMPI decides how many go to each host, so their GPUs (resources.gpus ${g}) cannot be divided; add slots or lower workers`,
    });
    return;
  }
  const ranks = ranksPerHost(spec.workers, hosts, mpi.mapBy);
  hosts.forEach((h, i) => {
    const need = ranks[i]! * g;
    const have = h.gpus?.length ?? 0;
    if (need <= have) return;
    const may = mpi.mapBy === undefined ? `runs ${ranks[i]}` : `may run up to ${ranks[i]} (its slots, with mpi.mapBy)`;
    ctx.addIssue({
      code: 'custom',
      path: ['mpi', 'hosts', i, 'gpus'],
      message:
        `mpi host "${h.host}" ${may} ranks × ${g} GPU(s) (resources.gpus) = ${need} GPUs, but ` +
        (h.gpus ? `its gpus list has ${have} ${listText(h.gpus)}` : 'it has no gpus list') +
        `; list the host's GPU indexes in mpi.hosts[${i}].gpus, give it fewer slots, or lower resources.gpus`,
    });
  });
}

/** The GPU plan the ranks get (ENV.gpuPlan), or undefined when no host lists GPUs and no rank asks for any. */
export function mpiGpuPlan(mpi: MpiSpec, perWorker: number): GpuPlan | undefined {
  if (!mpi.hosts || (perWorker === 0 && !mpi.hosts.some((h) => h.gpus))) return undefined;
  return { perWorker, hosts: mpi.hosts.map((h) => ({ host: h.host, gpus: h.gpus ?? null })) };
}

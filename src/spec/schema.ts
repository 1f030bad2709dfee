import path from 'node:path';
import { z } from 'zod';
import { CLUSTER_KINDS } from './cluster-kinds.js';
import { gpuIndexesSchema } from './gpu-schema.js';
import { sizeSchema } from './size-schema.js';
import { formatDuration, parseDuration } from './units.js';
import { KubernetesSpecSchema, refineKubernetesSpec } from '../launchers/k8s/section.js';
import { MpiSpecSchema, refineMpiSpec } from '../launchers/mpi/section.js';
import { NomadSpecSchema, refineNomadSpec } from '../launchers/nomad/section.js';
import { refineSlurmSpec, SlurmSpecSchema } from '../launchers/slurm/section.js';
import { PORT_NAME } from '../protocol/messages.js';

/**
 * The job spec: the single source of the spec's types. `JobSpecInput` is what users write
 * (units as strings, most fields optional); `JobSpec` is what the rest of the code reads
 * (durations in ms, bytes as numbers, every default filled in).
 */

/** The longest delay a Node timer can hold (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const duration = (fallback: string, minMs = 1) =>
  z
    .union([z.string(), z.number()], { error: 'expected a duration such as "500ms", "30s", "2m" or a number of seconds' })
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined || (ms <= 0 && minMs > 0)) {
        ctx.issues.push({ code: 'custom', input: v, message: `"${v}" is not a ${minMs > 0 ? 'positive ' : ''}duration; use e.g. "500ms", "30s", "2m" or a number of seconds` });
        return z.NEVER;
      }
      if (ms > MAX_TIMER_MS) {
        ctx.issues.push({ code: 'custom', input: v, message: `"${v}" is too long: at most 24 days` });
        return z.NEVER;
      }
      if (ms < minMs) {
        ctx.issues.push({ code: 'custom', input: v, message: `"${v}" is too short: at least ${formatDuration(minMs)}` });
        return z.NEVER;
      }
      return ms;
    })
    .prefault(fallback);

const bytes = () => sizeSchema(['512Mi', '2Gi', '1G']);

export { CLUSTER_KINDS };
export const ClusterKindSchema = z.enum(CLUSTER_KINDS);
export type ClusterKind = z.infer<typeof ClusterKindSchema>;

export const MAX_WORKERS = 100_000;

/** The number of workers, in the spec, on the command line (`--workers`, `scale`) and in `submit()`/`scale()`. */
export const WorkersSchema = z
  .number({ error: `expected a whole number of workers, from 1 to ${MAX_WORKERS}` })
  .int('expected a whole number of workers')
  .min(1, 'expected at least 1 worker')
  .max(MAX_WORKERS, `expected at most ${MAX_WORKERS} workers`);

export const JOB_NAME_RULE =
  '1 to 40 lowercase letters, digits or "-", starting and ending with a letter or digit (it becomes part of DNS names)';

export const ResourcesSchema = z.strictObject({
  cpu: z.number({ error: 'expected a number of CPUs, e.g. 1 or 0.5' }).positive('expected more than 0 CPUs').max(4096, 'expected at most 4096 CPUs').default(1),
  memory: bytes().prefault('512Mi'),
  gpus: z.number({ error: 'expected a whole number of GPUs' }).int('expected a whole number of GPUs').min(0, 'expected 0 or more GPUs').max(64, 'expected at most 64 GPUs').default(0),
  disk: bytes().optional(),
});

const CommandLineSchema = z.union([z.string().min(1), z.array(z.string()).min(1)], {
  error: 'expected a command line: a string run by /bin/sh, or an array of program and arguments',
});

/**
 * worker.health: a check the worker runtime runs next to the program, like a Kubernetes liveness probe. A
 * worker that fails it `failureThreshold` times in a row is failed, and restarted like a crashed one.
 */
export const HealthCheckSchema = z
  .strictObject({
    command: CommandLineSchema.optional().describe('healthy when it exits 0; run in the package directory with a command worker\'s environment'),
    http: z
      .strictObject({
        port: z.union([z.number().int().min(1).max(65535), z.string().regex(PORT_NAME)], { error: 'expected a port number or the name of one of worker.ports' }),
        path: z.string().startsWith('/', 'expected a path starting with "/"').default('/'),
      })
      .optional()
      .describe('healthy when GET http://127.0.0.1:<port><path> answers 200-399'),
    interval: duration('10s', 100),
    timeout: duration('1s'),
    failureThreshold: z.number({ error: 'expected a whole number of checks' }).int('expected a whole number of checks').min(1, 'expected at least 1').max(1000, 'expected at most 1000').default(3),
    startPeriod: duration('0s', 0).describe('how long after the program started checks begin'),
  })
  .superRefine((h, ctx) => {
    if ((h.command === undefined) === (h.http === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of worker.health.command (a command line) or worker.health.http ({ port, path })' });
    }
  });
export type HealthCheck = z.infer<typeof HealthCheckSchema>;

export const WorkerProgramSchema = z
  .strictObject({
    module: z
      .string()
      .min(1)
      .regex(/\.(mjs|cjs|js|ts|mts|cts)$/, 'expected a .js, .mjs, .cjs, .ts or .mts file inside the job (for other languages use worker.command)')
      .optional()
      .describe('JS/TS module, relative to the job root, whose default export is `async (ctx) => {}`'),
    command: CommandLineSchema.optional().describe('any command line; a string runs through /bin/sh -c, an array runs directly'),
    args: z.array(z.string(), { error: 'expected a list of strings' }).default([]),
    env: z.record(z.string(), z.string(), { error: 'expected a map of variable names to string values' }).default({}),
    ports: z
      .array(z.string().regex(PORT_NAME, 'expected a port name: 1-15 of a-z 0-9 -, starting with a letter (e.g. "data")'), { error: 'expected a list of port names, e.g. ["data", "ctrl"]' })
      .max(64)
      .default([])
      .describe('named ports the runtime picks per worker before it registers: ctx.ports.<name>, TWISTER2_PORT_<NAME>, and in discovery'),
    health: HealthCheckSchema.optional(),
  })
  .superRefine((w, ctx) => {
    if (w.module === undefined && w.command === undefined) {
      ctx.addIssue({ code: 'custom', message: 'missing program: set worker.module (a JS/TS file) or worker.command (any command line)' });
    }
    if (w.module !== undefined && w.command !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'set either worker.module or worker.command, not both' });
    }
    const port = w.health?.http?.port;
    if (typeof port === 'string' && !w.ports.includes(port)) {
      ctx.addIssue({ code: 'custom', path: ['health', 'http', 'port'], message: `"${port}" is not one of worker.ports (${w.ports.join(', ') || 'none'}); list it in worker.ports, or give a port number` });
    }
    const dup = w.ports.find((p, i) => w.ports.indexOf(p) !== i);
    if (dup !== undefined) ctx.addIssue({ code: 'custom', path: ['ports'], message: `port "${dup}" is listed twice; each name must be unique` });
    for (const key of Object.keys(w.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        ctx.addIssue({ code: 'custom', path: ['env', key], message: `"${key}" is not a valid environment variable name` });
      } else if (key.startsWith('TWISTER2_')) {
        ctx.addIssue({ code: 'custom', path: ['env', key], message: 'names starting with TWISTER2_ are set by twister2 itself' });
      }
    }
  });

export const JobMasterSpecSchema = z.strictObject({
  /**
   * client: in the submitting process; cluster: in a process of its own on the cluster (the job outlives the
   * client); none: no job master for the workers, for plain MPI programs that need only their ranks (cluster:
   * mpi). Default client, except on Kubernetes: cluster (see withPlacementDefault).
   */
  placement: z.enum(['client', 'cluster', 'none']).default('client'),
  port: z.number({ error: 'expected a port number (0 picks a free one)' }).int('expected a whole port number').min(0, 'expected a port from 0 to 65535').max(65535, 'expected a port from 0 to 65535').default(0),
  host: z.string().min(1).default('127.0.0.1').describe('address the job master listens on'),
});

export const RestartSpecSchema = z.strictObject({
  maxRestarts: z.number({ error: 'expected a whole number of restarts' }).int('expected a whole number of restarts').min(0, 'expected 0 or more restarts').max(1000, 'expected at most 1000 restarts').default(0),
});

export const TimeoutsSchema = z.strictObject({
  registration: duration('60s'),
  barrier: duration('5m'),
  // Workers beat every quarter of it; much below a second, a busy machine would fail healthy workers.
  heartbeat: duration('10s', 500),
  // How long a crashed job master may take to be back (where its cluster restarts it) before the job ends.
  jobMasterRecovery: duration('60s'),
});

export const UPLOADER_KINDS = ['local', 'http', 's3', 'sftp', 'shared'] as const;

const sshHost = z.union(
  [
    z.string().regex(/^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.:-]+$/, 'expected "host", "user@host" or "user@host:port"'),
    z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(22), user: z.string().min(1).optional() }),
  ],
  { error: 'expected "user@host:port" or { host, port, user }' },
);

/**
 * How the package reaches the workers. Secrets never go here except S3 keys, which the client strips
 * from the spec before it is packaged or stored (see job/secrets.ts).
 */
export const UploaderSpecSchema = z
  .strictObject({
    kind: z.enum(UPLOADER_KINDS).default('local'),
    http: z
      .strictObject({
        url: z.url({ error: 'expected the package server\'s base URL, e.g. http://10.0.0.1:8080' }),
        tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('TWISTER2_PACKAGE_SERVER_TOKEN').describe('environment variable holding the server token'),
      })
      .optional(),
    s3: z
      .strictObject({
        bucket: z.string().min(3),
        prefix: z.string().default('twister2/'),
        endpoint: z.url().optional(),
        region: z.string().default('us-east-1'),
        forcePathStyle: z.boolean().default(false),
        keep: z.boolean().default(false).describe('keep the object after the job'),
        presignExpiry: duration('24h'),
        credentials: z.strictObject({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().optional() }).optional(),
      })
      .optional(),
    sftp: z
      .strictObject({
        hosts: z.array(sshHost).min(1),
        identityFile: z.string().min(1),
        knownHosts: z.string().min(1).optional().describe('known_hosts file; without it any host key is accepted'),
        targetDir: z.string().startsWith('/', 'expected an absolute path').default('/tmp/twister2-packages'),
        parallel: z.number().int().min(1).max(64).default(4),
        keep: z.boolean().default(false),
      })
      .optional(),
    shared: z
      .strictObject({
        dir: z.string().startsWith('/', 'expected an absolute path every node mounts'),
        keep: z.boolean().default(false),
      })
      .optional(),
  })
  .superRefine((u, ctx) => {
    if (u.kind !== 'local' && u[u.kind] === undefined) {
      ctx.addIssue({ code: 'custom', path: [u.kind], message: `uploader.kind is "${u.kind}" but uploader.${u.kind} is missing; add its settings` });
    }
  });
export type UploaderSpec = z.output<typeof UploaderSpecSchema>;

/** The job's driver: user code run by the job master, wherever it runs (README, "Driver and messages"). */
export const DriverSpecSchema = z.strictObject({
  module: z
    .string({ error: 'expected the path of a JS/TS module inside the job, e.g. driver.mjs' })
    .min(1)
    .regex(/\.(mjs|cjs|js|ts|mts|cts)$/, 'expected a .js, .mjs, .cjs, .ts or .mts file inside the job')
    .describe('JS/TS module, relative to the job root, whose default export is `async (ctx) => result`'),
  args: z.array(z.string(), { error: 'expected a list of strings' }).default([]),
  endsJob: z.boolean({ error: 'expected true or false' }).default(false).describe('the job succeeds as soon as the driver returns, stopping the workers still running'),
});
export type DriverSpec = z.output<typeof DriverSpecSchema>;

/** A twister2 dashboard the job master reports the job's state and events to (README, "Dashboard"). */
export const DashboardSpecSchema = z.strictObject({
  url: z
    .string({ error: 'expected the dashboard\'s address, e.g. http://10.0.0.5:8642' })
    .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'expected an http:// or https:// address, e.g. http://10.0.0.5:8642')
    .describe('the dashboard (`twister2 dashboard`) the job master reports to; a dashboard that is down never slows or fails the job'),
});
export type DashboardSpec = z.output<typeof DashboardSpecSchema>;

/** The local cluster (processes on this machine). */
export const LocalSpecSchema = z.strictObject({
  workDir: z.string().min(1).optional().describe('where workers unpack the package and keep scratch files'),
  gpus: gpuIndexesSchema.optional().describe("this machine's GPU indexes, divided among the workers (resources.gpus each) as CUDA_VISIBLE_DEVICES"),
});

/** `storage.persistent` on Kubernetes: an NFS export every worker pod mounts; twister2 never deletes what is on it. */
const PersistentNfsSchema = z.strictObject(
  {
    server: z.string({ error: 'expected the NFS server\'s host name or IP' }).min(1, 'expected the NFS server\'s host name or IP'),
    path: z.string({ error: 'expected the exported directory, an absolute path' }).startsWith('/', 'expected the exported directory, an absolute path such as "/exports/results"'),
  },
  { error: 'expected { server: nfs.example.com, path: /exports/results }' },
);

/** `storage.persistent` on Kubernetes: a ReadWriteMany claim of the job, deleted with it unless `keep: true`. */
const PersistentPvcSchema = z.strictObject(
  {
    storageClass: z
      .string({ error: 'expected a StorageClass name' })
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'expected a StorageClass name: lowercase letters, digits, "-" and "."'),
    size: sizeSchema(['10Gi', '100Gi'], { positive: true }),
    keep: z.boolean({ error: 'expected true or false' }).default(false).describe('keep the claim (and its data) after the job'),
  },
  { error: 'expected { storageClass: nfs-client, size: 10Gi, keep: true }' },
);

/**
 * `storage`: the job's directories, with one meaning on every cluster (README, "Storage"):
 * - `memory: { size }`: a memory-backed directory shared by the job's workers on a host (local, MPI, Slurm,
 *   Nomad: /dev/shm/twister2-<job>, removed when the last of them ends, `size` checked against what /dev/shm
 *   has free) or in a pod (Kubernetes: an emptyDir of medium Memory, `size` its sizeLimit, enforced by the kubelet);
 * - `scratch: { size? }`: the host's node-local disk directory of the job (Kubernetes: a disk emptyDir per pod),
 *   removed when the job ends; `size` is checked against the free disk there (Kubernetes: the sizeLimit);
 * - `persistent: { <one form>, logs }`: kept after the job, seen by every worker. Its forms (PERSISTENT_FORMS,
 *   exactly one is set) each belong to some clusters, which refuse the others (launchers/capabilities.ts
 *   persistentFormProblems): `dir` (local, MPI, Slurm: a path every host mounts), `hostVolume` (Nomad: a host
 *   volume of the client nodes' config, whose path there the workers get), `nfs: { server, path }` or
 *   `pvc: { storageClass, size, keep }` (Kubernetes: mounted in every worker pod). With `logs: true` every
 *   worker's log is copied into `<persistent>/logs/<job>/` at the job's end.
 * Workers find them as `ctx.storage.{memory,scratch,persistent}` and TWISTER2_{MEMORY,SCRATCH,PERSISTENT}_DIR.
 *
 * On Nomad (driver raw_exec) memory and scratch are the same directories on each client node, and a post-stop
 * task of each allocation removes what a killed worker left (launchers/nomad/job-builder.ts). On Kubernetes,
 * kubernetes.volumes keeps its meaning; asking for the same thing there and here is refused.
 */
export const PERSISTENT_FORMS = {
  dir: { clusters: ['local', 'mpi', 'slurm'], what: 'a directory every worker\'s host mounts, e.g. /nfs/results' },
  hostVolume: { clusters: ['nomad'], what: 'the name of a host volume the Nomad client nodes declare (client { host_volume "<name>" { path = ... } })' },
  nfs: { clusters: ['kubernetes'], what: '{ server, path }: an NFS export mounted in every worker pod' },
  pvc: { clusters: ['kubernetes'], what: '{ storageClass, size }: a ReadWriteMany claim the job creates' },
} as const satisfies Record<string, { clusters: readonly ClusterKind[]; what: string }>;
export type PersistentForm = keyof typeof PERSISTENT_FORMS;

const PersistentSpecSchema = z
  .strictObject(
    {
      dir: z
        .string({ error: 'expected an absolute directory on a file system every worker sees, e.g. /nfs/results' })
        .superRefine((d, ctx) => {
          if (!path.isAbsolute(d) || d.split('/').includes('..')) {
            ctx.addIssue({ code: 'custom', input: d, message: `"${d}" is not an absolute path without ".."; give a directory every worker sees, e.g. /nfs/results` });
          }
        })
        .optional(),
      hostVolume: z
        .string({ error: 'expected the name of a Nomad host volume, e.g. "results"' })
        .regex(/^[A-Za-z0-9_.-]+$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a Nomad host volume name: use letters, digits, "_", "." and "-", as in the client's host_volume block` })
        .optional(),
      nfs: PersistentNfsSchema.optional().describe('Kubernetes: an NFS export mounted in every worker pod'),
      pvc: PersistentPvcSchema.optional().describe('Kubernetes: a ReadWriteMany claim the job creates, mounted in every worker pod'),
      logs: z.boolean({ error: 'expected true or false' }).default(false).describe('copy every worker\'s log into <persistent>/logs/<job>/ at the job\'s end'),
    },
    { error: 'expected { dir: /shared/path, logs: false } (or hostVolume: <name> on nomad; nfs: { server, path } or pvc: { storageClass, size } on kubernetes)' },
  )
  .superRefine((p, ctx) => {
    const forms = Object.keys(PERSISTENT_FORMS) as PersistentForm[];
    const set = forms.filter((f) => p[f] !== undefined);
    if (set.length !== 1) {
      const which = forms.map((f) => `storage.persistent.${f} (${PERSISTENT_FORMS[f].clusters.join(', ')})`).join(', ');
      ctx.addIssue({ code: 'custom', message: `set exactly one of ${which}${set.length > 1 ? `, not ${set.map((f) => f).join(' and ')}` : ''}` });
    }
  });

export const StorageSpecSchema = z.strictObject({
  memory: z
    .strictObject({ size: sizeSchema(['256Mi', '1Gi'], { positive: true }) }, { error: 'expected { size: "1Gi" }: the memory each host keeps for the job in /dev/shm' })
    .optional(),
  scratch: z.strictObject({ size: sizeSchema(['1Gi', '10Gi'], { positive: true }).optional() }, { error: 'expected { size: "10Gi" } or {}' }).optional(),
  persistent: PersistentSpecSchema.optional(),
});
export type StorageSpec = z.output<typeof StorageSpecSchema>;

export const JobSpecSchema = z.strictObject({
  name: z.string({ error: 'expected a job name' }).regex(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/, JOB_NAME_RULE),
  cluster: ClusterKindSchema.default('local'),
  workers: WorkersSchema,
  resources: ResourcesSchema.prefault({}),
  worker: WorkerProgramSchema,
  driver: DriverSpecSchema.optional(),
  jobMaster: JobMasterSpecSchema.prefault({}),
  dashboard: DashboardSpecSchema.optional(),
  restart: RestartSpecSchema.prefault({}),
  timeouts: TimeoutsSchema.prefault({}),
  uploader: UploaderSpecSchema.prefault({}),
  storage: StorageSpecSchema.optional(),
  local: LocalSpecSchema.prefault({}),
  kubernetes: KubernetesSpecSchema.optional(),
  slurm: SlurmSpecSchema.optional(),
  nomad: NomadSpecSchema.optional(),
  mpi: MpiSpecSchema.optional(),
}).superRefine((spec, ctx) => {
  // Which clusters have which placements is their capabilities' business (launchers/registry.ts).
  if (spec.jobMaster.placement === 'none' && spec.worker.command === undefined) {
    ctx.addIssue({ code: 'custom', path: ['worker', 'module'], message: 'a module worker needs the job master (its ctx talks to it); with jobMaster.placement "none" use worker.command' });
  }
  if (spec.jobMaster.placement === 'none' && spec.driver !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['driver'], message: 'the driver runs in the job master, and jobMaster.placement "none" has none; use placement client or cluster, or remove driver' });
  }
  const gpusDivided = spec.resources.gpus > 0 || spec.local.gpus !== undefined || spec.mpi?.hosts?.some((h) => h.gpus !== undefined);
  if (gpusDivided && spec.worker.env.CUDA_VISIBLE_DEVICES !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['worker', 'env', 'CUDA_VISIBLE_DEVICES'],
      message: 'each worker\'s CUDA_VISIBLE_DEVICES is set from resources.gpus (and local.gpus or mpi.hosts[].gpus), so workers never share a GPU; remove it from worker.env',
    });
  }
  if (spec.cluster === 'kubernetes') refineKubernetesSpec(spec, ctx);
  if (spec.cluster === 'nomad') refineNomadSpec(spec, ctx);
  if (spec.cluster === 'mpi') refineMpiSpec(spec, ctx);
  if (spec.cluster === 'slurm') refineSlurmSpec(spec, ctx);
});

/**
 * On Kubernetes the job master runs in a pod of its own unless the spec says otherwise: the job then outlives
 * the client, and pods need not reach the client's machine. Applied to a raw spec before it is parsed.
 */
export function withPlacementDefault(raw: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw) || raw.cluster !== 'kubernetes') return raw;
  const jm = raw.jobMaster;
  if (jm !== undefined && (!isObject(jm) || jm.placement !== undefined)) return raw;
  return { ...raw, jobMaster: { ...jm, placement: 'cluster' } };
}

export type JobSpecInput = z.input<typeof JobSpecSchema>;
export type JobSpec = z.output<typeof JobSpecSchema>;
export type WorkerProgram = JobSpec['worker'];

/** The inverse of parsing, close enough to re-parse: used to ship the resolved spec in the package. */
export function specToInput(spec: JobSpec): JobSpecInput {
  return {
    ...spec,
    resources: { ...spec.resources },
    uploader: {
      ...spec.uploader,
      ...(spec.uploader.s3 ? { s3: { ...spec.uploader.s3, presignExpiry: formatDuration(spec.uploader.s3.presignExpiry) } } : {}),
    },
    timeouts: {
      registration: formatDuration(spec.timeouts.registration),
      barrier: formatDuration(spec.timeouts.barrier),
      heartbeat: formatDuration(spec.timeouts.heartbeat),
      jobMasterRecovery: formatDuration(spec.timeouts.jobMasterRecovery),
    },
  };
}

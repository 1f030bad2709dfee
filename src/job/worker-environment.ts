import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkerEnvironmentError } from '../errors.js';
import type { JobSpec } from '../spec/schema.js';
import type { PackageRef } from '../uploader/uploader.js';

/**
 * The worker environment contract, in one place: the variable names, how a launcher builds a worker's
 * environment, how the worker runtime reads it, and how the worker's secret travels. docs/protocol.md §6
 * describes it for people. The reader uses no zod: the launcher built the values, so it checks just enough
 * to name a broken variable, and keeps the worker's start-up light.
 */
export const ENV = {
  /** Opt-in, for the bench: a directory where each worker runtime writes where its CPU went (src/worker/phases.ts). */
  phasesDir: 'TWISTER2_PHASES_DIR',
  jobId: 'TWISTER2_JOB_ID',
  cluster: 'TWISTER2_CLUSTER',
  jobMasterUrl: 'TWISTER2_JOB_MASTER_URL',
  /** Instead of the URL: the job master's service in the cluster's own discovery (Nomad). */
  jobMasterService: 'TWISTER2_JOB_MASTER_SERVICE',
  /** The worker token (never the job's admin secret). */
  workerToken: 'TWISTER2_JOB_TOKEN',
  /** Instead of the token: a file of mode 0600 holding it (Slurm keeps a copy of a job's environment). */
  workerTokenFile: 'TWISTER2_JOB_TOKEN_FILE',
  packageRef: 'TWISTER2_PACKAGE_REF',
  registrationTimeoutMs: 'TWISTER2_REGISTRATION_TIMEOUT_MS',
  workerId: 'TWISTER2_WORKER_ID',
  restartCount: 'TWISTER2_RESTART_COUNT',
  workDir: 'TWISTER2_WORK_DIR',
  /** "1": the work dir is this host's scratch for the job, removed by the last worker on the host to end. */
  workDirScratch: 'TWISTER2_WORK_DIR_SCRATCH',
  /** MPI: each host's GPU list and resources.gpus (launchers/gpus.ts GpuPlan, JSON); a rank takes its share as CUDA_VISIBLE_DEVICES. */
  gpuPlan: 'TWISTER2_GPU_PLAN',
  /**
   * Slurm: a restarted worker's predecessor's GPUs (its SLURM_STEP_GPUS, comma-separated): of the GPUs Slurm gives
   * the replacement's step, the worker keeps these alone (launchers/slurm/kept-gpus.ts).
   */
  slurmKeptGpus: 'TWISTER2_SLURM_KEPT_GPUS',
  node: 'TWISTER2_NODE',
  /** "1": the cluster restarts a task that exits even when it succeeded (a Nomad service job), so a finished worker idles until its job ends. */
  idleWhenDone: 'TWISTER2_IDLE_WHEN_DONE',
  // What the runtime adds for a command worker's program.
  numWorkers: 'TWISTER2_NUM_WORKERS',
  workerSession: 'TWISTER2_WORKER_SESSION',
  /** How long the command worker's `twister2 barrier` waits for a restarted job master (ms). */
  jobMasterRecoveryMs: 'TWISTER2_JOB_MASTER_RECOVERY_MS',
  packageDir: 'TWISTER2_PACKAGE_DIR',
  workVolume: 'TWISTER2_WORK_VOLUME',
  /** spec `storage` (README "Storage"): the host's memory-backed dir, its node-local scratch dir, the kept shared dir. */
  memoryDir: 'TWISTER2_MEMORY_DIR',
  scratchDir: 'TWISTER2_SCRATCH_DIR',
  persistentDir: 'TWISTER2_PERSISTENT_DIR',
  /** Where the cluster mounted the job's storage volumes itself (Kubernetes pods): the worker uses them as they are. */
  memoryMount: 'TWISTER2_MEMORY_MOUNT',
  scratchMount: 'TWISTER2_SCRATCH_MOUNT',
  persistentMount: 'TWISTER2_PERSISTENT_MOUNT',
  sharedVolume: 'TWISTER2_SHARED_VOLUME',
  /** Nomad, storage.persistent.hostVolume: its path on each client node that has it (JSON { node ID: path }), and the worker's node ID. */
  hostVolumePaths: 'TWISTER2_HOST_VOLUME_PATHS',
  nodeId: 'TWISTER2_NODE_ID',
  /** Nomad's storage clean-up task (worker/storage-cleanup-main.ts): "1" copies the worker's log into the host volume. */
  copyLogs: 'TWISTER2_COPY_LOGS',
  // Kubernetes pods: the pod's own facts (downward API), from which the runtime derives its ID.
  podName: 'TWISTER2_POD_NAME',
  podIp: 'TWISTER2_POD_IP',
  namespace: 'TWISTER2_NAMESPACE',
  containerIndex: 'TWISTER2_CONTAINER_INDEX',
  workersPerPod: 'TWISTER2_WORKERS_PER_POD',
  workerIdOffset: 'TWISTER2_WORKER_ID_OFFSET',
  k8sRoot: 'TWISTER2_K8S_ROOT',
  k8sAccountDir: 'TWISTER2_K8S_ACCOUNT_DIR',
  /** Nomad: where an orphaned worker purges its job, and deletes the job's variable (the worker token). */
  nomadPurgeUrl: 'TWISTER2_NOMAD_PURGE_URL',
  nomadVariableUrl: 'TWISTER2_NOMAD_VARIABLE_URL',
  // A job master that runs in the cluster.
  /** The job's admin secret, for a job master in a Kubernetes pod only; never given to a worker. */
  jobSecret: 'TWISTER2_JOB_SECRET',
  jobMasterPort: 'TWISTER2_JOB_MASTER_PORT',
  jobSpec: 'TWISTER2_JOB_SPEC',
  jobSpecFile: 'TWISTER2_JOB_SPEC_FILE',
  uploaderSecrets: 'TWISTER2_UPLOADER_SECRETS',
  slurmInAllocation: 'TWISTER2_SLURM_IN_ALLOCATION',
  nomadInAllocation: 'TWISTER2_NOMAD_IN_ALLOCATION',
} as const;

/** The GPUs a worker may use: set by the local and MPI launchers from their GPU lists, by Slurm per task. */
export const CUDA_VISIBLE_DEVICES = 'CUDA_VISIBLE_DEVICES';

/** The worker's GPUs as CUDA_VISIBLE_DEVICES lists them (indexes or UUIDs), for ctx.gpus; undefined when it is not set. */
export function visibleGpus(env: NodeJS.ProcessEnv): string[] | undefined {
  const v = env[CUDA_VISIBLE_DEVICES];
  if (v === undefined) return undefined;
  return v.split(',').map((g) => g.trim()).filter(Boolean);
}

/** Every name twister2 gives a worker starts with this; the spec's worker.env may not use it. */
export const RESERVED_PREFIX = 'TWISTER2_';
/** `TWISTER2_PORT_<NAME>`: a port the runtime picked for a command worker (worker.ports). */
export const PORT_PREFIX = 'TWISTER2_PORT_';
/** The file of mode 0600 in the job directory holding the worker token (Slurm). */
export const WORKER_TOKEN_FILE = 'worker-token';

export function portVariable(name: string): string {
  return PORT_PREFIX + name.toUpperCase().replace(/-/g, '_');
}

/**
 * The token workers hold, derived from the job's admin secret with HMAC-SHA256. Derived rather than
 * generated: whoever has the admin secret (the client, every job master) can compute it, so nothing more
 * has to be stored or handed to a job master, and the worker token does not reveal the admin secret.
 */
export function workerTokenOf(jobSecret: string): string {
  return createHmac('sha256', jobSecret).update('twister2 worker token v1').digest('base64url');
}

/**
 * How the worker token reaches the workers:
 * - `env`: in TWISTER2_JOB_TOKEN (local processes; MPI, whose mpirun forwards it with `-x NAME`, never in argv);
 * - `file`: in a 0600 file named by TWISTER2_JOB_TOKEN_FILE (Slurm, which keeps a copy of the environment);
 * - `cluster`: the cluster injects TWISTER2_JOB_TOKEN from its own secret store (a Kubernetes Secret key, a
 *   Nomad Variable rendered into the task's secrets directory), so nothing is in the environment built here;
 * - `none`: the workers talk to no job master (an MPI program with jobMaster.placement none).
 */
export type SecretTransport = { kind: 'env' } | { kind: 'file'; file: string } | { kind: 'cluster' } | { kind: 'none' };

/** What a launcher knows about the job (a LaunchContext fits). `token` is the admin secret; only the worker token is passed on. */
export interface WorkerEnvironmentSource {
  jobId: string;
  spec: Pick<JobSpec, 'cluster' | 'timeouts'>;
  jobMasterUrl: string;
  packageRef: PackageRef;
  token: string;
}

export interface WorkerEnvironmentOptions {
  secret: SecretTransport;
  /** How workers find the job master; default its URL. */
  jobMaster?: { service: string } | 'none';
  /** Left out where the cluster numbers the processes (MPI rank, Slurm proc ID, Nomad alloc index, pod). */
  workerId?: number;
  restartCount?: number;
  workDir?: { path: string; scratch: boolean };
  /** Variables the launcher sets beyond twister2's own (CUDA_VISIBLE_DEVICES, the MPI GPU plan). */
  extra?: Record<string, string>;
}

/** The environment a launcher gives the worker runtime. */
export function workerEnvironment(src: WorkerEnvironmentSource, opts: WorkerEnvironmentOptions): Record<string, string> {
  const env: Record<string, string> = {
    [ENV.jobId]: src.jobId,
    [ENV.cluster]: src.spec.cluster,
    [ENV.packageRef]: JSON.stringify(src.packageRef),
    [ENV.registrationTimeoutMs]: String(src.spec.timeouts.registration),
  };
  const jm = opts.jobMaster ?? { url: src.jobMasterUrl };
  if (jm !== 'none') {
    if ('service' in jm) env[ENV.jobMasterService] = jm.service;
    else env[ENV.jobMasterUrl] = jm.url;
  }
  if (opts.secret.kind === 'env') env[ENV.workerToken] = workerTokenOf(src.token);
  if (opts.secret.kind === 'file') env[ENV.workerTokenFile] = opts.secret.file;
  if (opts.workerId !== undefined) env[ENV.workerId] = String(opts.workerId);
  if (opts.restartCount !== undefined) env[ENV.restartCount] = String(opts.restartCount);
  if (opts.workDir) {
    env[ENV.workDir] = opts.workDir.path;
    if (opts.workDir.scratch) env[ENV.workDirScratch] = '1';
  }
  Object.assign(env, opts.extra);
  // Passed on from the submitting process (the bench); workers get no other twister2 variable of it.
  const phases = process.env[ENV.phasesDir];
  if (phases) env[ENV.phasesDir] = phases;
  return env;
}

/** Writes the worker token for the `file` transport: `<jobDir>/worker-token`, mode 0600. Returns its path. */
export function writeWorkerTokenFile(jobDir: string, jobSecret: string): string {
  const file = path.join(jobDir, WORKER_TOKEN_FILE);
  writeFileSync(file, workerTokenOf(jobSecret) + '\n', { mode: 0o600 });
  return file;
}

/** The client's environment without another job's twister2 variables (a job submitted from inside a worker). */
export function withoutTwister2Variables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith(RESERVED_PREFIX)));
}

export interface WorkerEnvironment {
  jobId: string;
  jobMasterUrl: string | undefined;
  jobMasterService: string | undefined;
  /** The worker token, from the variable or from its file. */
  token: string;
  /** The launcher's package reference, checked for its shape; the fetcher verifies the package's sha256. */
  packageRef: PackageRef;
  restartCount: number;
  registrationTimeoutMs: number;
  workDir: string;
  scratchWorkDir: boolean;
}

/** What the worker runtime reads from its environment. */
export function readWorkerEnvironment(env: NodeJS.ProcessEnv): WorkerEnvironment {
  const jobId = env[ENV.jobId];
  if (!jobId) throw broken(ENV.jobId, 'is not set');
  const jobMasterUrl = env[ENV.jobMasterUrl] || undefined;
  if (jobMasterUrl !== undefined && !URL.canParse(jobMasterUrl)) throw broken(ENV.jobMasterUrl, `"${jobMasterUrl}" is not a URL`);
  const { workDir, scratch } = workDirOf(env);
  return {
    jobId,
    jobMasterUrl,
    jobMasterService: env[ENV.jobMasterService] || undefined,
    token: workerToken(env),
    packageRef: readPackageRef(env),
    restartCount: wholeNumber(env, ENV.restartCount, 0, 0),
    registrationTimeoutMs: wholeNumber(env, ENV.registrationTimeoutMs, 600_000, 1),
    workDir,
    scratchWorkDir: scratch,
  };
}

/** The launcher's work dir, or by default a scratch directory of the job under the system's temp dir. */
export function workDirOf(env: NodeJS.ProcessEnv): { workDir: string; scratch: boolean } {
  const dir = env[ENV.workDir];
  if (dir) return { workDir: dir, scratch: env[ENV.workDirScratch] === '1' };
  return { workDir: path.join(os.tmpdir(), 'twister2', env[ENV.jobId] ?? 'job'), scratch: true };
}

/**
 * Where storage.persistent.hostVolume is on this worker's Nomad client node: the launcher read the volume's
 * path on every node declaring it when the job was submitted (TWISTER2_HOST_VOLUME_PATHS), Nomad tells the
 * worker its node (TWISTER2_NODE_ID). Undefined for a job without a host volume.
 */
export function hostVolumePathOf(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env[ENV.hostVolumePaths];
  if (!raw) return undefined;
  let paths: Record<string, unknown>;
  try {
    paths = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw broken(ENV.hostVolumePaths, 'is not JSON');
  }
  const node = env[ENV.nodeId] ?? '';
  const at = paths[node];
  if (typeof at !== 'string') {
    throw new WorkerEnvironmentError(
      `storage.persistent.hostVolume has no path known on Nomad client node ${node || '(unknown)'}: the launcher read the volume's path on the nodes that declared it when the job was submitted (${Object.keys(paths).join(', ') || 'none'}); submit the job again to include nodes added since`,
    );
  }
  return at;
}

export function readPackageRef(env: NodeJS.ProcessEnv): PackageRef {
  const raw = env[ENV.packageRef];
  if (!raw) throw broken(ENV.packageRef, 'is not set');
  let ref: Record<string, unknown>;
  try {
    ref = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw broken(ENV.packageRef, 'is not JSON');
  }
  const field = { file: 'path', http: 'url', copied: 'file' }[String(ref?.kind)] as string | undefined;
  const ok = field && typeof ref[field] === 'string' && /^[0-9a-f]{64}$/.test(String(ref.sha256)) && Number.isInteger(ref.size) && (ref.size as number) >= 0;
  if (!ok) throw broken(ENV.packageRef, 'is not a package reference');
  return ref as unknown as PackageRef;
}

function workerToken(env: NodeJS.ProcessEnv): string {
  const direct = env[ENV.workerToken];
  if (direct) {
    if (direct.length < 16) throw broken(ENV.workerToken, 'is too short to be a worker token');
    return direct;
  }
  const file = env[ENV.workerTokenFile];
  if (!file) throw broken(`${ENV.workerToken} or ${ENV.workerTokenFile}`, 'is not set');
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new WorkerEnvironmentError(`cannot read the worker token from ${file} (${ENV.workerTokenFile}): ${(err as Error).message}; the job directory must be on a file system every node shares`);
  }
  if (token.length < 16) throw new WorkerEnvironmentError(`${file} (${ENV.workerTokenFile}) does not hold a worker token`);
  return token;
}

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw broken(name, `"${raw}" is not a whole number from ${min}`);
  return n;
}

function broken(name: string, what: string): WorkerEnvironmentError {
  return new WorkerEnvironmentError(`the worker runtime was started with ${name} that ${what}; it is meant to be started by a twister2 launcher`);
}

/** What the `twister2` CLI inside a command worker reads: where the job master is, the worker token and its session. */
export function readCommandWorkerEnvironment(env: NodeJS.ProcessEnv): { url: string; token: string; workerId: number; session: string; recoveryMs: number } | undefined {
  const url = env[ENV.jobMasterUrl];
  const token = env[ENV.workerToken];
  const id = env[ENV.workerId];
  const session = env[ENV.workerSession];
  if (!url || !token || id === undefined || !session) return undefined;
  return { url, token, workerId: Number(id), session, recoveryMs: Number(env[ENV.jobMasterRecoveryMs]) || 0 };
}

/** The variables the runtime adds for a command worker's program (docs/protocol.md §6). */
export function commandWorkerVariables(w: {
  jobMasterUrl: string;
  token: string;
  workerId: number;
  numWorkers: number;
  session: string;
  restartCount: number;
  packageDir: string;
  volumes: { work: string; shared: string };
  storage: WorkerStorage;
  ports: Record<string, number>;
  recoveryMs: number;
}): Record<string, string> {
  return {
    [ENV.jobMasterRecoveryMs]: String(w.recoveryMs),
    [ENV.workerToken]: w.token,
    [ENV.jobMasterUrl]: w.jobMasterUrl,
    [ENV.workerId]: String(w.workerId),
    [ENV.numWorkers]: String(w.numWorkers),
    [ENV.workerSession]: w.session,
    [ENV.restartCount]: String(w.restartCount),
    [ENV.packageDir]: w.packageDir,
    [ENV.workVolume]: w.volumes.work,
    [ENV.sharedVolume]: w.volumes.shared,
    ...storageVariables(w.storage),
    ...Object.fromEntries(Object.entries(w.ports).map(([name, port]) => [portVariable(name), String(port)])),
  };
}

/** The directories of spec `storage` a worker gets (ctx.storage); memory and persistent only where the spec asks for them. */
export interface WorkerStorage {
  readonly memory: string | undefined;
  readonly scratch: string;
  readonly persistent: string | undefined;
}

/** TWISTER2_MEMORY_DIR, TWISTER2_SCRATCH_DIR, TWISTER2_PERSISTENT_DIR: each only for a directory the worker has. */
export function storageVariables(s: WorkerStorage): Record<string, string> {
  return {
    ...(s.memory !== undefined ? { [ENV.memoryDir]: s.memory } : {}),
    [ENV.scratchDir]: s.scratch,
    ...(s.persistent !== undefined ? { [ENV.persistentDir]: s.persistent } : {}),
  };
}

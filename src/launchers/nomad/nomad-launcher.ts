import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { files } from '../../job/job-store.js';
import { NomadSpecSchema, type NomadSpec } from './section.js';
import type { JobSpec } from '../../spec/schema.js';
import type { JobEnding, LaunchContext, Launcher, LauncherListener, ResumedWorker } from '../launcher.js';
import { ENV, workerEnvironment, workerTokenOf } from '../../job/worker-environment.js';
import { AllocationLogs, type LogProgress } from './allocation-logs.js';
import { allocationIndex, jobMasterServiceName, nomadJob, tokenVariablePath, WORKER_GROUP, WORKER_TASK, type NomadJobInput } from './job-builder.js';
import { hostVolumePaths } from './host-volumes.js';
import { NomadApi, type NomadAllocation } from './nomad-api.js';
import { oneLine, registerNomadJob, removeNomadJob } from './registration.js';

const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.js', import.meta.url));
const STORAGE_CLEANUP_MAIN = fileURLToPath(new URL('../../worker/storage-cleanup-main.js', import.meta.url));
/** Where the worker runtime is inside a docker worker image (see docker/worker.Dockerfile). */
const IMAGE_WORKER = ['node', '/opt/twister2/dist/worker/main.js'];
const POLL_MS = 500;
/** Keys of LauncherListener.remember for how far a worker's log file was written (LogProgress), with the worker ID. */
const LOG_OFFSET = 'nomad-log:';
/** Set in the job master's task when it runs as an allocation of the job. */
export const IN_ALLOCATION_ENV = ENV.nomadInAllocation;
const FATAL_TASK_EVENTS = new Set(['Driver Failure', 'Failed Validation', 'Setup Failure', 'Failed Artifact Download']);
const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export function nomadSection(spec: JobSpec): NomadSpec {
  return spec.nomad ?? NomadSpecSchema.parse({});
}

/**
 * Runs the job as a Nomad job registered through the HTTP API: one task group whose allocation index is
 * the worker ID. Nomad restarts a failed task inside its allocation (same index), so this launcher has no
 * restartWorker: it reports the task's exit, and the job master waits for the same ID to register again.
 * The allocations are polled for task events (exits) and their logs are followed into the job's logs.
 * Release stops the job, waits until every allocation is terminal, purges it and deletes its variable.
 */
export class NomadLauncher implements Launcher {
  private ctx: LaunchContext | undefined;
  private api: NomadApi | undefined;
  private listener: LauncherListener | undefined;
  private jobId = '';
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private allocated = false;
  private releasing = false;
  private released: Promise<void> | undefined;
  /** Per allocation: the time of the last task event already handled. */
  private readonly lastEvent = new Map<string, number>();
  private readonly reportedTerminal = new Set<string>();
  private logs: AllocationLogs | undefined;
  /** Worker IDs removed by scaling down: their allocations' ends are expected. */
  private readonly removed = new Set<number>();
  private count = 0;
  private registered = false;
  /** A restarted job master: task events before this time (ns) were its predecessor's to handle. */
  private since = 0;
  /** A restarted job master: how far its predecessor read each allocation's logs. */
  private logOffsets: Map<string, LogProgress> | undefined;
  private resumedCount: number | undefined;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    this.ctx = ctx;
    this.listener = listener;
    this.jobId = ctx.jobId;
    this.count = this.resumedCount ?? ctx.spec.workers;
    const nomad = nomadSection(ctx.spec);
    const api = (this.api = new NomadApi(nomad, this.env));
    mkdirSync(path.join(ctx.jobDir, files.logs), { recursive: true });
    const remember = listener.remember?.bind(listener);
    this.logs = new AllocationLogs(api, WORKER_TASK, path.join(ctx.jobDir, files.logs), {
      ...(this.logOffsets ? { from: this.logOffsets } : {}),
      ...(remember ? { progress: (workerId: string, p: LogProgress) => remember(`${LOG_OFFSET}${workerId}`, p) } : {}),
    });
    if (!inAllocation(this.env)) {
      // With the job master in the cluster, the client registered the whole job already (placement.ts).
      const job = (await nomadJobFor(ctx, nomad, api, this.env)) as { ID: string };
      const { unplaced } = await registerNomadJob(api, nomad, job, workerTokenOf(ctx.token), () => (this.registered = true));
      if (unplaced) listener.queued?.(`Nomad could not place every allocation yet: ${unplaced}`);
    }
    if (this.releasing) return;
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    void this.poll();
  }

  /**
   * A job master restarted in its allocation (jobMaster.placement: cluster): the job is registered and
   * runs; follow its allocations again, from the events and log offsets the crashed one had reached.
   */
  async resume(ctx: LaunchContext, listener: LauncherListener, workers: ResumedWorker[], remembered: Record<string, unknown>): Promise<void> {
    if (!inAllocation(this.env)) throw new Error('only a job master in its Nomad allocation is restarted');
    this.since = Date.now() * 1e6;
    // Keyed by worker ID (an earlier version's per-stream entries are left out: those files are read again whole).
    this.logOffsets = new Map(
      Object.entries(remembered).flatMap(([k, v]) => {
        const workerId = k.slice(LOG_OFFSET.length);
        return k.startsWith(LOG_OFFSET) && /^\d+$/.test(workerId) ? [[workerId, v as LogProgress] as const] : [];
      }),
    );
    this.resumedCount = workers.length;
    await this.start(ctx, listener);
  }

  async addWorkers(ids: number[]): Promise<void> {
    this.count += ids.length;
    await this.api!.scale(this.jobId, WORKER_GROUP, this.count);
  }

  /** Nomad stops the highest allocation indexes when a group's count goes down: exactly the IDs scaling removes. */
  async removeWorkers(ids: number[]): Promise<void> {
    for (const id of ids) this.removed.add(id);
    this.count -= ids.length;
    await this.api!.scale(this.jobId, WORKER_GROUP, this.count);
  }

  release(_ending?: JobEnding): Promise<void> {
    this.releasing = true;
    this.released ??= this.doRelease();
    return this.released;
  }

  private async doRelease(): Promise<void> {
    clearInterval(this.poller);
    const api = this.api;
    // Nothing to remove if the job never reached Nomad (refused, unreachable); in an allocation it always did.
    if (!api || !this.jobId || !(this.registered || inAllocation(this.env))) return;
    try {
      // A job master in the job's own allocation is stopped with it: it waits only for the workers, and has
      // its kill timeout to purge the job and write the final status.
      await removeNomadJob(api, this.jobId, { groups: [WORKER_GROUP], afterStop: () => this.finishLogs() });
    } finally {
      await this.logs?.finish();
    }
  }

  /** Reads the rest of every worker allocation's logs (stopped, not yet purged), also those no poll saw. */
  private async finishLogs(): Promise<void> {
    if (!this.logs) return;
    const allocs = await this.api!.allocations(this.jobId).catch(() => []);
    for (const a of allocs) {
      const workerId = allocationIndex(a.Name);
      if (a.TaskGroup === WORKER_GROUP && workerId !== undefined && a.ClientStatus !== 'pending') this.logs.include(a.ID, workerId);
    }
    await this.logs.finish();
  }

  private async poll(): Promise<void> {
    if (this.polling || this.releasing) return;
    this.polling = true;
    try {
      const allocs = (await this.api!.allocations(this.jobId)).filter((a) => a.TaskGroup === WORKER_GROUP);
      if (this.releasing) return;
      for (const alloc of allocs) this.observe(alloc);
    } catch {
      // A missed poll is retried; the job master's heartbeats still catch dead workers.
    } finally {
      this.polling = false;
    }
  }

  /** Removed by scaling down: its allocation's end is expected. Nomad stops the highest indexes, so any above the size (a scale-down under way when a restarted job master took over). */
  private isRemoved(workerId: number): boolean {
    return this.removed.has(workerId) || workerId >= this.count;
  }

  private observe(alloc: NomadAllocation): void {
    const workerId = allocationIndex(alloc.Name);
    if (workerId === undefined) return;
    if (alloc.ClientStatus !== 'pending') this.logs?.follow(alloc.ID, workerId);
    if (alloc.ClientStatus === 'running' && !this.allocated) {
      this.allocated = true;
      this.listener!.allocated?.();
    }
    const state = alloc.TaskStates?.[WORKER_TASK];
    const last = this.lastEvent.get(alloc.ID) ?? this.since;
    for (const e of state?.Events ?? []) {
      if (e.Time <= last) continue;
      this.lastEvent.set(alloc.ID, e.Time);
      if (FATAL_TASK_EVENTS.has(e.Type)) {
        // Nomad's own words: a task that cannot start never will (bad driver config, missing driver...).
        this.listener!.clusterEnded?.(`Nomad could not start worker ${workerId} (allocation ${alloc.ID.slice(0, 8)}): ${e.Type}: ${oneLine(e.DisplayMessage ?? e.Details?.driver_error ?? e.Details?.validation_error ?? '')}`.trim());
        continue;
      }
      if (e.Type !== 'Terminated' || this.isRemoved(workerId)) continue;
      const code = Number(e.Details?.exit_code ?? e.ExitCode ?? 0);
      const signal = Number(e.Details?.signal ?? e.Signal ?? 0);
      if (code !== 0 || signal !== 0) this.listener!.workerExited({ workerId, code: signal ? null : code, signal: signal ? (SIGNAL_NAMES.get(signal) ?? null) : null });
    }
    if (alloc.ClientStatus === 'lost' && !this.reportedTerminal.has(alloc.ID) && !this.isRemoved(workerId)) {
      this.reportedTerminal.add(alloc.ID);
      this.listener!.workerExited({ workerId, code: null, signal: null });
    }
  }
}


/** True in the job master that runs as an allocation of the job (jobMaster.placement: cluster). */
export function inAllocation(env: NodeJS.ProcessEnv): boolean {
  return env[IN_ALLOCATION_ENV] === '1' && Boolean(env.NOMAD_ALLOC_ID);
}

/**
 * The Nomad job for a twister2 job. Workers get the worker runtime's environment without a token (a
 * template reads the worker token from the job's variable), and with a job master in the cluster, its
 * service name instead of its address.
 */
export async function nomadJobFor(ctx: LaunchContext, nomad: NomadSpec, api: NomadApi, env: NodeJS.ProcessEnv, jobMaster?: { command: string[] }): Promise<Record<string, unknown>> {
  const service = jobMasterServiceName(ctx.jobId);
  const workerEnv = workerEnvironment(ctx, {
    secret: { kind: 'cluster' },
    workDir: { path: path.join('/tmp', 'twister2', ctx.jobId), scratch: true },
    ...(jobMaster ? { jobMaster: { service } } : {}),
  });
  const hostEnv: Record<string, string> = {};
  if (nomad.driver !== 'docker') for (const k of ['PATH', 'HOME', 'LANG']) if (env[k]) hostEnv[k] = env[k]!;
  Object.assign(workerEnv, hostEnv, {
    // Workers that lose their job master (client killed) stop and purge the job themselves: nothing else would.
    [ENV.nomadPurgeUrl]: `${api.address}/v1/job/${encodeURIComponent(ctx.jobId)}?purge=true${api.scopeQuery()}`,
    [ENV.nomadVariableUrl]: `${api.address}/v1/var/${tokenVariablePath(ctx.jobId)}?${api.scopeQuery().slice(1)}`,
    // Nomad restarts a service job's task whatever its exit code.
    ...(nomad.type === 'service' ? { [ENV.idleWhenDone]: '1' } : {}),
    // Nomad interpolates it: the worker reports the client node it was placed on, not the host's name.
    [ENV.node]: '${node.unique.name}',
  });
  if (jobMaster) Object.assign(workerEnv, { NOMAD_ADDR: api.address, ...(nomad.namespace ? { NOMAD_NAMESPACE: nomad.namespace } : {}) });
  return nomadJob({
    jobId: ctx.jobId,
    spec: ctx.spec,
    nomad,
    env: workerEnv,
    workerCommand: nomad.driver === 'docker' ? IMAGE_WORKER : [process.execPath, WORKER_MAIN],
    ...(await storageInput(ctx.spec, api)),
    ...(jobMaster ? { jobMaster: { command: jobMaster.command, service, env: { ...hostEnv, [IN_ALLOCATION_ENV]: '1', NOMAD_ADDR: api.address } } } : {}),
  });
}

/** spec `storage`: the clean-up task's command, and the host volume's path on each node declaring it (read now, at submit). */
async function storageInput(spec: JobSpec, api: NomadApi): Promise<Pick<NomadJobInput, 'storage'>> {
  if (!spec.storage) return {};
  const volume = spec.storage.persistent?.hostVolume;
  const hostVolume = volume ? { hostVolumePaths: hostVolumePaths(await api.nodes(), volume) } : {};
  return { storage: { cleanupCommand: [process.execPath, STORAGE_CLEANUP_MAIN], ...hostVolume } };
}

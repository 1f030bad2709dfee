import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { files } from '../../job/job-store.js';
import { LauncherError } from '../../errors.js';
import { kubernetesSection, type KubernetesSpec } from './section.js';
import type { LaunchContext, Launcher, LauncherListener, ResumedWorker } from '../launcher.js';
import type { PackageRef } from '../../uploader/uploader.js';
import { TaggedOutputSplitter } from '../mpi/tagged-output.js';
import { deleteJob, deleteRoot, kubeApi, scaleStatefulSet, untilNoneLeft, workerPodsLeft, type KubeApi } from './kube-api.js';
import { jobNames, jobSelector, podOrdinal, workerId } from './names.js';
import { createJobObjects } from './job-creation.js';
import { k8sJob, MPIRUN_EXIT_LINE, type K8sJob } from './objects/index.js';
import { COPIED_PACKAGE, PodPackageCopier } from './package-copy.js';
import { followWorkerPod, PodLogFollower, workerContainerIndex } from './pod-logs.js';

const POLL_MS = 500;
/** How long an in-cluster job master waits for the worker pods to go once it scaled them to 0. */
const STOP_TIMEOUT_MS = 60_000;
/** With the job master in the client, the longest wait at the end for logs still on their way (workers of a killed job may keep writing). */
const CLIENT_DRAIN_MAX_MS = 5000;
/** Keys of LauncherListener.remember: runs of a worker container whose end was reported; pods the package was copied into. */
const RUNS_KEY = 'k8s-runs:';
const COPIED_KEY = 'k8s-copied:';

/** A worker container's runs (0, 1, ... as its restartCount counts them) seen so far. */
interface ContainerRuns {
  /** The first run whose end is not reported yet. */
  next: number;
  /** The run the pod's status was last about. */
  current: number;
}

interface PodSeen {
  uid: string;
  containers: Map<string, ContainerRuns>;
}

/**
 * Runs the job's workers as a StatefulSet (one per worker group, Parallel pod management) in a namespace.
 * The root ConfigMap is created first and owns every other object, so release is one delete: Kubernetes'
 * garbage collector removes the rest, and release waits until nothing labelled with the job is left.
 * Kubernetes restarts containers and recreates deleted pods by itself (same ordinal, same worker IDs), so
 * there is no restartWorker: the end of every run of a worker container (terminated, or restarted since) and
 * of a vanished pod's is reported once as a worker exit naming the run, and the job master waits for the
 * same IDs to register again. Unschedulable pods show the job as QUEUED with the
 * scheduler's message.
 */
export class KubernetesLauncher implements Launcher {
  private api: KubeApi | undefined;
  private job: K8sJob | undefined;
  private k8s: KubernetesSpec | undefined;
  private listener: LauncherListener | undefined;
  private rootName = '';
  private jobId = '';
  private replicas = 0;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private queuedShown = false;
  private releasing = false;
  private released: Promise<void> | undefined;
  private readonly pods = new Map<string, PodSeen>();
  private logs: PodLogFollower | undefined;
  private copier: PodPackageCopier | undefined;
  /** OpenMPI mode: mpirun's output (pod 0's log) split by rank. */
  private mpirun: TaggedOutputSplitter | undefined;
  private readonly inCluster: boolean;
  private releaseHold: () => Promise<unknown> = async () => undefined;
  /** A restarted job master: per `podUid/container`, the runs whose end its predecessor reported. */
  private readonly reportedRuns = new Map<string, number>();
  /** A restarted job master: pods (uids) its predecessor copied the package into. */
  private readonly copiedBefore: string[] = [];

  /**
   * `inCluster`: this is the job master in its pod (in-cluster-jobmaster.ts), with the pod's service account;
   * the client created every object already, so start() only begins following the workers.
   */
  constructor(opts: { inCluster?: boolean } = {}) {
    this.inCluster = opts.inCluster ?? false;
  }

  /** In its pod: release() (which ends this pod too) first waits for `until()`, e.g. for a client to learn how the job ended. */
  holdRelease(until: () => Promise<unknown>): void {
    this.releaseHold = until;
  }

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    this.listener = listener;
    this.jobId = ctx.jobId;
    const k8s = (this.k8s = kubernetesSection(ctx.spec));
    const api = (this.api = kubeApi(k8s, { inCluster: this.inCluster }));
    const logsDir = path.join(ctx.jobDir, files.logs);
    mkdirSync(logsDir, { recursive: true });
    const note = (line: string) => appendFileSync(path.join(logsDir, 'kubernetes.log'), `${new Date().toISOString()} ${line}\n`);
    this.logs = new PodLogFollower(api.kc, api.namespace, logsDir, note);
    const remember = listener.remember?.bind(listener);
    if (k8s.openmpi) this.mpirun = new TaggedOutputSplitter(logsDir, (line) => this.mpirunLine(line));
    // uploader.kind local: no server to fetch from, so the job master copies the package into each pod itself.
    let packageRef: PackageRef = ctx.packageRef;
    if (ctx.spec.uploader.kind === 'local' && packageRef.kind === 'file') {
      this.copier = new PodPackageCopier(api.kc, api.namespace, { file: packageRef.path, size: packageRef.size }, note, (m) => listener.clusterEnded?.(m), {
        before: this.copiedBefore,
        ...(remember ? { copied: (uid: string) => remember(`${COPIED_KEY}${uid}`, true) } : {}),
      });
      packageRef = { kind: 'copied', file: COPIED_PACKAGE, sha256: packageRef.sha256, size: packageRef.size };
    }
    this.replicas = ctx.spec.workers / k8s.workersPerPod;
    if (this.inCluster) {
      this.rootName = jobNames(ctx.jobId).root;
      // Only names and the spec are read from here on; the owner reference goes into objects this side never creates.
      this.job = k8sJob(ctx.jobId, ctx.spec, { apiVersion: 'v1', kind: 'ConfigMap', name: this.rootName, uid: '' });
      this.poller = setInterval(() => void this.poll(), POLL_MS);
      return;
    }
    // Anything created after the root is owned by it: a failure here is cleaned up by release().
    const created = await createJobObjects(api, { ...ctx, packageRef }, { onRoot: (name) => (this.rootName = name), stopped: () => this.releasing });
    if (!created) return;
    this.job = created.job;
    this.poller = setInterval(() => void this.poll(), POLL_MS);
  }

  /**
   * The job master restarted in its pod (the kubelet restarted its container; its journal is in the pod's
   * emptyDir): the workers' pods run on, so this follows them again. Runs whose end its predecessor
   * reported are not reported again, pods it copied the package into get no second copy (both remembered);
   * its copies of the workers' logs are written anew from the API, which keeps each container's current
   * and previous run.
   */
  async resume(ctx: LaunchContext, listener: LauncherListener, _workers: ResumedWorker[], remembered: Record<string, unknown>): Promise<void> {
    if (!this.inCluster) throw new LauncherError('only a job master in its pod is restarted');
    for (const [key, value] of Object.entries(remembered)) {
      if (key.startsWith(RUNS_KEY)) this.reportedRuns.set(key.slice(RUNS_KEY.length), value as number);
      if (key.startsWith(COPIED_KEY)) this.copiedBefore.push(key.slice(COPIED_KEY.length));
    }
    const logsDir = path.join(ctx.jobDir, files.logs);
    for (const f of existsSync(logsDir) ? readdirSync(logsDir) : []) if (/^worker-\d+\.log$/.test(f)) rmSync(path.join(logsDir, f), { force: true });
    await this.start(ctx, listener);
  }

  /** An untagged line of pod 0's log: mpirun's exit status ends the job when the ranks did not. */
  private mpirunLine(line: string): void {
    const status = line.startsWith(MPIRUN_EXIT_LINE) ? Number(line.slice(MPIRUN_EXIT_LINE.length).trim()) : undefined;
    if (status !== undefined && status !== 0 && !this.releasing) {
      this.listener?.clusterEnded?.(`mpirun in pod ${this.job!.names.workerPod(0, 0)} exited with status ${status} (its output: logs/mpirun.log)`);
    }
  }

  async addWorkers(ids: number[]): Promise<void> {
    await this.scaleTo(this.replicas + this.podsOf(ids));
  }

  async removeWorkers(ids: number[]): Promise<void> {
    await this.scaleTo(this.replicas - this.podsOf(ids));
  }

  release(): Promise<void> {
    this.releasing = true;
    this.released ??= this.doRelease();
    return this.released;
  }

  private async doRelease(): Promise<void> {
    clearInterval(this.poller);
    this.copier?.stop();
    const api = this.api;
    if (!api || !this.rootName) return;
    if (!this.inCluster) {
      // The pods still run: a worker's last line may reach its container log just after its completion
      // reached the job master (seen in CI: a finished worker's last line missing from the client's output).
      await this.logs?.close({ drain: true, drainMaxMs: CLIENT_DRAIN_MAX_MS });
      await this.mpirun?.close();
      await deleteJob(api, this.jobId, this.rootName);
      return;
    }
    // In its pod, the job master's rights go with the root (the garbage collector deletes its Role too), and
    // its own pod goes only after it: it stops the workers while it can still see them, then deletes the root.
    // The client waits until nothing is left.
    await this.releaseHold();
    try {
      await scaleStatefulSet(api, jobNames(this.jobId).workers(0), 0);
      const left = await untilNoneLeft(() => workerPodsLeft(api, this.jobId), STOP_TIMEOUT_MS);
      if (left.length > 0) throw new LauncherError(`worker pods still there ${STOP_TIMEOUT_MS / 1000}s after their StatefulSet was scaled to 0: ${left.join(', ')}`);
    } finally {
      await this.logs?.close();
      await this.mpirun?.close();
      await deleteRoot(api, this.rootName);
    }
  }

  /** Worker counts change by whole pods (the job master asked the capabilities first: registry.ts). */
  private podsOf(ids: number[]): number {
    return ids.length / this.k8s!.workersPerPod;
  }

  private async scaleTo(replicas: number): Promise<void> {
    const api = this.api!;
    const name = this.job!.names.workers(0);
    await scaleStatefulSet(api, name, replicas);
    this.replicas = replicas;
  }

  private async poll(): Promise<void> {
    if (this.polling || this.releasing) return;
    this.polling = true;
    try {
      const api = this.api!;
      const list = await api.core.listNamespacedPod({ namespace: api.namespace, labelSelector: jobSelector(this.jobId, 'worker') });
      if (this.releasing) return;
      this.observe(list.items);
    } catch {
      // A missed poll is retried; heartbeats still catch dead workers.
    } finally {
      this.polling = false;
    }
  }

  private observe(pods: V1Pod[]): void {
    const wpp = this.k8s!.workersPerPod;
    const present = new Set<string>();
    const unschedulable: string[] = [];
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      const uid = pod.metadata?.uid ?? '';
      const ordinal = podOrdinal(name);
      if (ordinal === undefined || pod.metadata?.deletionTimestamp) continue;
      present.add(name);
      const seen = this.pods.get(name);
      if (seen && seen.uid !== uid) this.podGone(name, ordinal);
      const cur = this.pods.get(name) ?? { uid, containers: new Map<string, ContainerRuns>() };
      this.pods.set(name, cur);
      const running = pod.status?.containerStatuses?.find((c) => c.state?.running);
      if (running) this.copier?.copyInto({ name, uid }, running.name);
      const containers = pod.status?.containerStatuses ?? [];
      if (this.logs) followWorkerPod(this.logs, { name, uid, ordinal, containers }, (i) => workerId(ordinal, i, wpp), this.mpirun);
      // OpenMPI: ranks are not restarted one by one; mpirun's exit status ends the job.
      if (this.mpirun) continue;
      for (const c of containers) {
        const index = workerContainerIndex(c.name);
        if (index === undefined) continue;
        const runs = cur.containers.get(c.name) ?? { next: this.reportedRuns.get(`${uid}/${c.name}`) ?? 0, current: c.restartCount };
        cur.containers.set(c.name, runs);
        runs.current = c.restartCount;
        const reported = runs.next;
        // A run that ended: terminated, backing off before its restart (lastState), or restarted since.
        const endedThrough = c.state?.terminated || (c.state?.waiting && c.lastState?.terminated) ? c.restartCount : c.restartCount - 1;
        for (; runs.next <= endedThrough; runs.next++) {
          // Pods beyond the replicas were removed by a scale-down: their ends are expected.
          if (ordinal < this.replicas) this.listener!.workerExited({ workerId: workerId(ordinal, index, wpp), ...runEnd(c, runs.next), run: `${uid}/${c.name}/${runs.next}` });
        }
        if (runs.next !== reported) this.listener!.remember?.(`${RUNS_KEY}${uid}/${c.name}`, runs.next);
      }
      const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
      if (sched?.status === 'False' && sched.reason === 'Unschedulable') unschedulable.push(`${name}: ${sched.message ?? 'unschedulable'}`);
    }
    for (const name of [...this.pods.keys()]) {
      const ordinal = podOrdinal(name)!;
      if (this.mpirun) continue;
      if (!present.has(name) && ordinal < this.replicas) this.podGone(name, ordinal);
      else if (!present.has(name)) this.pods.delete(name);
    }
    if (unschedulable.length > 0) {
      this.queuedShown = true;
      this.listener!.queued?.(`the Kubernetes scheduler cannot place ${unschedulable.length} pod${unschedulable.length === 1 ? '' : 's'} yet: ${unschedulable[0]}`);
    } else if (this.queuedShown) {
      this.queuedShown = false;
      this.listener!.allocated?.();
    }
  }

  /**
   * A pod that vanished or was replaced took its workers with it (their current runs, unless reported as
   * ended already); the StatefulSet brings the same ordinal back.
   */
  private podGone(name: string, ordinal: number): void {
    const seen = this.pods.get(name);
    this.pods.delete(name);
    const wpp = this.k8s!.workersPerPod;
    for (let c = 0; c < wpp; c++) {
      const runs = seen?.containers.get(`worker-${c}`);
      if (runs && runs.next > runs.current) continue;
      // The kubelet stops a deleted pod's containers with SIGTERM.
      const run = runs ? { run: `${seen!.uid}/worker-${c}/${runs.current}` } : {};
      this.listener!.workerExited({ workerId: workerId(ordinal, c, wpp), code: null, signal: 'SIGTERM', ...run });
    }
  }
}

/** How one run of a container ended, as far as its status tells (only the last two runs are in it). */
function runEnd(c: V1ContainerStatus, run: number): { code: number | null; signal: null } {
  const t = run === c.restartCount ? (c.state?.terminated ?? c.lastState?.terminated) : run === c.restartCount - 1 ? c.lastState?.terminated : undefined;
  return { code: t?.exitCode ?? null, signal: null };
}

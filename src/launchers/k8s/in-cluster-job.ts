import { readFileSync } from 'node:fs';
import path from 'node:path';
import { files, readFinalStatus, writeJson } from '../../job/job-store.js';
import { JobMasterUnreachableError } from '../../errors.js';
import type { JobStatus } from '../../protocol/messages.js';
import { kubernetesSection, type KubernetesSpec } from './section.js';
import { parseSpec } from '../../spec/validate.js';
import { TaggedOutputSplitter } from '../mpi/tagged-output.js';
import { findJobEnd } from './job-end-event.js';
import { jobObjectsLeft, kubeApi, untilNoneLeft, type KubeApi } from './kube-api.js';
import { jobSelector, podOrdinal, workerId } from './names.js';
import { DriverLinesFromJobMaster } from './driver-lines.js';
import { JOB_MASTER_CONTAINER } from './objects/index.js';
import { followWorkerPod, PodLogFollower } from './pod-logs.js';

const POLL_MS = 1000;
const GONE_TIMEOUT_MS = 90_000;

/**
 * A job whose job master runs in a pod, seen from the client: the job master's logs and final status stay
 * in its pod, which goes with the job. So the client follows the worker pods' logs into its own job dir
 * (what `twister2 logs` and `submit` print), and at the end waits until the API lists no object of the
 * job, then records the final status the job master reported.
 */
export class InClusterJob {
  private readonly api: KubeApi;
  private readonly k8s: KubernetesSpec;
  /** The job's driver runs in the job master's pod: its lines are taken from that pod's log. */
  private readonly hasDriver: boolean;
  private logs: PodLogFollower | undefined;
  private mpirun: TaggedOutputSplitter | undefined;
  private driver: DriverLinesFromJobMaster | undefined;
  private poller: NodeJS.Timeout | undefined;
  /** Status writes one after the other: a job handle's status() and wait() may both record the end at once. */
  private recording: Promise<void> = Promise.resolve();

  constructor(
    private readonly jobId: string,
    private readonly jobDir: string,
    where: { kubeconfig?: string | undefined; context?: string | undefined; namespace: string },
  ) {
    const spec = parseSpec(JSON.parse(readFileSync(path.join(jobDir, files.spec), 'utf8')), files.spec);
    this.k8s = kubernetesSection(spec);
    this.hasDriver = spec.driver !== undefined;
    this.api = kubeApi({ ...this.k8s, namespace: where.namespace, kubeconfig: where.kubeconfig, context: where.context });
  }

  /** Starts following the worker pods' logs (idempotent). */
  mirrorLogs(): void {
    if (this.logs) return;
    const logsDir = path.join(this.jobDir, files.logs);
    const logs = (this.logs = new PodLogFollower(this.api.kc, this.api.namespace, logsDir, () => undefined));
    const mpirun = (this.mpirun = this.k8s.openmpi ? new TaggedOutputSplitter(logsDir, () => undefined) : undefined);
    const driver = (this.driver = this.hasDriver ? new DriverLinesFromJobMaster(logsDir) : undefined);
    let polling = false;
    const poll = async () => {
      if (polling) return;
      polling = true;
      await this.followPods(logs, mpirun, driver).catch(() => undefined); // tried again at the next poll
      polling = false;
    };
    void poll();
    this.poller = setInterval(() => void poll(), POLL_MS);
  }

  /**
   * The worker pods' logs as the API server has them now, written into `logsDir` as `logs/` is (what
   * `twister2 logs` without -f prints). False when the API lists no worker pod of the job.
   */
  async logsNow(logsDir: string): Promise<boolean> {
    const logs = new PodLogFollower(this.api.kc, this.api.namespace, logsDir, () => undefined, true);
    const mpirun = this.k8s.openmpi ? new TaggedOutputSplitter(logsDir, () => undefined) : undefined;
    const driver = this.hasDriver ? new DriverLinesFromJobMaster(logsDir) : undefined;
    const pods = await this.followPods(logs, mpirun, driver).catch(() => 0);
    await logs.close();
    await mpirun?.close();
    await driver?.close();
    return pods > 0;
  }

  /** Hands every worker pod the API lists to `logs` (and the job master's, for the driver's lines); returns how many worker pods there were. */
  private async followPods(logs: PodLogFollower, mpirun: TaggedOutputSplitter | undefined, driver: DriverLinesFromJobMaster | undefined): Promise<number> {
    if (driver) {
      const jm = await this.api.core.listNamespacedPod({ namespace: this.api.namespace, labelSelector: jobSelector(this.jobId, 'jobmaster') });
      for (const pod of jm.items) {
        for (const c of pod.status?.containerStatuses ?? []) {
          if (c.name !== JOB_MASTER_CONTAINER || (!c.state?.running && !c.state?.terminated)) continue;
          logs.follow({ name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' }, c.name, c.restartCount, { driver });
        }
      }
    }
    const wpp = this.k8s.workersPerPod;
    const list = await this.api.core.listNamespacedPod({ namespace: this.api.namespace, labelSelector: jobSelector(this.jobId, 'worker') });
    for (const pod of list.items) {
      const name = pod.metadata?.name ?? '';
      const ordinal = podOrdinal(name);
      if (ordinal === undefined) continue;
      const containers = pod.status?.containerStatuses ?? [];
      followWorkerPod(logs, { name, uid: pod.metadata?.uid ?? '', ordinal, containers }, (i) => workerId(ordinal, i, wpp), mpirun);
    }
    return list.items.length;
  }

  /**
   * For a job whose job master no longer answers, which ended while no client followed it (or before the
   * client first got through): the final status its job master left in an Event, recorded as the job's once
   * nothing of the job is left; or, with every object gone and the event expired or unreadable, why how it
   * ended is not known. Undefined while objects of the job are still listed and no such event is.
   */
  async endedUnseen(): Promise<{ status: JobStatus } | { unknown: string } | undefined> {
    // Objects first: the job master records the event before it deletes the root, so with nothing left, a
    // recorded end is listed by then.
    const left = await jobObjectsLeft(this.api, this.jobId).catch(() => undefined);
    const recorded = await findJobEnd(this.api, this.jobId).catch(() => undefined);
    if (recorded) {
      if (left?.length === 0) await this.record(recorded);
      return { status: recorded };
    }
    if (!left || left.length > 0) return undefined;
    return {
      unknown: `job ${this.jobId} ended while no client followed it: its job master ran in a pod, which went with the job, and no Event of the job (kept for the API server's --event-ttl, 1 h by default) says how it ended; nothing of the job is left in namespace "${this.api.namespace}"`,
    };
  }

  /**
   * After the job ended: waits until nothing of the job is left in the namespace, reads the logs to their
   * end and records `last` (the job master's final status, else the one it left in an Event) as the job's.
   * Without either the job master went away before it said how the job ended.
   */
  async finish(last: JobStatus | undefined): Promise<JobStatus> {
    const recorded = await readFinalStatus(this.jobDir);
    if (recorded) return recorded;
    // A list that fails counts as what was listed before.
    let listed: string[] = [];
    const left = await untilNoneLeft(async () => (listed = await jobObjectsLeft(this.api, this.jobId).catch(() => listed)), GONE_TIMEOUT_MS);
    clearInterval(this.poller);
    // The pods are gone: what their logs still had is on its way in the follows, or lost.
    await this.logs?.close({ drain: true });
    await this.mpirun?.close();
    await this.driver?.close();
    // The job master went before this client heard how the job ended (it was slow, or was stopped): the event says.
    last ??= await findJobEnd(this.api, this.jobId).catch(() => undefined);
    if (!last) {
      throw new JobMasterUnreachableError(
        `the job master pod of ${this.jobId} went away without saying how the job ended${left.length ? `; still in namespace "${this.api.namespace}": ${left.join(', ')}` : '; nothing of the job is left in the cluster'}`,
      );
    }
    const status: JobStatus = left.length === 0 ? last : { ...last, message: `${last.message ?? ''}; objects still in namespace "${this.api.namespace}" ${GONE_TIMEOUT_MS / 1000}s after the job ended: ${left.join(', ')}` };
    await this.record(status);
    return status;
  }

  private record(status: JobStatus): Promise<void> {
    this.recording = this.recording.catch(() => undefined).then(() => writeJson(path.join(this.jobDir, files.status), status));
    return this.recording;
  }
}

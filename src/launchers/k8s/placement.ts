import path from 'node:path';
import { ApiException, type V1Pod } from '@kubernetes/client-node';
import { files, readRecord, readToken, type JobRecord } from '../../job/job-store.js';
import type { JobSecrets } from '../../job/secrets.js';
import { JobMasterClient } from '../../protocol/jobmaster-client.js';
import { kubernetesSection } from './section.js';
import type { JobSpec } from '../../spec/schema.js';
import { createUploader } from '../../uploader/registry.js';
import type { PackageRef, Uploader } from '../../uploader/uploader.js';
import type { JobMasterCommand, QueuedJobMaster } from '../launcher.js';
import { createJobObjects } from './job-creation.js';
import { findJobEnd } from './job-end-event.js';
import { deleteJob, kubeApi, type KubeApi } from './kube-api.js';
import { jobNames, jobSelector } from './names.js';
import { JOB_MASTER_CONTAINER } from './objects/index.js';
import { COPIED_PACKAGE, PodPackageCopier } from './package-copy.js';
import { serviceProxyTransport, serviceProxyUrl } from './service-proxy.js';

/** Container states that will not get better by waiting. */
const HOPELESS = ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'CrashLoopBackOff'];

/**
 * `jobMaster.placement: cluster` on Kubernetes (the default there): the job master runs in a pod of its own
 * (jobMasterStatefulSet), so the job outlives the client. The client creates every object of the job, the
 * job master's included, hands the package over (uploads it, or with `uploader.kind: local` copies it into
 * the job master's pod, which copies it on into the worker pods) and waits until the job master answers
 * through the API server's service proxy, which is how the client reaches it from then on.
 */
export async function queueJobMaster(spec: JobSpec, jobDir: string, _node: string, _cli: string, secrets: JobSecrets = {}): Promise<QueuedJobMaster> {
  const k8s = kubernetesSection(spec);
  const api = kubeApi(k8s);
  const record = await readRecord(jobDir);
  const token = await readToken(jobDir);
  const jobId = record.jobId;
  const names = jobNames(jobId);
  const packageFile = path.join(jobDir, files.package);
  const { sha256, size } = record.package;
  let uploader: Uploader | undefined;
  let packageRef: PackageRef = { kind: 'copied', file: COPIED_PACKAGE, sha256, size };
  if (spec.uploader.kind !== 'local') {
    uploader = await createUploader(spec, secrets);
    packageRef = await uploader.upload({ jobId, file: packageFile, sha256, size });
  }
  let rootName = '';
  const remove = async () => {
    if (rootName) await deleteJob(api, jobId, rootName);
    await uploader?.delete().catch(() => undefined);
  };
  try {
    const ctx = { jobId, spec, jobDir, packageRef, jobMasterUrl: '', token };
    await createJobObjects(api, ctx, { inClusterJobMaster: { uploaderSecrets: secrets }, onRoot: (name) => (rootName = name) });
  } catch (err) {
    await remove();
    throw err;
  }

  let failure: string | undefined;
  const copier = packageRef.kind === 'copied' ? new PodPackageCopier(api.kc, api.namespace, { file: packageFile, size }, () => undefined, (m) => (failure = m)) : undefined;
  const url = serviceProxyUrl(api, names.jobMasterService, 'http');
  const where = { namespace: api.namespace, ...(k8s.kubeconfig ?? process.env.KUBECONFIG ? { kubeconfig: k8s.kubeconfig ?? process.env.KUBECONFIG } : {}), ...(k8s.context ? { context: k8s.context } : {}) };
  const client = new JobMasterClient({ url, token, proxy: await serviceProxyTransport(where) });
  const pod = async () => (await api.core.listNamespacedPod({ namespace: api.namespace, labelSelector: jobSelector(jobId, 'jobmaster') })).items[0];
  // Only a 404 says the root is gone; another error may pass.
  const rootGone = () =>
    api.core.readNamespacedConfigMap({ namespace: api.namespace, name: names.root }).then(
      () => false,
      (err: unknown) => err instanceof ApiException && err.code === 404,
    );
  // The job master records the event before it deletes the root.
  const endedUnanswered = async () => (await rootGone()) && (await findJobEnd(api, jobId).catch(() => undefined)) !== undefined;

  return {
    name: `the job master pod of ${jobId} (namespace "${api.namespace}")`,
    async address(): Promise<JobRecord['jobMaster']> {
      const p = await pod().catch(() => undefined);
      const running = p?.status?.containerStatuses?.find((c) => c.name === JOB_MASTER_CONTAINER && c.state?.running);
      if (p && running) copier?.copyInto({ name: p.metadata!.name!, uid: p.metadata!.uid! }, JOB_MASTER_CONTAINER);
      const answered = running ? await client.status().then(() => true, () => false) : false;
      // A short job may end, and its job master go with it, before this client first got through (a slow
      // machine): the job master left how the job ended in an Event, which the job handle reads from there.
      if (!answered && !(await endedUnanswered())) return undefined;
      copier?.stop();
      return { url, kubernetes: where };
    },
    async whyGone() {
      if (failure) {
        await remove().catch(() => undefined);
        return failure;
      }
      // Gone after it recorded how the job ended: address() hands the job over.
      if (await rootGone()) return (await findJobEnd(api, jobId).catch(() => undefined)) ? undefined : `the job's root ConfigMap "${names.root}" was deleted before its job master answered`;
      const p = await pod().catch(() => undefined);
      const why = p ? await jobMasterPodProblem(api, p) : undefined;
      if (why) await remove().catch(() => undefined);
      return why;
    },
    async waiting() {
      const p = await pod().catch(() => undefined);
      const sched = p?.status?.conditions?.find((c) => c.type === 'PodScheduled');
      if (sched?.status === 'False') return `the Kubernetes scheduler cannot place the job master pod yet: ${sched.message ?? sched.reason ?? 'unschedulable'}`;
      return undefined;
    },
    cancel: async () => {
      copier?.stop();
      await remove();
    },
  };
}

/** Why the job master pod will not start, with the end of its log, if it will not. */
export async function jobMasterPodProblem(api: KubeApi, pod: V1Pod): Promise<string | undefined> {
  const c = pod.status?.containerStatuses?.find((s) => s.name === JOB_MASTER_CONTAINER);
  const waiting = c?.state?.waiting;
  const ended = c?.state?.terminated ?? (c && c.restartCount > 0 ? c.lastState?.terminated : undefined);
  if (!(waiting?.reason && HOPELESS.includes(waiting.reason)) && !ended) return undefined;
  const name = pod.metadata?.name ?? '?';
  const log = await api.core
    .readNamespacedPodLog({ namespace: api.namespace, name, container: JOB_MASTER_CONTAINER, tailLines: 20, ...(c?.state?.terminated ? {} : { previous: true }) })
    .catch(() => '');
  const state = ended ? `exited with code ${ended.exitCode}${ended.reason ? ` (${ended.reason})` : ''}` : `is ${waiting!.reason}: ${waiting!.message ?? ''}`;
  return `the job master container of pod ${api.namespace}/${name} ${state} before it answered${log ? `; the end of its log:\n${log.trimEnd()}` : ''}`;
}

/** Not used on Kubernetes (queueJobMaster starts the job master); kept for the placement contract. */
export async function jobMasterCommand(_spec: JobSpec, jobDir: string, node: string, cli: string): Promise<JobMasterCommand> {
  return { program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] };
}

export async function jobMasterProcessSpec(spec: JobSpec): Promise<JobSpec> {
  return spec;
}

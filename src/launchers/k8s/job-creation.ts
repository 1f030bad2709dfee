import type { JobSecrets } from '../../job/secrets.js';
import type { LaunchContext } from '../launcher.js';
import { workerEnvironment } from '../../job/worker-environment.js';
import { createObject, type KubeApi } from './kube-api.js';
import { generateSshKeyPair, jobMasterService, jobObjects, k8sJob, rootConfigMap, rootOwnerReference, type K8sJob } from './objects/index.js';

export interface CreatedJob {
  job: K8sJob;
  /** The URL the workers were given for the job master. */
  jobMasterUrl: string;
}

/**
 * Creates a job's objects: the root ConfigMap first (`onRoot` gets its name at once, so a failure after it
 * is cleaned up by deleting it), then everything it owns. With `inClusterJobMaster`, also the job master's
 * Service, account and StatefulSet; its Service comes first, and the workers are given its ClusterIP (what
 * kube-proxy routes in every cluster, with or without cluster DNS). `stopped` ends the creation early.
 */
export async function createJobObjects(
  api: KubeApi,
  ctx: LaunchContext,
  opts: { inClusterJobMaster?: { uploaderSecrets: JobSecrets }; onRoot?: (name: string) => void; stopped?: () => boolean },
): Promise<CreatedJob | undefined> {
  const root = await createObject(api, rootConfigMap(ctx.jobId, ctx.spec));
  opts.onRoot?.(root.metadata!.name!);
  const job = k8sJob(ctx.jobId, ctx.spec, rootOwnerReference(root));
  let jobMasterUrl = ctx.jobMasterUrl;
  if (opts.inClusterJobMaster) {
    const service = await createObject(api, jobMasterService(job));
    const ip = service.spec?.clusterIP ?? '';
    jobMasterUrl = `http://${ip.includes(':') ? `[${ip}]` : ip}:${job.k8s.jobMasterPort}`;
  }
  const objects = jobObjects(job, {
    secret: {
      token: ctx.token,
      packageRef: ctx.packageRef,
      ...(opts.inClusterJobMaster ? { uploaderSecrets: opts.inClusterJobMaster.uploaderSecrets } : {}),
      ...(job.k8s.openmpi ? { ssh: generateSshKeyPair(`twister2-${ctx.jobId}`) } : {}),
    },
    workers: { env: workerEnvironment({ ...ctx, jobMasterUrl }, { secret: { kind: 'cluster' } }) },
    ...(opts.inClusterJobMaster ? { jobMaster: {} } : {}),
  });
  for (const obj of objects) {
    if (opts.stopped?.()) return undefined;
    if (obj.kind === 'Service' && obj.metadata?.name === job.names.jobMasterService) continue; // created above
    await createObject(api, obj);
  }
  return { job, jobMasterUrl };
}

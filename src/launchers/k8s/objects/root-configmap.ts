import type { V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { LauncherError } from '../../../errors.js';
import { specToInput, type JobSpec } from '../../../spec/schema.js';
import { kubernetesSection } from '../section.js';
import { jobLabels, jobNames } from '../names.js';

/** Keys of the root ConfigMap. */
export const ROOT_KEYS = { spec: 'spec.json', jobId: 'job-id' } as const;

/**
 * The job's root object: a ConfigMap named after the job holding the resolved spec (no credentials).
 * It is created first and owns everything else, so deleting it ends the whole job.
 */
export function rootConfigMap(jobId: string, spec: JobSpec, extraData: Record<string, string> = {}): V1ConfigMap {
  const k8s = kubernetesSection(spec);
  const names = jobNames(jobId);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: names.root, namespace: k8s.namespace, labels: jobLabels(jobId) },
    data: { [ROOT_KEYS.jobId]: jobId, [ROOT_KEYS.spec]: JSON.stringify(specToInput(withoutCredentials(spec))), ...extraData },
  };
}

/** The spec without anything secret (S3 keys travel in the job Secret, never in a ConfigMap). */
function withoutCredentials(spec: JobSpec): JobSpec {
  if (!spec.uploader.s3?.credentials) return spec;
  const { credentials: _dropped, ...s3 } = spec.uploader.s3;
  return { ...spec, uploader: { ...spec.uploader, s3 } };
}

/**
 * The owner reference every other object of the job carries, from the root as the API server returned
 * it (with its uid). Not a controller reference: the job's StatefulSets keep their own pods.
 */
export function rootOwnerReference(root: V1ConfigMap): V1OwnerReference {
  const name = root.metadata?.name;
  const uid = root.metadata?.uid;
  if (!name || !uid) throw new LauncherError(`the root ConfigMap${name ? ` "${name}"` : ''} has no uid: pass the object the API server returned from create`);
  return { apiVersion: 'v1', kind: 'ConfigMap', name, uid, blockOwnerDeletion: true, controller: false };
}

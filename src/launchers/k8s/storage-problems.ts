import type { SpecProblem } from '../../errors.js';
import type { JobSpec } from '../../spec/schema.js';
import { persistentFormProblems } from '../capabilities.js';
import { STORAGE_MOUNTS } from './storage-mounts.js';

/** Each part of spec `storage` and the kubernetes.volumes entry that asks for the same thing. */
const SAME_AS = [
  ['memory', 'memory', 'a memory-backed volume'],
  ['scratch', 'disk', 'a disk emptyDir'],
  ['persistent', 'persistent', 'a kept NFS or PVC volume'],
] as const;

/**
 * Why this job's `storage` cannot be had on Kubernetes (objects/storage-volumes.ts maps it): persistent must
 * be nfs or pvc (pods see no directory of the hosts); a part also asked for in kubernetes.volumes is
 * refused naming both, as is a kubernetes.volumes mountPath on a storage mount; `logs: true` needs the job
 * master in its pod, which mounts the volume.
 */
export function kubernetesStorageProblems(spec: JobSpec): SpecProblem[] {
  const problems = persistentFormProblems(spec);
  const storage = spec.storage ?? {};
  const volumes = spec.kubernetes?.volumes ?? {};
  for (const [part, volume, what] of SAME_AS) {
    if (storage[part] === undefined || volumes[volume] === undefined) continue;
    problems.push({
      path: `storage.${part}`,
      message: `storage.${part} and kubernetes.volumes.${volume} both ask for ${what}; keep one: storage.${part} (the same meaning on every cluster, TWISTER2_${part.toUpperCase()}_DIR) or kubernetes.volumes.${volume}`,
    });
  }
  const mountPaths = [['disk', volumes.disk?.mountPath], ['persistent', volumes.persistent?.mountPath]] as const;
  for (const part of ['memory', 'scratch', 'persistent'] as const) {
    const at = STORAGE_MOUNTS[part];
    for (const [volume, mountPath] of mountPaths) {
      // The same part asked for in both is refused above already.
      const same = SAME_AS.some(([p, v]) => p === part && v === volume);
      if (same || storage[part] === undefined || mountPath === undefined || !overlaps(at, mountPath)) continue;
      problems.push({ path: `kubernetes.volumes.${volume}.mountPath`, message: `"${mountPath}" overlaps where storage.${part} is mounted (${at}); choose another mountPath` });
    }
  }
  const p = storage.persistent;
  if (p?.logs && (p.nfs || p.pvc) && spec.jobMaster.placement !== 'cluster') {
    problems.push({
      path: 'storage.persistent.logs',
      message: `storage.persistent.logs is true, but the job master runs in the client (jobMaster.placement "${spec.jobMaster.placement}"), which does not mount storage.persistent.${p.nfs ? 'nfs' : 'pvc'}; use jobMaster.placement "cluster" (the default on Kubernetes: its pod mounts the volume), or logs: false`,
    });
  }
  return problems;
}

const overlaps = (a: string, b: string) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);

import { describe, expect, it } from 'vitest';
import { jobMasterStatefulSet, k8sJob, persistentVolumeClaim, workerPodSpec, type K8sJob } from '../../../../src/launchers/k8s/objects/index.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const JOB_ID = 'store-20261206093000-ab12';
const OWNER = { apiVersion: 'v1', kind: 'ConfigMap', name: JOB_ID, uid: '00000000-1111-2222-3333-444444444444', blockOwnerDeletion: true, controller: false };
const base = { name: 'store', cluster: 'kubernetes', workers: 4, worker: { module: 'main.mjs' }, kubernetes: { workersPerPod: 2 } };
const NFS = { server: '10.0.0.9', path: '/exports/results' };

const jobOf = (storage: Record<string, unknown>, raw: Record<string, unknown> = {}): K8sJob => k8sJob(JOB_ID, parseSpec({ ...base, storage, ...raw }), OWNER);
const podOf = (job: K8sJob) => workerPodSpec(job, { env: {} });
const mountVariables = (env: Array<{ name: string; value?: string }> = []) => Object.fromEntries(env.filter((e) => /^TWISTER2_\w+_MOUNT$/.test(e.name)).map((e) => [e.name, e.value]));

describe('spec storage as pod volumes', () => {
  it('memory: an emptyDir of medium Memory sized by storage.memory.size; scratch: a disk emptyDir; persistent: the NFS export; each mounted in every worker container, named by TWISTER2_*_MOUNT', () => {
    const pod = podOf(jobOf({ memory: { size: '256Mi' }, scratch: { size: '10Gi' }, persistent: { nfs: NFS } }));
    expect(pod.volumes?.slice(1)).toEqual([
      { name: 'storage-memory', emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
      { name: 'storage-scratch', emptyDir: { sizeLimit: '10Gi' } },
      { name: 'storage-persistent', nfs: NFS },
    ]);
    expect(pod.containers.map((c) => c.name)).toEqual(['worker-0', 'worker-1']);
    for (const c of pod.containers) {
      expect(c.volumeMounts?.slice(1)).toEqual([
        { name: 'storage-memory', mountPath: '/twister2/memory' },
        { name: 'storage-scratch', mountPath: '/twister2/scratch' },
        { name: 'storage-persistent', mountPath: '/twister2/persistent' },
      ]);
      expect(mountVariables(c.env)).toEqual({ TWISTER2_MEMORY_MOUNT: '/twister2/memory', TWISTER2_SCRATCH_MOUNT: '/twister2/scratch', TWISTER2_PERSISTENT_MOUNT: '/twister2/persistent' });
    }
  });

  it('only what the spec asks for: scratch without a size has no sizeLimit; no storage, no volume and no variable', () => {
    const pod = podOf(jobOf({ scratch: {} }));
    expect(pod.volumes?.slice(1)).toEqual([{ name: 'storage-scratch', emptyDir: {} }]);
    expect(mountVariables(pod.containers[0]!.env)).toEqual({ TWISTER2_SCRATCH_MOUNT: '/twister2/scratch' });
    const bare = podOf(k8sJob(JOB_ID, parseSpec(base), OWNER));
    expect(bare.volumes).toEqual([{ name: 'shared', emptyDir: {} }]);
    expect(mountVariables(bare.containers[0]!.env)).toEqual({});
  });

  it('persistent.pvc: the job\'s ReadWriteMany claim, owned by the root unless keep', () => {
    const job = jobOf({ persistent: { pvc: { storageClass: 'rwx', size: '5Gi' } } });
    expect(podOf(job).volumes?.slice(1)).toEqual([{ name: 'storage-persistent', persistentVolumeClaim: { claimName: `${JOB_ID}-data` } }]);
    const claim = persistentVolumeClaim(job);
    expect(claim?.spec).toEqual({ accessModes: ['ReadWriteMany'], storageClassName: 'rwx', resources: { requests: { storage: '5Gi' } } });
    expect(claim?.metadata?.ownerReferences).toEqual([OWNER]);
    expect(persistentVolumeClaim(jobOf({ persistent: { pvc: { storageClass: 'rwx', size: '5Gi', keep: true } } }))?.metadata?.ownerReferences).toBeUndefined();
    expect(persistentVolumeClaim(jobOf({ persistent: { nfs: NFS } }))).toBeUndefined();
  });

  it('persistent.logs: the job master pod mounts the persistent volume too (it copies the logs into it); without logs it does not', () => {
    const jm = (persistent: Record<string, unknown>) => jobMasterStatefulSet(jobOf({ persistent })).spec!.template.spec!;
    const withLogs = jm({ pvc: { storageClass: 'rwx', size: '5Gi' }, logs: true });
    expect(withLogs.volumes?.find((v) => v.name === 'storage-persistent')).toEqual({ name: 'storage-persistent', persistentVolumeClaim: { claimName: `${JOB_ID}-data` } });
    expect(withLogs.containers[0]!.volumeMounts?.find((m) => m.name === 'storage-persistent')).toEqual({ name: 'storage-persistent', mountPath: '/twister2/persistent' });
    expect(mountVariables(withLogs.containers[0]!.env)).toEqual({ TWISTER2_PERSISTENT_MOUNT: '/twister2/persistent' });
    const without = jm({ nfs: NFS });
    expect(without.volumes?.map((v) => v.name)).toEqual(['job', 'work']);
    expect(mountVariables(without.containers[0]!.env)).toEqual({});
  });

  it('OpenMPI: mpirun forwards the mount variables to the ranks in the other pods', () => {
    const pod = podOf(jobOf({ memory: { size: '64Mi' } }, { kubernetes: { workersPerPod: 2, openmpi: true } }));
    expect(pod.containers[0]!.command![2]).toContain('-x TWISTER2_MEMORY_MOUNT');
  });
});

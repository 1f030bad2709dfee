import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobNames } from '../../src/launchers/k8s/names.js';
import { ensureKubeBinaries, startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodNetwork, type PodNetwork } from '../env/kube-pod-network.js';
import { startPodRunner, type PodRunner } from '../env/kube-pod-runner.js';
import { jobIds, runCli, ROOT, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { storageJob, type StorageRec } from '../helpers/storage.js';

/**
 * Spec `storage` on Kubernetes (README "Storage"), on a real control plane with KWOK nodes whose pods the
 * pod runner (test/env/kube-pod-runner.ts) runs as local processes: an emptyDir of medium Memory is a
 * directory in /dev/shm (tmpfs, as the kubelet mounts one), a disk emptyDir one on this machine's disk, both
 * removed with their pod (removeEmptyDirs), and an NFS volume one directory per server and path, shared by
 * every pod. A PVC would need a provisioner this cluster does not have: its mapping is unit-tested.
 */
ensureKubeBinaries();
let cluster: KubeCluster;
let core: CoreV1Api;
let runner: PodRunner | undefined;
let network: PodNetwork | undefined;
let logDir: string;
let nsCount = 0;
const NFS_SERVER = 'nfs.test';

beforeAll(async () => {
  cluster = await startKubeCluster({ nodes: [{ name: 'n1' }, { name: 'n2' }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
}, 120_000);
afterEach(async () => {
  await runner?.stop();
  await network?.stop();
  runner = network = undefined;
});
afterAll(async () => {
  await cluster?.stop();
});

/** A fresh namespace with a pod runner for it that removes a pod's emptyDirs with the pod, as the kubelet does. */
async function namespace(): Promise<string> {
  const ns = `t2k8sst-${process.pid}-${++nsCount}`;
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await waitFor('the default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((s) => s.metadata?.name === 'default'), 30_000);
  logDir = tempHome();
  const net = (network = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns }));
  runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir, pathMap: { '/opt/twister2': ROOT }, beforeStart: (pod) => net.attach(pod), restart: true, removeEmptyDirs: true });
  return ns;
}

/** A storage job of 4 workers, 2 per pod, with memory, scratch and an NFS export as persistent. */
function k8sStorageJob(ns: string, mode: string, placement: 'client' | 'cluster', logs: boolean): string {
  const kubernetes = { namespace: ns, kubeconfig: cluster.kubeconfigFile, workersPerPod: 2 };
  const persistent = { nfs: { server: NFS_SERVER, path: `/exports/${ns}` }, logs };
  return storageJob(`k8s-storage-${mode}`, mode, persistent, { cluster: 'kubernetes', kubernetes, jobMaster: { placement }, resources: { cpu: 0.1, memory: '64Mi' } });
}

/** The NFS export as the pod runner keeps it on this machine. */
const exportDir = (ns: string) => path.join(runner!.dir, 'nfs', NFS_SERVER, 'exports', ns);

/** The local directories of the job's worker pods' memory and scratch emptyDirs that are still there. */
function emptyDirsLeft(jobId: string): string[] {
  const pods = runner!.processes().filter((p) => p.pod.startsWith(`${jobNames(jobId).workers(0)}-`));
  const dirs = new Set(pods.flatMap((p) => [p.mounts['/twister2/memory'], p.mounts['/twister2/scratch']]).filter((d) => d !== undefined));
  return [...dirs].filter((d) => existsSync(d));
}

/** The worker pods' output (the runner's log files). */
const podLogs = (jobId: string) =>
  readdirSync(logDir)
    .filter((f) => f.startsWith(`${jobNames(jobId).workers(0)}-`))
    .map((f) => readFileSync(path.join(logDir, f), 'utf8'))
    .join('\n');

/** What every worker reported: memory tmpfs and shared by the 2 workers of its pod only, scratch on disk, variables as ctx. */
function expectStorageSeen(recs: StorageRec[]): void {
  expect(recs.map((r) => r.id).sort()).toEqual([0, 1, 2, 3]);
  for (const r of recs) {
    expect(r.fsType).toBe('tmpfs');
    expect(r.scratchFsType).not.toBe('tmpfs');
    expect(r.env).toEqual(r.storage);
    const podMates = [r.id - (r.id % 2), r.id - (r.id % 2) + 1];
    expect(r.memoryFiles).toEqual(podMates.map((i) => `w-${i}`));
  }
  // Each pod has its own memory and scratch volumes; persistent is one for all.
  expect(new Set(recs.map((r) => r.storage.memory)).size).toBe(2);
  expect(new Set(recs.map((r) => r.storage.scratch)).size).toBe(2);
  expect(new Set(recs.map((r) => r.storage.persistent)).size).toBe(1);
}

describe('spec storage on Kubernetes', () => {
  it('job master in its pod: memory (tmpfs, shared in the pod) and scratch written, gone with the pods; the NFS export keeps every worker\'s file and, with logs, every worker\'s log', async () => {
    const ns = await namespace();
    const home = tempHome();
    const r = await runCli(['submit', k8sStorageJob(ns, 'ok', 'cluster', true)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs(jobId)}\n${runner!.errors().join('\n')}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    expectStorageSeen(testRecords<StorageRec>(podLogs(jobId)).filter((x) => x.step === 'storage'));
    const kept = exportDir(ns);
    expect(readdirSync(kept).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
    for (const i of [0, 1, 2, 3]) expect(readFileSync(path.join(kept, 'logs', jobId, `worker-${i}.log`), 'utf8')).toContain(`storage worker ${i} wrote its files`);
    await waitFor('the worker pods\' emptyDirs removed with the pods', () => emptyDirsLeft(jobId).length === 0, 60_000);
  });

  it('a worker that fails ends the job FAILED: the NFS export keeps every worker\'s file and log, memory and scratch are gone with the pods', async () => {
    const ns = await namespace();
    const home = tempHome();
    const r = await runCli(['submit', k8sStorageJob(ns, 'fail', 'cluster', true)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs(jobId)}`).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/FAILED/);
    expectStorageSeen(testRecords<StorageRec>(podLogs(jobId)).filter((x) => x.step === 'storage'));
    const kept = exportDir(ns);
    expect(readdirSync(kept).filter((f) => f.startsWith(jobId))).toHaveLength(4);
    expect(readFileSync(path.join(kept, 'logs', jobId, 'worker-0.log'), 'utf8')).toContain('worker 0 fails on purpose');
    await waitFor('the worker pods\' emptyDirs removed with the pods', () => emptyDirsLeft(jobId).length === 0, 60_000);
  });

  it('job master in the client, `twister2 kill`: memory and scratch are gone with the pods, the NFS export keeps every worker\'s file; without logs no log is copied', async () => {
    const ns = await namespace();
    const home = tempHome();
    const cli = startCli(['submit', k8sStorageJob(ns, 'sleep', 'client', false)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0], 60_000);
    await waitFor('4 sleeping workers', () => testRecords<StorageRec>(podLogs(jobId)).filter((x) => x.step === 'sleeping').length === 4, 120_000);
    expectStorageSeen(testRecords<StorageRec>(podLogs(jobId)).filter((x) => x.step === 'storage'));
    expect(emptyDirsLeft(jobId)).toHaveLength(4);
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    await cli.closed;
    expect(cli.output().stdout + cli.output().stderr).toMatch(/KILLED/);
    await waitFor('the worker pods\' emptyDirs removed with the pods', () => emptyDirsLeft(jobId).length === 0, 60_000);
    const kept = exportDir(ns);
    expect(readdirSync(kept).filter((f) => f.startsWith(jobId))).toHaveLength(4);
    expect(existsSync(path.join(kept, 'logs'))).toBe(false);
  });

  it('a SIGKILLed client, job master in its pod: the job runs to its end; memory and scratch go with the pods, the NFS export keeps every worker\'s file and log, no pod is left', async () => {
    const ns = await namespace();
    const home = tempHome();
    const cli = startCli(['submit', k8sStorageJob(ns, 'ok', 'cluster', true)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0], 60_000);
    // Once the workers run (the client copied the package into their pods): the job goes on without the client.
    await waitFor('a worker wrote its files', () => /storage worker \d wrote its files/.test(podLogs(jobId)), 120_000);
    cli.kill('SIGKILL');
    const kept = exportDir(ns);
    await waitFor('every worker\'s log copied by the job master', () => [0, 1, 2, 3].every((i) => existsSync(path.join(kept, 'logs', jobId, `worker-${i}.log`))), 90_000).catch((err: Error) => {
      const jm = readdirSync(logDir).filter((f) => f.includes('jobmaster')).map((f) => readFileSync(path.join(logDir, f), 'utf8'));
      throw new Error(`${err.message}\n${cli.output().stderr}\n${jm.join('\n')}\n${podLogs(jobId)}\n${runner!.errors().join('\n')}`);
    });
    expect(readdirSync(kept).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
    expectStorageSeen(testRecords<StorageRec>(podLogs(jobId)).filter((x) => x.step === 'storage'));
    const podsOfJob = async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: `twister2.io/job=${jobId}` })).items.length;
    await waitFor('no pod of the job left', async () => (await podsOfJob()) === 0, 60_000);
    await waitFor('the worker pods\' emptyDirs removed with the pods', () => emptyDirsLeft(jobId).length === 0, 60_000);
  }, 300_000);

  it('a spec the cluster cannot give is refused before anything is created (exit 2), naming the field and the fix', async () => {
    const home = tempHome();
    const job = storageJob('k8s-storage-dir', 'ok', { dir: '/nfs/results' }, { cluster: 'kubernetes', kubernetes: { namespace: 'default', kubeconfig: cluster.kubeconfigFile } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('storage.persistent.dir: storage.persistent.dir "/nfs/results" is for cluster "local", "mpi", "slurm", not "kubernetes"; use storage.persistent.nfs ({ server, path }: an NFS export mounted in every worker pod) or storage.persistent.pvc ({ storageClass, size }: a ReadWriteMany claim the job creates)');
  });
});

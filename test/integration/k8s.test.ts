import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launcherConformance } from '../conformance/launcher-conformance.js';
import { jobNames } from '../../src/launchers/k8s/names.js';
import { ensureKubeBinaries, startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodRunner, type PodRunner, type StartPodRunnerOptions } from '../env/kube-pod-runner.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, ROOT, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

/**
 * The kubernetes launcher against a real control plane (kube-apiserver with RBAC, controller-manager,
 * scheduler) with KWOK nodes. Containers do not run under KWOK, so a pod runner starts each Running pod's
 * worker containers as local processes with the environment the pod spec gives them (its env, Secret
 * references, downward-API pod name/IP/node); objects, scheduling, ownership, garbage collection and
 * StatefulSet re-creation are Kubernetes' own.
 */
ensureKubeBinaries();
let cluster: KubeCluster;
let core: CoreV1Api;
let runner: PodRunner | undefined;
let logDir: string;
let nsCount = 0;

beforeAll(async () => {
  cluster = await startKubeCluster({ nodes: [{ name: 'n1' }, { name: 'n2' }, { name: 'n3' }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
}, 120_000);
afterEach(async () => {
  await runner?.stop();
  runner = undefined;
});
afterAll(async () => {
  await cluster?.stop();
});

/** A fresh namespace with a pod runner for it. */
async function namespace(runnerOptions: Partial<StartPodRunnerOptions> = {}): Promise<string> {
  const ns = `t2k8s-${process.pid}-${++nsCount}`;
  await core.createNamespace({ body: { metadata: { name: ns } } });
  // Pods are refused until the namespace's default service account exists.
  await waitFor('the default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((s) => s.metadata?.name === 'default'), 30_000);
  logDir = tempHome();
  runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir, pathMap: { '/opt/twister2': ROOT }, ...runnerOptions });
  return ns;
}

function k8sSpec(ns: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cluster: 'kubernetes', kubernetes: { namespace: ns, kubeconfig: cluster.kubeconfigFile, ...extra } };
}

/** Every object labelled with the job that the API still lists. */
async function objectsOf(ns: string, jobId: string): Promise<string[]> {
  const out = await cluster.request('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=twister2.io/job=${jobId}`);
  const sets = await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/statefulsets?labelSelector=twister2.io/job=${jobId}`);
  const others = await Promise.all(['services', 'secrets', 'configmaps'].map((k) => cluster.request('GET', `/api/v1/namespaces/${ns}/${k}?labelSelector=twister2.io/job=${jobId}`)));
  return [out, sets, ...others].flatMap((r) => ((r.body as { items: { kind?: string; metadata: { name: string } }[] }).items ?? []).map((o) => o.metadata.name));
}

/** The output of the pods the runner ran, all or those of one job (its worker pods' names start with its StatefulSet's). */
function podLogs(dir = logDir, jobId?: string): string {
  const prefix = jobId ? `${jobNames(jobId).workers(0)}-` : '';
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log') && f.startsWith(prefix))
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

/** The pods the client copied the package into (its kubernetes.log), one entry per copy. */
function copiedInto(home: string, jobId: string): string[] {
  const log = readFileSync(path.join(home, 'jobs', jobId, 'logs', 'kubernetes.log'), 'utf8');
  return [...log.matchAll(/copied the package \(\d+ bytes\) into pod (\S+) in/g)].map((m) => m[1]!);
}

interface Rec {
  id: number;
  step: string;
  pod?: string;
  podIp?: string;
  node?: string;
  container?: string;
  n?: number;
  peers?: { id: number; ip: string }[];
  restart?: number;
  failed?: number;
}

describe('kubernetes launcher on a real control plane with KWOK nodes', () => {
  it('6 workers, 2 per pod, each pod on its own node: IDs from ordinals and containers, pod IPs, barriers, SUCCEEDED, nothing left', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-spread', workers: 6, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, podPlacement: { workers: 'spread' } }) },
      { 'w.mjs': fixture('k8s-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs()}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 6 workers completed/);
    const found = testRecords<Rec>(podLogs()).filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const x of found) {
      const ordinal = Number(/-(\d+)$/.exec(x.pod!)![1]);
      expect(x.id).toBe(ordinal * 2 + Number(x.container));
      expect(x.n).toBe(6);
    }
    // The scheduler put the 3 pods on 3 different nodes; workers know each other by their pods' IPs.
    const byPod = new Map(found.map((x) => [x.pod, x]));
    expect(byPod.size).toBe(3);
    expect(new Set([...byPod.values()].map((x) => x.node))).toEqual(new Set(['n1', 'n2', 'n3']));
    const ips = Object.fromEntries(found.map((x) => [x.id, x.podIp]));
    expect(found[0]!.peers!.map((p) => p.ip)).toEqual([0, 1, 2, 3, 4, 5].map((id) => ips[id]));
    expect(new Set(Object.values(ips)).size).toBe(3);
    expect(testRecords<Rec>(podLogs()).filter((x) => x.step === 'barrier')).toHaveLength(18);
    // Each worker's output reached the client through the API server's pod logs, tagged by its worker ID.
    const tagged = r.stdout.split('\n').flatMap((l) => {
      const m = /^\[worker (\d+)\] T2TEST (\{.*\})$/.exec(l);
      return m ? [{ tag: Number(m[1]), rec: JSON.parse(m[2]!) as Rec }] : [];
    });
    expect(tagged.filter((t) => t.tag !== t.rec.id)).toEqual([]);
    const streamed = tagged.map((t) => t.rec);
    expect(streamed.filter((x) => x.step === 'discovered').map((x) => x.id).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(streamed.filter((x) => x.step === 'barrier')).toHaveLength(18);
    // uploader local: the client copied the package into each pod through the exec API, once per pod.
    expect(copiedInto(home, jobId).sort()).toEqual([...byPod.keys()].sort());
    expect(r.stdout.match(/fetched and unpacked the package \(\d+ bytes\) from the copy the client made/g)).toHaveLength(3);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('uploader local: a 24 MB package is copied into each pod through the exec API, once per pod; workers unpack it', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-copy', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2 }) },
      { 'w.mjs': fixture('package-worker.mjs') },
    );
    writeFileSync(path.join(job, 'data.bin'), randomBytes(24 * 1024 * 1024));
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs()}`).toBe(0);
    const ready = testRecords<Rec & { size: number }>(r.stdout).filter((x) => x.step === 'ready');
    expect(ready.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    expect(ready.every((x) => x.size === 24 * 1024 * 1024)).toBe(true);
    expect(copiedInto(home, jobId).sort()).toEqual([0, 1].map((o) => `${jobNames(jobId).workers(0)}-${o}`));
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('a package that cannot be copied into a pod fails the job, naming the pod and the reason; nothing left', async () => {
    // No exec into these pods: the API server's exec calls fail as a kubelet's would for a broken container.
    const ns = await namespace({ serveExec: false });
    const home = tempHome();
    const job = makeJob({ name: 'k8s-nocopy', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns) }, { 'w.mjs': fixture('barrier-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`could not copy the job package into pod ${ns}/${jobNames(jobId).workers(0)}-\\d through the exec API after 5 attempts: \\S`));
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('a deleted worker pod is recreated by its StatefulSet; the worker rejoins with the same ID and the job succeeds', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-repod', workers: 3, restart: { maxRestarts: 1 }, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['1'] }, ...k8sSpec(ns) },
      { 'w.mjs': fixture('restart-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('worker 1 computing', () => testRecords<Rec>(podLogs()).find((x) => x.step === 'computing' && x.restart === 0), 60_000);
    const pod1 = (await core.listNamespacedPod({ namespace: ns, labelSelector: `twister2.io/job=${jobId}` })).items.find((p) => p.metadata?.name?.endsWith('-1'))!;
    await core.deleteNamespacedPod({ namespace: ns, name: pod1.metadata!.name!, gracePeriodSeconds: 0 });
    const code = await cli.closed;
    expect(code, `${cli.output().stderr}\n${podLogs()}`).toBe(0);
    // The recreated pod (a new uid) got a copy of the package of its own.
    expect(copiedInto(home, jobId).filter((p) => p === pod1.metadata!.name)).toHaveLength(2);
    const recs = testRecords<Rec>(podLogs());
    expect(recs.filter((x) => x.id === 1 && x.step === 'start').map((x) => x.restart)).toEqual([0, 1]);
    expect(recs.filter((x) => x.step === 'done').map((x) => x.id).sort()).toEqual([0, 1, 2]);
    expect(recs.filter((x) => x.step === 'peer-failed').map((x) => x.failed)).toEqual([1, 1]);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('scales 4 → 8 → 4 by the worker StatefulSet\'s replicas; `twister2 kill` leaves the namespace empty', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob({ name: 'k8s-scale', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2 }) }, { 'w.mjs': fixture('sleep-worker.mjs') });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const status = async () => JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout || '{}') as { state?: string; numWorkers?: number; registered?: number };
    const replicas = async () => ((await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/statefulsets?labelSelector=twister2.io/job=${jobId}`)).body as { items: { spec: { replicas: number } }[] }).items[0]!.spec.replicas;
    await waitFor('4 workers running', async () => (await status()).state === 'RUNNING', 60_000);
    expect(await replicas()).toBe(2);
    expect((await runCli(['scale', jobId, '8'], home)).code).toBe(0);
    expect(await replicas()).toBe(4);
    await waitFor('8 workers registered', async () => (await status()).registered === 8, 60_000);
    expect((await runCli(['scale', jobId, '4'], home)).code).toBe(0);
    expect(await replicas()).toBe(2);
    expect(await status()).toMatchObject({ numWorkers: 4 });
    expect((await runCli(['kill', jobId], home)).code).toBe(0);
    expect(await cli.closed).toBe(3);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });
});

/**
 * The pod runner runs every pod's containers on this machine, in its network: each pod's sshd cannot have
 * port 22 of its own IP, so here the image's sshd is a stub that only stays up, and mpirun's `ssh` (found on
 * PATH) runs the remote command locally. Everything else is the OpenMPI pods' own script: the SSH key from
 * the Secret, the hostfile pod 0 writes from the API server's list of pods (with the workers' account,
 * under RBAC), and a real mpirun whose ranks are the workers. SSH between hosts is proven by the mpi
 * launcher's tests (sshd in network namespaces).
 */
function openmpiPodImage(opts: { sshFails?: boolean } = {}): { pathMap: Record<string, string>; extraEnv: Record<string, string> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-mpi-image-'));
  for (const d of ['bin', 'root-ssh', 'run-sshd']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'sshd'), '#!/bin/sh\ncase " $* " in *" -D "*) exec sleep 100000;; esac\nexit 0\n', { mode: 0o755 });
  // ssh [options] host command...: options with a value are -b -c -E -F -i -J -l -o -p (the rest are flags).
  const ssh = [
    '#!/bin/sh',
    'while [ $# -gt 0 ]; do case "$1" in -[bcEFiJlop]) shift 2;; -*) shift;; *) break;; esac; done',
    'shift',
    opts.sshFails ? 'echo "ssh: connect to host port 22: Connection refused" >&2; exit 255' : 'exec sh -c "$*"',
  ];
  writeFileSync(path.join(dir, 'bin', 'ssh'), ssh.join('\n') + '\n', { mode: 0o755 });
  return {
    pathMap: { '/opt/twister2': ROOT, '/usr/sbin/sshd': path.join(dir, 'sshd'), '/root/.ssh': path.join(dir, 'root-ssh'), '/run/sshd': path.join(dir, 'run-sshd') },
    extraEnv: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}` },
  };
}

describe('kubernetes launcher, OpenMPI mode', () => {
  it('pod 0 writes the hostfile from the pod IPs the API lists and runs mpirun: ranks are worker IDs, SUCCEEDED, nothing left', async () => {
    ensureOpenMpi();
    const ns = await namespace(openmpiPodImage());
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-mpi', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, openmpi: true }) },
      { 'w.mjs': fixture('mpi-rank-worker.mjs') },
    );
    // The pods' IPs as the API server lists them, while they exist.
    const ipOf = new Map<string, string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const p of (await core.listNamespacedPod({ namespace: ns })).items) if (p.status?.podIP) ipOf.set(p.metadata!.name!, p.status.podIP);
        await sleep(200);
      }
    })();
    const r = await runCli(['submit', job], home).finally(() => (watching = false));
    await watch;
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs()}\n${runner!.errors().join('\n')}`).toBe(0);
    // The hostfile holds the pods' IPs as the API server lists them, in ordinal order, 2 slots each.
    const pod0 = runner!.processes().find((p) => p.pod === `${jobNames(jobId).workers(0)}-0` && p.container === 'mpi')!;
    const hostfile = readFileSync(path.join(pod0.mounts['/twister2/shared']!, 'hostfile'), 'utf8');
    const podIps = [0, 1].map((o) => ipOf.get(`${jobNames(jobId).workers(0)}-${o}`));
    expect(new Set(podIps).size).toBe(2);
    expect(hostfile).toBe(podIps.map((ip) => `${ip} slots=2\n`).join(''));
    // Ranks are worker IDs; their output reached the client through pod 0's log, split by rank.
    const tagged = r.stdout.split('\n').flatMap((l) => {
      const m = /^\[worker (\d+)\] T2TEST (\{.*\})$/.exec(l);
      return m ? [{ tag: Number(m[1]), rec: JSON.parse(m[2]!) as Rec & { rank: string; size: string } }] : [];
    });
    const found = tagged.filter((t) => t.rec.step === 'discovered');
    expect(found.map((t) => t.rec.id).sort()).toEqual([0, 1, 2, 3]);
    for (const t of found) {
      expect(t.tag).toBe(t.rec.id);
      expect(t.rec.rank).toBe(String(t.rec.id));
      expect(t.rec.size).toBe('4');
    }
    expect(tagged.filter((t) => t.rec.step === 'barrier')).toHaveLength(8);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('mpirun failing to reach the other pods fails the job at once with its status; nothing left', async () => {
    ensureOpenMpi();
    const ns = await namespace(openmpiPodImage({ sshFails: true }));
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-mpi-bad', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, openmpi: true }) },
      { 'w.mjs': fixture('mpi-rank-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`FAILED: mpirun in pod ${jobNames(jobId).workers(0)}-0 exited with status [1-9]\\d* \\(its output: logs/mpirun.log\\)`));
    expect(readLogs(home, jobId) + readFileSync(path.join(home, 'jobs', jobId, 'logs', 'mpirun.log'), 'utf8')).toMatch(/Connection refused/);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });
});

describe('kubernetes launcher conformance', () => {
  let ns = '';
  let own: PodRunner | undefined;
  beforeAll(async () => {
    ns = await namespace();
    // This suite keeps its own pod runner for its namespace across its tests.
    own = runner;
    runner = undefined;
  }, 60_000);
  afterAll(async () => {
    await own?.stop();
  });
  launcherConformance({
    cluster: 'kubernetes',
    get spec() {
      return { resources: { cpu: 0.1, memory: '64Mi' }, ...k8sSpec(ns) };
    },
    leftovers: async (jobId) => {
      const objects = await objectsOf(ns, jobId);
      const procs = jobProcesses(jobId);
      return [...objects, ...(procs.length ? [`processes: ${procs.join(' ')}`] : [])];
    },
    cleanupWithinMs: 20_000,
  });
});

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobRowOnPage } from '../helpers/browser.js';
import { startDashboard } from '../helpers/dashboard.js';
import { launcherConformance } from '../conformance/launcher-conformance.js';
import { Journal, type JournalRecord } from '../../src/jobmaster/journal.js';
import { ConfigMapJournalStore } from '../../src/launchers/k8s/configmap-journal.js';
import { kubeApi } from '../../src/launchers/k8s/kube-api.js';
import { jobNames } from '../../src/launchers/k8s/names.js';
import { PackageServer } from '../../src/uploader/http/package-server.js';
import { ensureKubeBinaries, startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodNetwork, type PodNetwork } from '../env/kube-pod-network.js';
import { startPodRunner, type PodRunner, type StartPodRunnerOptions } from '../env/kube-pod-runner.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import { startS3Server } from '../env/s3-server.js';
import { s3cmd, s3ls } from '../env/s3cmd.js';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, ROOT, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { expectWorkersHeldOnlyTheWorkerToken } from '../helpers/credentials.js';

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
let network: PodNetwork | undefined;
let logDir: string;
let nsCount = 0;
const GPU = 'nvidia.com/gpu';

beforeAll(async () => {
  // n3 advertises GPUs as the NVIDIA device plugin makes a node do; n1 and n2 have none.
  cluster = await startKubeCluster({ nodes: [{ name: 'n1' }, { name: 'n2' }, { name: 'n3', extended: { [GPU]: '4' } }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
}, 120_000);
afterEach(async () => {
  await runner?.stop();
  await network?.stop();
  runner = undefined;
  network = undefined;
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
  // Pod IPs and ClusterIPs reachable on this machine, as the CNI plugin and kube-proxy make them in pods.
  const net = (network = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns }));
  // Containers that exit are restarted as a kubelet restarts them (restartPolicy Always / OnFailure, with back-off).
  runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir, pathMap: { '/opt/twister2': ROOT }, beforeStart: (pod) => net.attach(pod), restart: true, ...runnerOptions });
  return ns;
}

/** A job on the test cluster, with its job master in the client (`placement: 'cluster'`: in its pod, the default). */
function k8sSpec(ns: string, extra: Record<string, unknown> = {}, placement: 'client' | 'cluster' = 'client'): Record<string, unknown> {
  return { cluster: 'kubernetes', kubernetes: { namespace: ns, kubeconfig: cluster.kubeconfigFile, ...extra }, ...(placement === 'client' ? { jobMaster: { placement } } : {}) };
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

/** The client's `[worker N] T2TEST {...}` lines: the tag and the record. */
function taggedRecords<T>(stdout: string): Array<{ tag: number; rec: T }> {
  return stdout.split('\n').flatMap((l) => {
    const m = /^\[worker (\d+)\] T2TEST (\{.*\})$/.exec(l);
    return m ? [{ tag: Number(m[1]), rec: JSON.parse(m[2]!) as T }] : [];
  });
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
  it.each(['client', 'cluster'] as const)('6 workers, 2 per pod, each pod on its own node, job master placement %s: IDs from ordinals and containers, pod IPs, barriers, SUCCEEDED, nothing left', async (placement) => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-spread', workers: 6, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, podPlacement: { workers: 'spread' } }, placement) },
      { 'w.mjs': fixture('k8s-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs()}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 6 workers completed/);
    const found = testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'discovered');
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
    expect(testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'barrier')).toHaveLength(18);
    // Each worker's output reached the client through the API server's pod logs, tagged by its worker ID.
    const tagged = taggedRecords<Rec>(r.stdout);
    expect(tagged.filter((t) => t.tag !== t.rec.id)).toEqual([]);
    const streamed = tagged.map((t) => t.rec);
    expect(streamed.filter((x) => x.step === 'discovered').map((x) => x.id).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(streamed.filter((x) => x.step === 'barrier')).toHaveLength(18);
    // uploader local: the package was copied into each pod through the exec API, once per pod.
    expect(r.stdout.match(/fetched and unpacked the package \(\d+ bytes\) from the copy made through the exec API/g)).toHaveLength(3);
    if (placement === 'client') {
      expect(copiedInto(home, jobId).sort()).toEqual([...byPod.keys()].sort());
    } else {
      // The job master ran in its pod, on its pod IP (the workers were given its Service's ClusterIP), under its
      // Role; the client reached it through the API server's service proxy.
      expect(jobMasterLog(jobId)).toMatch(/job master listening at http:\/\/10\.244\.\d+\.\d+:7575/);
      const record = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { url: string; kubernetes: { namespace: string } } };
      expect(record.jobMaster.url).toMatch(new RegExp(`/api/v1/namespaces/${ns}/services/${jobNames(jobId).jobMasterService}%3Ahttp/proxy$`));
      expect(record.jobMaster.kubernetes.namespace).toBe(ns);
      await waitFor('the job master\'s last line', () => /ended SUCCEEDED: all 6 workers completed/.test(jobMasterLog(jobId)), 10_000);
    }
    expect(await objectsOf(ns, jobId)).toEqual([]);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
  });

  it('resources.gpus: 1 puts every worker pod on the one node advertising nvidia.com/gpu; a job without GPUs is not kept to it', async () => {
    const ns = await namespace();
    const nodeOf = async (gpus: number): Promise<string[]> => {
      const home = tempHome();
      const job = makeJob(
        { name: `k8s-gpus-${gpus}`, workers: 3, resources: { cpu: 0.1, memory: '64Mi', gpus }, worker: { module: 'w.mjs' }, ...k8sSpec(ns) },
        { 'w.mjs': fixture('k8s-worker.mjs') },
      );
      const r = await runCli(['submit', job], home);
      const jobId = jobIds(home)[0]!;
      expect(r.code, `${r.stderr}\n${podLogs()}`).toBe(0);
      expect(await objectsOf(ns, jobId)).toEqual([]);
      // The node each worker's pod was bound to (spec.nodeName, given to the container by the downward API).
      const found = testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'discovered');
      expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2]);
      return found.map((x) => x.node!);
    };
    const gpuNode = (await core.readNode({ name: 'n3' })).status?.allocatable?.[GPU];
    expect(gpuNode).toBe('4');
    expect(await nodeOf(1)).toEqual(['n3', 'n3', 'n3']);
    // The scheduler spreads a job's 3 pods over the nodes: nothing but the GPU request ties them to n3.
    expect((await nodeOf(0)).some((n) => n !== 'n3')).toBe(true);
  });

  it('resources.gpus: 5, more than any node has: the job waits QUEUED with the scheduler\'s "Insufficient nvidia.com/gpu"; kill leaves nothing', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob({ name: 'k8s-gpus-5', workers: 1, resources: { cpu: 0.1, memory: '64Mi', gpus: 5 }, worker: { command: 'true' }, ...k8sSpec(ns) });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('QUEUED for the GPUs', () => /job QUEUED by the cluster: .*Insufficient nvidia\.com\/gpu/.test(cli.output().stderr), 60_000);
    expect((await runCli(['kill', jobId], home)).code).toBe(0);
    await cli.closed;
    await waitFor('nothing of the job left', async () => (await objectsOf(ns, jobId)).length === 0, 30_000);
  });

  it.each(['client', 'cluster'] as const)('worker pods get the worker token from their own Secret key, never the job secret (job master placement %s); their kill and scale are refused', async (placement) => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-tokens', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { command: [process.execPath, 'attack.mjs'] }, ...k8sSpec(ns, {}, placement) },
      { 'attack.mjs': fixture('credentials-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const envs = expectWorkersHeldOnlyTheWorkerToken(r, path.join(home, 'jobs', jobId), 2);
    for (const e of envs) expect(e.TWISTER2_JOB_SECRET).toBeUndefined();
    const secret = readFileSync(path.join(home, 'jobs', jobId, 'token'), 'utf8').trim();
    expect(podLogs(logDir, jobId)).not.toContain(secret);
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

  it.each(['client', 'cluster'] as const)('workers that finish at different times stay finished: no container of a finished worker is restarted; SUCCEEDED (job master placement %s)', async (placement) => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob({ name: 'k8s-staggered', workers: 3, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['4000'] }, ...k8sSpec(ns, {}, placement) }, { 'w.mjs': STAGGERED_WORKER });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${podLogs(logDir, jobId)}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 3 workers completed/);
    expect(testRecords<Rec>(r.stdout).filter((x) => x.step === 'finished').map((x) => x.id).sort()).toEqual([0, 1, 2]);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
    // Worker 0 finished 8 s before worker 2: its runtime idled (a kubelet restarts a pod's container whenever it
    // exits) until the job's end deleted its pod, which stopped it with SIGTERM.
    const workers = runner!.processes().filter((p) => p.pod.startsWith(`${jobNames(jobId).workers(0)}-`));
    expect(workers.map((p) => ({ pod: p.pod, restartCount: p.restartCount, exitCode: p.exitCode })).sort((a, b) => a.pod.localeCompare(b.pod))).toEqual(
      [0, 1, 2].map((o) => ({ pod: `${jobNames(jobId).workers(0)}-${o}`, restartCount: 0, exitCode: 143 })),
    );
    expect(podLogs(logDir, jobId)).not.toMatch(/already completed/);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it.each(['client', 'cluster'] as const)('a worker killed hard whose end the kubelet reports only after its heartbeats were missed and its restart registered spends one restart (maxRestarts 1); its new run\'s output reaches the client; SUCCEEDED (job master placement %s)', async (placement) => {
    const ns = await namespace();
    const home = tempHome();
    const trigger = path.join(tempHome(), 'finish');
    const job = makeJob(
      { name: 'k8s-late-status', workers: 2, restart: { maxRestarts: 1 }, timeouts: { heartbeat: '3s' }, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: [trigger] }, ...k8sSpec(ns, {}, placement) },
      { 'w.mjs': WAITING_WORKER },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const pod1 = `${jobNames(jobId).workers(0)}-1`;
    const started = (restart: number) => testRecords<Rec>(podLogs(logDir, jobId)).find((x) => x.step === 'start' && x.id === 1 && x.restart === restart);
    const explain = (err: Error) => {
      throw new Error(`${err.message}\n${cli.output().stderr}\n${podLogs(logDir, jobId)}\n${runner!.errors().join('\n')}`);
    };
    await waitFor('worker 1 started', () => started(0), 60_000).catch(explain);
    // The kubelet's status reports lag: the job master learns of the crash from the missed heartbeats, and
    // the restarted worker registers, before the pod's status says that the first run ended.
    const release = runner!.holdStatusUpdates();
    const first = runner!.processes().find((p) => p.pod === pod1 && p.exitCode === undefined)!;
    process.kill(-first.pid, 'SIGKILL');
    await waitFor('worker 1 registered again', () => started(1), 60_000).catch(explain);
    release();
    // The job master's launcher follows the new run once it saw the first one end (and reported that): its
    // output reaching the client means the late report was made.
    await waitFor('worker 1\'s new run followed', () => taggedRecords<Rec>(cli.output().stdout).some((t) => t.tag === 1 && t.rec.step === 'start' && t.rec.restart === 1), 30_000).catch(explain);
    writeFileSync(trigger, '');
    expect(await cli.closed, `${cli.output().stderr}\n${podLogs(logDir, jobId)}`).toBe(0);
    expect(cli.output().stderr).toMatch(/SUCCEEDED: all 2 workers completed/);
    const done = taggedRecords<Rec>(cli.output().stdout).filter((t) => t.rec.step === 'done');
    expect(done.map((t) => `${t.tag}:${t.rec.id}#${t.rec.restart}`).sort()).toEqual(['0:0#0', '1:1#1']);
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });
});

/** A worker that says it started (with its restart count), then finishes once the file `args[0]` exists. */
const WAITING_WORKER = `import { existsSync } from 'node:fs';
export default async function (ctx) {
  const rec = (step) => console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, restart: ctx.restartCount, step }));
  rec('start');
  while (!existsSync(ctx.args[0])) await new Promise((r) => setTimeout(r, 100));
  rec('done');
}
`;

/** A worker that passes a barrier with the others, then finishes `workerId × args[0]` ms later. */
const STAGGERED_WORKER = `export default async function (ctx) {
  await ctx.barrier('joined');
  await new Promise((r) => setTimeout(r, ctx.workerId * Number(ctx.args[0])));
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'finished' }));
}
`;

/** A worker that joins, passes a barrier, says it runs, and ends after `ms`. */
const SHORT_WORKER = `export default async function (ctx) {
  await ctx.barrier('joined');
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'running' }));
  await new Promise((r) => setTimeout(r, Number(ctx.args[0] ?? 0)));
}
`;

/** What the test cluster's network and pod runner did for a job, for a failure's message. */
async function diagnoseApi(ns: string, jobId: string): Promise<string> {
  const ep = await cluster.request('GET', `/api/v1/namespaces/${ns}/endpoints/${jobNames(jobId).jobMasterService}`);
  const pod = await cluster.request('GET', `/api/v1/namespaces/${ns}/pods/${jobNames(jobId).jobMaster}-0`);
  const p = pod.body as { status?: { phase?: string; podIP?: string; conditions?: unknown } };
  return `endpoints: ${JSON.stringify((ep.body as { subsets?: unknown }).subsets ?? ep.body)}\njm pod: ${p.status?.phase} ${p.status?.podIP} ${JSON.stringify(p.status?.conditions)}`;
}

function diagnose(jobId: string): string {
  const lo = execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).split('\n').map((l) => l.split(/\s+/)[3]).join(' ');
  const procs = runner!.processes().filter((p) => p.pod.startsWith(jobId)).map((p) => `${p.pod}/${p.container} pid ${p.pid} exit ${p.exitCode ?? '-'} ${p.signal ?? ''}`);
  return [`lo: ${lo}`, ...procs, `runner: ${runner!.errors().join('; ')}`, `network: ${network!.errors().join('; ')}`, jobMasterLog(jobId)].join('\n');
}

/** The job master pod's output, as the pod runner kept it. */
function jobMasterLog(jobId: string): string {
  const file = path.join(logDir, `${jobNames(jobId).jobMaster}-0-jobmaster.log`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

describe('the job master\'s journal in a ConfigMap, on a real API server', () => {
  const keep = (r: JournalRecord[]) => r;
  it('a second job master reads what the first committed and fences it off: its next commit fails, and nothing of it is stored', async () => {
    const ns = `t2k8s-${process.pid}-${++nsCount}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'j' }, data: {} } });
    const api = kubeApi({ namespace: ns, kubeconfig: cluster.kubeconfigFile });
    const fenced: Error[] = [];
    const first = await Journal.openIn(new ConfigMapJournalStore(api, 'j'), { compact: keep, onFenced: (e) => fenced.push(e) });
    expect(first.journal.epoch).toBe(1);
    first.journal.append({ t: 'worker', workerId: 0 });
    first.journal.append({ t: 'worker', workerId: 1 });
    await first.journal.flushed();
    const second = await Journal.openIn(new ConfigMapJournalStore(api, 'j'), { compact: keep, onFenced: () => undefined });
    expect(second.journal.epoch).toBe(2);
    expect(second.records.map((r) => r.t === 'worker' ? r.workerId : r.t)).toEqual(['epoch', 0, 1, 'epoch']);
    first.journal.append({ t: 'worker', workerId: 2 });
    await expect(first.journal.flushed()).rejects.toThrow(/epoch 1 was superseded by epoch 2/);
    expect(fenced).toHaveLength(1);
    second.journal.append({ t: 'worker', workerId: 3 });
    await second.journal.flushed();
    const stored = await new ConfigMapJournalStore(api, 'j').peek();
    expect(stored.filter((r) => r.t === 'worker').map((r) => r.workerId)).toEqual([0, 1, 3]);
    await core.deleteNamespace({ name: ns });
  });

  it('is rewritten compactly (gzip\'d in binaryData) before it nears the 1 MiB a ConfigMap holds, and reads back the same', async () => {
    const ns = `t2k8s-${process.pid}-${++nsCount}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'j' }, data: {} } });
    const api = kubeApi({ namespace: ns, kubeconfig: cluster.kubeconfigFile });
    // Later records of a worker replace earlier ones: the compact journal keeps the last of each.
    const lastOfEach = (r: JournalRecord[]) => [...new Map(r.map((x) => [x.t === 'worker' ? `w${String(x.workerId)}` : `${x.t}${String(x.epoch ?? '')}`, x])).values()];
    const { journal } = await Journal.openIn(new ConfigMapJournalStore(api, 'j'), { compact: lastOfEach, onFenced: () => undefined });
    const pad = 'x'.repeat(2000);
    for (let i = 0; i < 400; i++) {
      journal.append({ t: 'worker', workerId: i % 10, n: i, pad });
      if (i % 20 === 19) await journal.flushed(); // 20 commits of 40 KB each: past 256 KiB, rewritten
    }
    await journal.flushed();
    const cm = await core.readNamespacedConfigMap({ name: 'j', namespace: ns });
    expect(cm.binaryData?.snapshot).toBeDefined();
    expect(JSON.stringify(cm).length).toBeLessThan(600 * 1024);
    const back = await new ConfigMapJournalStore(api, 'j').peek();
    const last = lastOfEach(back).filter((r) => r.t === 'worker');
    expect(last.map((r) => r.n).sort((a, b) => Number(a) - Number(b))).toEqual([390, 391, 392, 393, 394, 395, 396, 397, 398, 399]);
    await core.deleteNamespace({ name: ns });
  });
});

describe('kubernetes: the job master in its own pod (jobMaster.placement cluster, the default there)', () => {
  const inCluster = (ns: string, extra: Record<string, unknown> = {}) => k8sSpec(ns, extra, 'cluster');

  it('submit --detach returns at once; status and scale 4 → 8 → 4 go through the service proxy to the job master, which patches the StatefulSet', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob({ name: 'k8s-jm-scale', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...inCluster(ns, { workersPerPod: 2 }) }, { 'w.mjs': fixture('sleep-worker.mjs') });
    const submitted = await runCli(['submit', '--detach', job], home);
    expect(submitted.code, `${submitted.stderr}\n${diagnose(jobIds(home)[0]!)}\n${await diagnoseApi(ns, jobIds(home)[0]!)}`).toBe(0);
    expect(submitted.stderr).toMatch(new RegExp(`job master running in a pod of Kubernetes namespace "${ns}"`));
    const jobId = jobIds(home)[0]!;
    let said = '';
    const status = async () => {
      const r = await runCli(['status', jobId, '--json'], home);
      said = r.stderr;
      return JSON.parse(r.stdout || '{}') as { state?: string; numWorkers?: number; registered?: number };
    };
    const replicas = async () => ((await cluster.request('GET', `/apis/apps/v1/namespaces/${ns}/statefulsets/${jobNames(jobId).workers(0)}`)).body as { spec: { replicas: number } }).spec.replicas;
    await waitFor('4 workers running', async () => (await status()).state === 'RUNNING', 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${said}\n${diagnose(jobId)}`);
    });
    const scale = async (n: number) => {
      const r = await runCli(['scale', jobId, String(n)], home);
      expect(r.code, `${r.stderr}\n${diagnose(jobId)}\n${await diagnoseApi(ns, jobId)}`).toBe(0);
    };
    await scale(8);
    expect(await replicas()).toBe(4);
    await waitFor('8 workers registered', async () => (await status()).registered === 8, 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${said}\n${diagnose(jobId)}\n${await diagnoseApi(ns, jobId)}\n${podLogs(logDir, jobId)}`);
    });
    await scale(4);
    expect(await replicas()).toBe(2);
    expect(await status()).toMatchObject({ numWorkers: 4 });
    // Another client follows the workers' output from the pod logs until the job ends.
    const follow = startCli(['logs', '-f', jobId], home);
    await waitFor('the sleeping workers\' output', () => /\[worker 3\] T2TEST \{"id":3,"step":"sleeping"/.test(follow.output().stdout), 30_000);
    // Without -f, `logs` reads the pods' logs once through the API server, also in a shell that followed nothing.
    const other = tempHome();
    cpSync(path.join(home, 'jobs', jobId), path.join(other, 'jobs', jobId), { recursive: true });
    rmSync(path.join(other, 'jobs', jobId, 'logs'), { recursive: true, force: true });
    const now = await runCli(['logs', jobId], other);
    expect(now.code, now.stderr).toBe(0);
    const sleeping = testRecords<Rec>(now.stdout).filter((x) => x.step === 'sleeping');
    expect(sleeping.map((x) => x.id)).toEqual(expect.arrayContaining([0, 1, 2, 3]));
    expect(now.stdout).toMatch(/^\[worker 2\] T2TEST \{"id":2,"step":"sleeping"/m);
    const killed = await runCli(['kill', jobId], home);
    expect(killed.code, killed.stderr).toBe(0);
    expect(await follow.closed).toBe(0);
    expect(await objectsOf(ns, jobId)).toEqual([]);
    expect(await status()).toMatchObject({ state: 'KILLED' });
  });

  it('the job master in its pod reports to a dashboard (dashboard.url): its page shows the job and its workers; a kill pressed there ends it; nothing left', async () => {
    const ns = await namespace();
    const d = await startDashboard(tempHome()); // another home: the dashboard knows the job only by its reports
    const home = tempHome();
    const job = makeJob({ name: 'k8s-dash', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, dashboard: { url: d.url }, ...inCluster(ns) }, { 'w.mjs': fixture('sleep-worker.mjs') });
    const cli = startCli(['submit', job], home, { TWISTER2_DASHBOARD_TOKEN: d.token });
    try {
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      const shown = await jobRowOnPage(d, jobId, 'RUNNING', 90_000).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${cli.output().stderr}\n${diagnose(jobId)}\n${await diagnoseApi(ns, jobId)}`);
      });
      expect(shown).toContain('kubernetes');
      const detail = (await d.api<{ via: string; workers: Array<{ workerId: number; state: string; ip?: string }> }>(`/api/jobs/${jobId}`)).body;
      expect(detail.via).toBe('report');
      await waitFor('both workers RUNNING on the dashboard', async () => (await d.api<{ running: number }>(`/api/jobs/${jobId}`)).body.running === 2, 60_000);
      expect((await d.api(`/api/jobs/${jobId}/kill`, { method: 'POST', body: '{}' })).status).toBe(202);
      expect(await cli.closed, cli.output().stderr).toBe(3);
      expect(await jobRowOnPage(d, jobId, 'KILLED')).toContain('killed from the dashboard');
      await waitFor('every object of the job gone', async () => (await objectsOf(ns, jobId)).length === 0, 60_000);
    } finally {
      cli.kill('SIGKILL');
      await d.stop();
    }
  });

  it('a SIGKILLed client: the job runs on, ends by itself, and its job master removes every object; status, scale and kill then say how it ended', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob({ name: 'k8s-jm-orphan', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['4000'] }, ...inCluster(ns) }, { 'w.mjs': SHORT_WORKER });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('2 workers running', () => testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'running').length === 2, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${cli.output().stderr}\n${diagnose(jobId)}\n${podLogs(logDir, jobId)}`);
    });
    cli.kill('SIGKILL');
    await waitFor('nothing left', async () => (await objectsOf(ns, jobId)).length === 0, 60_000);
    // Its last words come after it deleted the root.
    await waitFor('the job master\'s last line', () => /ended SUCCEEDED: all 2 workers completed/.test(jobMasterLog(jobId)), 10_000);
    // No client saw the end and the job master's pod is gone, but it left how the job ended in an Event on the
    // job's root, which outlives the job (until the API server's --event-ttl).
    const events = await cluster.request('GET', `/api/v1/namespaces/${ns}/events?labelSelector=twister2.io/job=${jobId}`);
    const ended = (events.body as { items: { reason: string; type: string; message: string; involvedObject: { kind: string; name: string } }[] }).items;
    expect(ended.map((e) => ({ reason: e.reason, type: e.type, on: `${e.involvedObject.kind}/${e.involvedObject.name}` }))).toEqual([
      { reason: 'Twister2JobEnded', type: 'Normal', on: `ConfigMap/${jobNames(jobId).root}` },
    ]);
    expect(ended[0]!.message).toBe(`job ${jobId} ended SUCCEEDED: all 2 workers completed`);
    // `scale` finds that end too, instead of "cannot reach the job master" (and records it for what follows).
    const scale = await runCli(['scale', jobId, '4'], home);
    expect({ code: scale.code, stderr: scale.stderr }).toMatchObject({ code: 2, stderr: expect.stringContaining(`job ${jobId} already ended (SUCCEEDED): all 2 workers completed`) });
    const status = await runCli(['status', jobId, '--json'], home);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ jobId, state: 'SUCCEEDED', message: 'all 2 workers completed', registered: 2 });
    // Recorded in the job directory: `list` shows it without asking again.
    const list = await runCli(['list', '--json'], home);
    expect(JSON.parse(list.stdout)).toMatchObject([{ jobId, state: 'SUCCEEDED' }]);
    // With the Event gone (expired), `status` says that how the job ended is not known.
    const home2 = tempHome();
    cpSync(path.join(home, 'jobs', jobId), path.join(home2, 'jobs', jobId), { recursive: true });
    rmSync(path.join(home2, 'jobs', jobId, 'status.json'));
    await cluster.request('DELETE', `/api/v1/namespaces/${ns}/events?labelSelector=twister2.io/job=${jobId}`);
    const unknown = await runCli(['status', jobId], home2);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(new RegExp(`ended while no client followed it: .*no Event of the job .*nothing of the job is left in namespace "${ns}"`));
    const kill = await runCli(['kill', jobId], home2);
    expect(kill.code).toBe(2);
    expect(kill.stderr).toMatch(/ended while no client followed it: .*no Event of the job/);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
  });

  // A short job, or a slow machine, can have the job end and its job master go with it before the client got
  // through. SIGSTOP makes that client slow exactly there: it must still find how the job ended (the Event).
  it.each([
    { stopped: 'before it first reached the job master', detach: false, workMs: 0 },
    { stopped: 'before it first reached the job master', detach: true, workMs: 0 },
    { stopped: 'while it followed the job', detach: false, workMs: 6000 },
  ])('a client stopped $stopped (--detach: $detach) until the job ended and its job master went: it reports SUCCEEDED, exit 0', async ({ detach, workMs }) => {
    const storage = mkdtempSync(path.join(os.tmpdir(), 't2-k8s-pkgsrv-'));
    const server = new PackageServer();
    const token = randomBytes(16).toString('hex');
    const url = await server.start({ dir: storage, token, maxBytes: 2 ** 30 });
    let started: ReturnType<typeof startCli> | undefined;
    try {
      const ns = await namespace();
      const home = tempHome();
      // uploader http: the job runs without the client (with uploader local it would wait for the client's copy).
      const job = makeJob(
        { name: 'k8s-jm-late', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: [String(workMs)] }, uploader: { kind: 'http', http: { url } }, ...inCluster(ns) },
        { 'w.mjs': SHORT_WORKER },
      );
      const cli = (started = startCli(['submit', ...(detach ? ['--detach'] : []), job], home, { TWISTER2_PACKAGE_SERVER_TOKEN: token }));
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      if (workMs === 0) {
        // The worker StatefulSet is the last object the client creates; the job master's process does not run yet.
        const workerSet = `/apis/apps/v1/namespaces/${ns}/statefulsets/${jobNames(jobId).workers(0)}`;
        await waitFor('the worker StatefulSet', async () => (await cluster.request('GET', workerSet, undefined, [404])).status === 200, 60_000);
        process.kill(cli.pid!, 'SIGSTOP');
        expect(runner!.processes().filter((p) => p.container === 'jobmaster')).toEqual([]);
      } else {
        // The client submitted (so it started following) and the job runs; a client late enough to find the
        // job RUNNING already prints no progress, so give its event stream a moment to connect: stopped before
        // that, the old client could get through by chance (a weaker test, not a failing one).
        const running = () => testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'running').length === 2;
        await waitFor('the client following the running job', () => /submitted to kubernetes/.test(cli.output().stderr) && running(), 60_000).catch(async (err: Error) => {
          throw new Error(`${err.message}\n${cli.output().stderr}\n${diagnose(jobId)}\n${podLogs(logDir, jobId)}`);
        });
        await sleep(1000);
        process.kill(cli.pid!, 'SIGSTOP');
      }
      const endEvents = async () => ((await cluster.request('GET', `/api/v1/namespaces/${ns}/events?labelSelector=twister2.io/job=${jobId}`)).body as { items: unknown[] }).items.length;
      await waitFor('the job ended, recorded and removed by its job master', async () => (await endEvents()) === 1 && (await objectsOf(ns, jobId)).length === 0, 90_000).catch(async (err: Error) => {
        throw new Error(`${err.message}\nevents: ${await endEvents()}, objects: ${(await objectsOf(ns, jobId)).join(' ')}\n${diagnose(jobId)}\n${podLogs(logDir, jobId)}`);
      });
      await waitFor('the job master\'s last line', () => /ended SUCCEEDED: all 2 workers completed/.test(jobMasterLog(jobId)), 10_000);
      process.kill(cli.pid!, 'SIGCONT');
      expect(await cli.closed, cli.output().stderr).toBe(0);
      expect(cli.output().stderr).toMatch(new RegExp(`job ${jobId} (ended )?SUCCEEDED: all 2 workers completed`));
      const status = await runCli(['status', jobId, '--json'], home);
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ jobId, state: 'SUCCEEDED' });
    } finally {
      if (started?.exitCode === null) started.kill('SIGKILL'); // a failed test's client may still be stopped
      await server.close();
      rmSync(storage, { recursive: true, force: true });
    }
  });

  it('uploader s3: the client uploads, workers fetch with a presigned URL, the job master deletes the package at the end', async () => {
    const s3 = await startS3Server();
    try {
      expect(s3cmd(s3, ['mb', 's3://jobs']).code).toBe(0);
      const ns = await namespace();
      const home = tempHome();
      const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
      const uploader = { kind: 's3', s3: { bucket: 'jobs', endpoint: s3.endpoint, forcePathStyle: true, credentials } };
      const job = makeJob({ name: 'k8s-jm-s3', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['3000'] }, uploader, ...inCluster(ns) }, { 'w.mjs': SHORT_WORKER });
      const cli = startCli(['submit', job], home);
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      await waitFor('2 workers running', () => testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'running').length === 2, 60_000);
      expect(s3ls(s3, 's3://jobs/twister2/')).toEqual([`twister2/${jobId}/package.tar.gz`]);
      expect(await cli.closed, cli.output().stderr).toBe(0);
      expect(cli.output().stdout).toMatch(/fetched and unpacked the package \(\d+ bytes\) from http:\/\/127\.0\.0\.1/);
      // The job master, given the client's credentials through the job Secret, deleted what the client uploaded.
      await waitFor('the package deleted', () => s3ls(s3, 's3://jobs/twister2/').length === 0, 10_000);
      const everything = [cli.output().stdout, cli.output().stderr, podLogs(logDir, jobId), jobMasterLog(jobId)].join('\n');
      expect(everything.includes(s3.secretAccessKey)).toBe(false);
      expect(await objectsOf(ns, jobId)).toEqual([]);
    } finally {
      await s3.stop();
    }
  });

  it('uploader http: workers fetch from the package server; the job master, given the client\'s token, deletes the package', async () => {
    const storage = mkdtempSync(path.join(os.tmpdir(), 't2-k8s-pkgsrv-'));
    const server = new PackageServer();
    const token = randomBytes(16).toString('hex');
    const url = await server.start({ dir: storage, token, maxBytes: 2 ** 30 });
    try {
      const ns = await namespace();
      const home = tempHome();
      const job = makeJob(
        { name: 'k8s-jm-http', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['3000'] }, uploader: { kind: 'http', http: { url } }, ...inCluster(ns) },
        { 'w.mjs': SHORT_WORKER },
      );
      const cli = startCli(['submit', job], home, { TWISTER2_PACKAGE_SERVER_TOKEN: token });
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      await waitFor('2 workers running', () => testRecords<Rec>(podLogs(logDir, jobId)).filter((x) => x.step === 'running').length === 2, 60_000);
      expect(existsSync(path.join(storage, `${jobId}.tar.gz`))).toBe(true);
      expect(await cli.closed, cli.output().stderr).toBe(0);
      expect(server.stats().gets[`${jobId}.tar.gz`]).toBe(2); // one per pod
      await waitFor('the package deleted', () => readdirSync(storage).filter((f) => f.startsWith(jobId)).length === 0, 10_000);
      expect(server.stats().deletes).toBe(1);
      expect([cli.output().stdout, cli.output().stderr, podLogs(logDir, jobId), jobMasterLog(jobId)].join('\n').includes(token)).toBe(false);
      expect(await objectsOf(ns, jobId)).toEqual([]);
    } finally {
      await server.close();
      rmSync(storage, { recursive: true, force: true });
    }
  });

  it('a package that cannot be copied into the job master pod fails the submission, naming the pod; nothing left', async () => {
    const ns = await namespace({ serveExec: false });
    const home = tempHome();
    const job = makeJob({ name: 'k8s-jm-nocopy', workers: 2, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...inCluster(ns) }, { 'w.mjs': fixture('barrier-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`could not copy the job package into pod ${ns}/${jobNames(jobId).jobMaster}-0 through the exec API after 5 attempts: \\S`));
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await objectsOf(ns, jobId)).toEqual([]);
  });

  it('the job master container SIGKILLed twice is restarted by the kubelet and carries on from its journal: 4 workers pass 8 barriers, none restarted, the client follows through, SUCCEEDED, nothing left', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-jm-restarts', workers: 4, timeouts: { heartbeat: '3s' }, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['8', '300'] }, ...inCluster(ns) },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const recs = () => testRecords<Rec & { pid: number }>(podLogs(logDir, jobId));
    const killed: number[] = [];
    for (const round of [2, 5]) {
      await waitFor(`barrier ${round}`, () => recs().some((x) => x.step === 'pass' && x.n! >= round), 90_000);
      const jm = await waitFor('the running job master', () => runner!.processes().find((p) => p.pod.startsWith(jobNames(jobId).jobMaster) && p.container === 'jobmaster' && p.exitCode === undefined && !killed.includes(p.pid)), 30_000);
      process.kill(jm.pid, 'SIGKILL');
      killed.push(jm.pid);
    }
    expect(await cli.closed, `${cli.output().stderr}\n${diagnose(jobId)}`).toBe(0);
    expect(cli.output().stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    for (const id of [0, 1, 2, 3]) {
      const mine = recs().filter((x) => x.id === id);
      expect(mine.filter((x) => x.step === 'pass').map((x) => x.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      // The same worker process all along: not restarted.
      expect(new Set(mine.map((x) => x.pid)).size).toBe(1);
    }
    // The client printed every line once, though the job master it followed was restarted twice.
    expect(taggedRecords<Rec>(cli.output().stdout).filter((t) => t.rec.step === 'pass')).toHaveLength(32);
    expect(jobMasterLog(jobId).match(/the job master container was restarted; carrying on from the journal/g)).toHaveLength(2);
    await waitFor('nothing of the job left', async () => (await objectsOf(ns, jobId)).length === 0, 30_000);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
  });

  it('the job master pod deleted twice: the StatefulSet starts a new pod, whose job master carries on from the journal ConfigMap: 4 workers pass 8 barriers, none restarted, SUCCEEDED, nothing left', async () => {
    const ns = await namespace();
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-jm-pod-deleted', workers: 4, timeouts: { heartbeat: '3s' }, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs', args: ['8', '300'] }, ...inCluster(ns) },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    const cli = startCli(['submit', job, '--detach'], home);
    expect(await cli.closed, cli.output().stderr).toBe(0);
    const jobId = jobIds(home)[0]!;
    const recs = () => testRecords<Rec & { pid: number }>(podLogs(logDir, jobId));
    const pod = `${jobNames(jobId).jobMaster}-0`;
    const uids: string[] = [];
    for (const round of [2, 5]) {
      await waitFor(`barrier ${round}`, () => recs().some((x) => x.step === 'pass' && x.n! >= round), 90_000);
      const uid = (await core.readNamespacedPod({ name: pod, namespace: ns })).metadata!.uid!;
      uids.push(uid);
      await core.deleteNamespacedPod({ name: pod, namespace: ns });
      await waitFor('the next job master pod', async () => {
        const next = await core.readNamespacedPod({ name: pod, namespace: ns }).catch(() => undefined);
        return next && next.metadata?.uid !== uid && next.status?.phase === 'Running';
      }, 60_000);
    }
    const status = await waitFor('the job to end', async () => {
      const r = await runCli(['status', jobId, '--json'], home);
      const st = r.code === 0 || r.code === 1 ? (JSON.parse(r.stdout) as { state: string; message?: string; workers: { restarts: number }[]; jobMaster?: { restarts: number; host?: string } }) : undefined;
      return st && ['SUCCEEDED', 'FAILED', 'KILLED'].includes(st.state) && st;
    }, 120_000);
    expect(status.state, `${status.message}\n${diagnose(jobId)}`).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0, 0]);
    expect(status.jobMaster?.restarts).toBe(2);
    for (const id of [0, 1, 2, 3]) {
      const mine = recs().filter((x) => x.id === id);
      expect(mine.filter((x) => x.step === 'pass').map((x) => x.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(new Set(mine.map((x) => x.pid)).size).toBe(1);
    }
    expect(jobMasterLog(jobId).match(/the job master pod was replaced \(deleted or evicted\); carrying on from the journal ConfigMap/g)).toHaveLength(2);
    expect(jobMasterLog(jobId)).toMatch(/the job master pod is being deleted while the job's root stays/);
    await waitFor('nothing of the job left', async () => (await objectsOf(ns, jobId)).length === 0, 30_000);
    await waitFor('no process of the job', () => jobProcesses(jobId).length === 0, 10_000);
  });
});

/**
 * The pod runner runs every pod's containers on this machine, in its network: each pod's sshd cannot have
 * port 22 of its own IP, so here the image's sshd is a stub that only stays up, and mpirun's `ssh` (found on
 * PATH) runs the remote command locally, as if on another host: with a hostname and a TMPDIR of the address's
 * own (in pod 0's, whose child it is). OpenMPI keys its session directory on both
 * (`$TMPDIR/ompi.<hostname>.<uid>`) and every daemon clears its job family's there as it starts, so daemons
 * of different hosts sharing one removed each other's (`mkdir ...: File exists`, mpirun exit 213).
 * Everything else is the OpenMPI pods' own script: the SSH key from the Secret, the hostfile pod 0 writes
 * from the API server's list of pods (with the workers' account, under RBAC), and a real mpirun whose ranks
 * are the workers. SSH between hosts is proven by the mpi launcher's tests (sshd in network namespaces).
 */
const imageDirs: string[] = [];
afterAll(() => imageDirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function openmpiPodImage(opts: { sshFails?: boolean } = {}): { pathMap: Record<string, string>; extraEnv: Record<string, string> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-mpi-image-'));
  imageDirs.push(dir);
  for (const d of ['bin', 'root-ssh', 'run-sshd']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'sshd'), '#!/bin/sh\ncase " $* " in *" -D "*) exec sleep 100000;; esac\nexit 0\n', { mode: 0o755 });
  // ssh [options] host command...: options with a value are -b -c -E -F -i -J -l -o -p (the rest are flags).
  const ssh = [
    '#!/bin/sh',
    'while [ $# -gt 0 ]; do case "$1" in -[bcEFiJlop]) shift 2;; -*) shift;; *) break;; esac; done',
    opts.sshFails ? 'echo "ssh: connect to host port 22: Connection refused" >&2; exit 255' : 'host="ssh-$(printf %s "$1" | tr -c "A-Za-z0-9" -)"; shift',
    'export TMPDIR="${TMPDIR:-/tmp}/$host"',
    'mkdir -p "$TMPDIR"',
    `exec unshare --uts /bin/sh -c 'printf %s "$1" > /proc/sys/kernel/hostname && shift && exec sh -c "$*"' sh "$host" "$@"`,
  ];
  writeFileSync(path.join(dir, 'bin', 'ssh'), ssh.join('\n') + '\n', { mode: 0o755 });
  return {
    pathMap: { '/opt/twister2': ROOT, '/usr/sbin/sshd': path.join(dir, 'sshd'), '/root/.ssh': path.join(dir, 'root-ssh'), '/run/sshd': path.join(dir, 'run-sshd') },
    extraEnv: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}` },
  };
}

describe.each(['client', 'cluster'] as const)('kubernetes launcher, OpenMPI mode, job master placement %s', (placement) => {
  it('pod 0 writes the hostfile from the pod IPs the API lists and runs mpirun: ranks are worker IDs, SUCCEEDED, nothing left', async () => {
    ensureOpenMpi();
    const ns = await namespace(openmpiPodImage());
    const home = tempHome();
    const job = makeJob(
      { name: 'k8s-mpi', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, openmpi: true }, placement) },
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
    const tagged = taggedRecords<Rec & { rank: string; size: string }>(r.stdout);
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
      { name: 'k8s-mpi-bad', workers: 4, resources: { cpu: 0.1, memory: '64Mi' }, worker: { module: 'w.mjs' }, ...k8sSpec(ns, { workersPerPod: 2, openmpi: true }, placement) },
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

/** The conformance suite in one namespace, with its own pod runner and network across its tests. */
function conformanceIn(placement: 'client' | 'cluster'): void {
  let ns = '';
  let own: { runner?: PodRunner; network?: PodNetwork } = {};
  beforeAll(async () => {
    ns = await namespace();
    own = { runner, network };
    runner = undefined;
    network = undefined;
  }, 60_000);
  afterAll(async () => {
    await own.runner?.stop();
    await own.network?.stop();
  });
  launcherConformance({
    cluster: 'kubernetes',
    get spec() {
      return { resources: { cpu: 0.1, memory: '64Mi' }, ...k8sSpec(ns, {}, placement) };
    },
    leftovers: async (jobId) => {
      const objects = await objectsOf(ns, jobId);
      // kwok removes a deleted pod's object at once, where a kubelet keeps it until its containers stopped:
      // the runner's processes get the pod's grace period to end (the job master's last words, say).
      const deadline = Date.now() + 10_000;
      while (jobProcesses(jobId).length > 0 && Date.now() < deadline) await sleep(100);
      const procs = jobProcesses(jobId);
      return [...objects, ...(procs.length ? [`processes: ${procs.join(' ')}`] : [])];
    },
    cleanupWithinMs: 20_000,
    outlivesClient: placement === 'cluster',
  });
}

describe('kubernetes launcher conformance, job master in the client', () => conformanceIn('client'));
describe('kubernetes launcher conformance, job master in its pod', () => conformanceIn('cluster'));

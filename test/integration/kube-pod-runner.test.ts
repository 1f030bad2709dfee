import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1EnvVar, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodRunner, type PodProcess, type PodRunner } from '../env/kube-pod-runner.js';
import { PodLogFollower } from '../../src/launchers/k8s/pod-logs.js';

// Proves test/env/kube-pod-runner.ts: the containers of kwok's Running pods run as local processes with the
// environment and volumes the pod spec gives them, and die with their pods.

let cluster: KubeCluster;
let core: CoreV1Api;
let apps: AppsV1Api;
let runner: PodRunner | undefined;
let tmp: string;

const SECRET_VALUE = `s3cr3t-${Math.random().toString(36).slice(2)}`;
// The "image": a script under /opt/app, mapped to a local dir by pathMap. Writes what it sees, then sleeps.
const SCRIPT = `
const fs = require('node:fs');
const path = require('node:path');
const keys = ['LIT', 'POD_NAME', 'POD_IP', 'NODE', 'UID', 'TOKEN', 'GREETING', 'ESCAPED', 'MISSING', 'OUT_DIR', 'CPU', 'MEM', 'CONTAINER', 'HOSTNAME', 'KUBERNETES_SERVICE_HOST'];
const out = { cwd: process.cwd(), pid: process.pid, argv: process.argv.slice(2), host: require('node:os').hostname() };
for (const k of keys) out[k] = process.env[k];
fs.writeFileSync(path.join(process.env.OUT_DIR, process.env.CONTAINER + '.json'), JSON.stringify(out));
console.log('started ' + process.env.CONTAINER);
setInterval(() => {}, 1 << 30);
`;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'twister2-pod-runner-test-'));
  writeFileSync(path.join(tmp, 'env.cjs'), SCRIPT);
  cluster = await startKubeCluster({ nodes: [{ name: 'pr-1' }, { name: 'pr-2' }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
}, 120_000);

afterAll(async () => {
  await runner?.stop();
  await cluster?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; runner errors: ${runner?.errors().join('; ')}`);
    await sleep(100);
  }
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function statefulSet(): V1StatefulSet {
  const labels = { app: 'w' };
  const env: V1EnvVar[] = [
    { name: 'LIT', value: 'hello' },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
    { name: 'GREETING', value: '$(LIT)-$(POD_NAME)' },
    { name: 'ESCAPED', value: '$$(LIT)' },
    { name: 'MISSING', value: '$(NOPE)' },
    { name: 'OUT_DIR', value: '/data/shared' },
    { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
    { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
  ];
  const common = {
    image: 'twister2/test:none',
    volumeMounts: [{ name: 'shared', mountPath: '/data/shared' }],
    resources: { requests: { cpu: '100m', memory: '32Mi' }, limits: { cpu: '2', memory: '64Mi' } },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'w', labels },
    spec: {
      replicas: 2,
      serviceName: 'w',
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            { name: 'a', ...common, command: ['node', '/opt/app/env.cjs'], args: ['$(POD_NAME)', '/data/shared/x'], env: [...env, { name: 'CONTAINER', value: 'a' }] },
            // A shell whose background child must die with the pod too (process group).
            {
              name: 'b',
              ...common,
              command: ['sh', '-c', 'sleep 600 & echo $! > /data/shared/b-sleep.pid; exec node /opt/app/env.cjs'],
              env: [...env, { name: 'CONTAINER', value: 'b' }],
            },
          ],
          volumes: [{ name: 'shared', emptyDir: {} }],
        },
      },
    },
  };
}

interface Seen {
  [k: string]: unknown;
  argv: string[];
  cwd: string;
  pid: number;
}

/** The pod's two processes, once both wrote their files; with what they saw. */
async function podReady(pod: string, notUid?: string): Promise<{ uid: string; procs: PodProcess[]; dir: string; seen: Record<string, Seen>; sleepPid: number }> {
  return waitUntil(`${pod} running both containers`, () => {
    const procs = runner?.processes().filter((p) => p.pod === pod && p.uid !== notUid && p.exitCode === undefined) ?? [];
    if (procs.length !== 2) return false;
    const dir = procs[0]?.mounts['/data/shared'] ?? '';
    const files = ['a.json', 'b.json', 'b-sleep.pid'].map((f) => path.join(dir, f));
    if (!files.every((f) => existsSync(f))) return false;
    try {
      const seen = { a: JSON.parse(readFileSync(files[0]!, 'utf8')) as Seen, b: JSON.parse(readFileSync(files[1]!, 'utf8')) as Seen };
      const sleepPid = Number(readFileSync(files[2]!, 'utf8').trim());
      return sleepPid > 0 && { uid: procs[0]?.uid ?? '', procs, dir, seen, sleepPid };
    } catch {
      return false; // Partly written.
    }
  });
}

describe('kube pod runner (kwok pods as local processes)', () => {
  it('runs each container of Running pods locally with the pod spec environment, and kills them with the pod', async () => {
    const ns = 't-runner';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await waitUntil('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((sa) => sa.metadata?.name === 'default'));
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'creds' }, stringData: { token: SECRET_VALUE } } });
    const logDir = path.join(tmp, 'logs');
    runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, labelSelector: 'app=w', logDir, pathMap: { '/opt/app': tmp } });
    await apps.createNamespacedStatefulSet({ namespace: ns, body: statefulSet() });

    const t0 = Date.now();
    const [p0, p1] = await Promise.all([podReady('w-0'), podReady('w-1')]);
    console.log(`4 processes up ${((Date.now() - t0) / 1000).toFixed(1)} s after creating the StatefulSet`);
    expect(runner.processes()).toHaveLength(4);
    const api = new Map<string, V1Pod>((await core.listNamespacedPod({ namespace: ns })).items.map((p) => [p.metadata?.name ?? '', p]));

    for (const [name, r] of [['w-0', p0], ['w-1', p1]] as const) {
      const pod = api.get(name);
      expect(r.uid).toBe(pod?.metadata?.uid);
      expect(r.procs.map((p) => p.container).sort()).toEqual(['a', 'b']);
      for (const p of r.procs) expect(alive(p.pid)).toBe(true);
      // Both containers share the pod's emptyDir; env values naming the mount point are the local dir.
      expect(r.procs[0]?.mounts['/data/shared']).toBe(r.procs[1]?.mounts['/data/shared']);
      expect(r.dir.startsWith(runner.dir + path.sep)).toBe(true);
      for (const c of ['a', 'b']) {
        const s = r.seen[c]!;
        expect(s).toMatchObject({
          LIT: 'hello',
          POD_NAME: name,
          POD_IP: pod?.status?.podIP,
          NODE: pod?.spec?.nodeName,
          UID: pod?.metadata?.uid,
          TOKEN: SECRET_VALUE,
          GREETING: `hello-${name}`,
          ESCAPED: '$(LIT)',
          MISSING: '$(NOPE)',
          OUT_DIR: r.dir,
          CPU: '2',
          MEM: '64',
          CONTAINER: c,
          HOSTNAME: name,
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
        });
        expect(s.POD_IP).toMatch(/^10\.244\./);
        // gethostname() says the pod's hostname too (a UTS namespace per container), and the PID the runner
        // tracks and signals is the container's own process, not a wrapper's.
        expect(s.host).toBe(name);
        expect(s.pid).toBe(r.procs.find((p) => p.container === c)?.pid);
        expect(s.cwd.startsWith(runner.dir + path.sep)).toBe(true);
        // The line comes through the runner's pipe, which may be read after the file above was written.
        await waitUntil(`${name}/${c}'s first line in its log`, () => readFileSync(path.join(logDir, `${name}-${c}.log`), 'utf8').includes(`started ${c}`), 10_000);
      }
      // $(VAR) in args, and a mount path in args and inside a shell script.
      expect(r.seen.a?.argv).toEqual([name, path.join(r.dir, 'x')]);
      expect(alive(r.sleepPid)).toBe(true);
      // The service account volume the admission plugin added holds a real token bound to the pod.
      const sa = r.procs[0]?.mounts['/var/run/secrets/kubernetes.io/serviceaccount'] ?? '';
      expect(readFileSync(path.join(sa, 'namespace'), 'utf8')).toBe(ns);
      expect(readFileSync(path.join(sa, 'ca.crt'), 'utf8')).toBe(readFileSync(cluster.caFile, 'utf8'));
      expect(readFileSync(path.join(sa, 'token'), 'utf8')).toMatch(/^ey/);
    }
    expect(p0.dir).not.toBe(p1.dir);

    // Deleting a pod kills its processes (the shell's background child too); the recreated pod gets new ones.
    await core.deleteNamespacedPod({ namespace: ns, name: 'w-1' });
    const t1 = Date.now();
    const again = await podReady('w-1', p1.uid);
    console.log(`w-1 running again ${((Date.now() - t1) / 1000).toFixed(1)} s after deleting it`);
    const oldPids = [...p1.procs.map((p) => p.pid), p1.sleepPid];
    await waitUntil('old w-1 processes gone', () => oldPids.every((pid) => !alive(pid)), 10_000);
    const old = runner.processes().filter((p) => p.uid === p1.uid);
    expect(old.map((p) => p.exitCode === undefined)).toEqual([false, false]);
    const now = (await core.readNamespacedPod({ namespace: ns, name: 'w-1' })) as V1Pod;
    expect(again.uid).toBe(now.metadata?.uid);
    expect(again.uid).not.toBe(p1.uid);
    expect(again.dir).not.toBe(p1.dir);
    expect(again.seen.a).toMatchObject({ UID: again.uid, POD_IP: now.status?.podIP, TOKEN: SECRET_VALUE });
    expect(again.procs.map((p) => p.pid).some((pid) => oldPids.includes(pid))).toBe(false);
    // w-0 was left alone.
    for (const p of p0.procs) expect(alive(p.pid)).toBe(true);
    expect(runner.processes()).toHaveLength(6);
    expect(runner.errors()).toEqual([]);

    // stop() leaves nothing behind.
    const allPids = [...runner.processes().map((p) => p.pid), p0.sleepPid, again.sleepPid];
    const dir = runner.dir;
    await runner.stop();
    runner = undefined;
    expect(allPids.filter(alive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('kube pod runner restarts (restart: true)', () => {
  it('restarts an exited container as a kubelet does: Always on any exit, OnFailure on a non-zero one, Never not', async () => {
    const ns = 't-restart';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await waitUntil('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((sa) => sa.metadata?.name === 'default'));
    runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, labelSelector: 'app=r', logDir: path.join(tmp, 'restart-logs'), restart: true });
    const pods: Array<[string, 'Always' | 'OnFailure' | 'Never', number]> = [
      ['always-ok', 'Always', 0],
      ['onfailure-ok', 'OnFailure', 0],
      ['onfailure-bad', 'OnFailure', 3],
      ['never-bad', 'Never', 3],
    ];
    for (const [name, restartPolicy, code] of pods) {
      const container = { name: 'c', image: 'twister2/test:none', command: ['sh', '-c', `echo run; exit ${code}`] };
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name, labels: { app: 'r' } }, spec: { restartPolicy, containers: [container] } } });
    }
    // A command that is not there does not start (StartError).
    const missing = { name: 'c', image: 'twister2/test:none', command: ['t2-no-such-command'] };
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'never-missing', labels: { app: 'r' } }, spec: { restartPolicy: 'Never', containers: [missing] } } });
    const runs = (pod: string) => runner!.processes().filter((p) => p.pod === pod);
    // Back-off 1 s, then 2 s: the third run of a container that always exits comes after about 3 s.
    const exited = (pod: string) => runs(pod).length > 0 && runs(pod).every((p) => p.exitCode !== undefined);
    await waitUntil('always-ok and onfailure-bad run three times', () => runs('always-ok').length >= 3 && runs('onfailure-bad').length >= 3 && exited('onfailure-ok') && exited('never-bad'), 60_000);
    for (const pod of ['always-ok', 'onfailure-bad']) expect(runs(pod).slice(0, 3).map((p) => p.restartCount)).toEqual([0, 1, 2]);
    expect(runs('onfailure-ok').map((p) => [p.restartCount, p.exitCode])).toEqual([[0, 0]]);
    expect(runs('never-bad').map((p) => [p.restartCount, p.exitCode])).toEqual([[0, 3]]);
    const status = async (pod: string) => (await core.readNamespacedPod({ namespace: ns, name: pod })).status?.containerStatuses?.[0];
    await waitUntil('never-bad reported terminated', async () => (await status('never-bad'))?.state?.terminated);
    expect(await status('never-bad')).toMatchObject({ restartCount: 0, ready: false, state: { terminated: { exitCode: 3, reason: 'Error' } } });
    await waitUntil('never-missing reported terminated', async () => (await status('never-missing'))?.state?.terminated);
    expect(await status('never-missing')).toMatchObject({ restartCount: 0, state: { terminated: { exitCode: 127, reason: 'StartError', message: expect.stringMatching(/ENOENT/) } } });
    expect(runs('never-missing').map((p) => [p.pid, p.exitCode])).toEqual([[0, 127]]);
    expect(runner.errors()).toEqual([]);
    await runner.stop();
    runner = undefined;
  });

  it('reports restarts in the pod status as a kubelet does (restartCount, lastState, state) and serves the current and previous run\'s log', async () => {
    const ns = 't-restart-status';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await waitUntil('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((sa) => sa.metadata?.name === 'default'));
    runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir: path.join(tmp, 'status-logs'), restart: true });
    // Runs 0 and 1 exit 3; later runs sleep. The run number survives restarts in the pod's emptyDir.
    const script = 'n=$(cat /data/n 2>/dev/null || echo 0); echo $((n+1)) > /data/n; echo "run $n"; [ "$n" -ge 2 ] && exec sleep 1000; exit 3';
    const container = { name: 'c', image: 'twister2/test:none', command: ['sh', '-c', script], volumeMounts: [{ name: 'data', mountPath: '/data' }] };
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'crash' }, spec: { containers: [container], volumes: [{ name: 'data', emptyDir: {} }] } } });
    const status = async () => (await core.readNamespacedPod({ namespace: ns, name: 'crash' })).status?.containerStatuses?.[0];
    const log = (previous: boolean) => core.readNamespacedPodLog({ namespace: ns, name: 'crash', container: 'c', previous });
    const uid = (await core.readNamespacedPod({ namespace: ns, name: 'crash' })).metadata?.uid?.slice(0, 8);

    await waitUntil('run 2 running', async () => {
      const s = await status();
      return s?.restartCount === 2 && s.state?.running;
    });
    expect(await status()).toMatchObject({ ready: true, started: true, containerID: `local://${uid}-c-2`, lastState: { terminated: { exitCode: 3, reason: 'Error', containerID: `local://${uid}-c-1` } } });
    await waitUntil('run 2\'s line', async () => (await log(false)) === 'run 2\n', 10_000);
    expect(await log(true)).toBe('run 1\n');

    // Killed: 128 + 9, waiting in back-off with the run in lastState, then the next run.
    const sleeping = runner.processes().find((p) => p.pod === 'crash' && p.restartCount === 2)!;
    process.kill(-sleeping.pid, 'SIGKILL');
    const backingOff = await waitUntil('the kill reported', async () => {
      const s = await status();
      return s?.state?.waiting && s;
    });
    expect(backingOff).toMatchObject({ restartCount: 2, ready: false, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 137, reason: 'Error', containerID: `local://${uid}-c-2` } } });
    await waitUntil('run 3 running', async () => (await status())?.restartCount === 3);
    expect(await status()).toMatchObject({ state: { running: {} }, lastState: { terminated: { exitCode: 137 } } });
    await waitUntil('run 3\'s line', async () => (await log(false)) === 'run 3\n', 10_000);
    expect(await log(true)).toBe('run 2\n');

    // The launchers' log follower, first seeing the container at run 3, reads run 2 (the previous log) first.
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigFile);
    const logsDir = mkdtempSync(path.join(tmp, 'follower-'));
    const notes: string[] = [];
    const follower = new PodLogFollower(kc, ns, logsDir, (l) => notes.push(l));
    follower.follow({ name: 'crash', uid: uid ?? '' }, 'c', 3, { workerId: 0 });
    const workerLog = path.join(logsDir, 'worker-0.log');
    await waitUntil('runs 2 and 3 in the worker\'s log', () => existsSync(workerLog) && readFileSync(workerLog, 'utf8') === 'run 2\nrun 3\n', 10_000);
    await follower.close();
    expect(readFileSync(workerLog, 'utf8')).toBe('run 2\nrun 3\n');
    expect(notes).toEqual([]);
    expect(runner.errors()).toEqual([]);
    await runner.stop();
    runner = undefined;
  });
});

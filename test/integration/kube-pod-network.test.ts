import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, KubeConfig, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodNetwork, type PodNetwork } from '../env/kube-pod-network.js';
import { startPodRunner, type PodRunner } from '../env/kube-pod-runner.js';
import { currentOwner } from '../env/processes.js';
import { waitFor } from '../helpers/cli.js';

// Proves test/env/kube-pod-network.ts: a pod's local process listening on its pod IP is reachable at that IP,
// through its Service's ClusterIP, and through the API server's service proxy; the addresses go with them.

let cluster: KubeCluster;
let core: CoreV1Api;
let runner: PodRunner | undefined;
let network: PodNetwork | undefined;
let tmp: string;

// The "image": an HTTP server on the pod IP only. The pod runner may start it before the network has added
// the address to lo, so it retries while the address is not there yet.
const SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  const s = req.socket;
  res.end(JSON.stringify({ pod: process.env.POD_NAME, url: req.url, local: s.localAddress + ':' + s.localPort }));
});
const listen = () => server.listen(8080, process.env.POD_IP, () => console.log('listening on ' + process.env.POD_IP + ':8080'));
server.on('error', (err) => { if (err.code !== 'EADDRNOTAVAIL') throw err; setTimeout(listen, 100); });
listen();
`;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'twister2-pod-network-test-'));
  cluster = await startKubeCluster({ nodes: [{ name: 'pn-1' }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
}, 120_000);

afterAll(async () => {
  await network?.stop();
  await runner?.stop();
  await cluster?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** waitFor, naming the network's and the runner's problems when it times out. */
function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
  return waitFor(what, fn, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}; network errors: ${network?.errors().join('; ')}; runner errors: ${runner?.errors().join('; ')}`);
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
  });
}

const tryGet = (url: string) => get(url).catch(() => undefined);
// This machine's outbound traffic may go through an intercepting proxy that answers any unknown address (404):
// that a connection succeeds proves nothing, only the server's own answer does.
const answered = async (url: string) => {
  const r = await tryGet(url);
  return r?.status === 200 ? r : undefined;
};
const loAddrs = () => execFileSync('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' });
const onLo = (ip: string) => loAddrs().includes(` ${ip}/32 `);

describe('kube pod network (pod IPs and ClusterIP services on lo)', () => {
  it('reaps addresses that networks of dead processes left behind, not those of live ones', async () => {
    const dead = spawnSync('true').pid ?? 0;
    const deadFile = path.join(os.tmpdir(), `twister2-podnet-${dead}-1.json`);
    const liveFile = path.join(os.tmpdir(), `twister2-podnet-${process.pid}-999.json`);
    writeFileSync(deadFile, JSON.stringify({ ownerPid: dead, ownerStart: 'gone', addrs: ['10.244.255.254', '10.96.255.254'] }));
    writeFileSync(liveFile, JSON.stringify({ ...currentOwner(), addrs: ['10.244.255.253'] }));
    for (const a of ['10.244.255.254', '10.96.255.254', '10.244.255.253']) execFileSync('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
    try {
      const n = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: 't-none' });
      await n.stop();
      expect(onLo('10.244.255.254')).toBe(false);
      expect(onLo('10.96.255.254')).toBe(false);
      expect(existsSync(deadFile)).toBe(false);
      expect(onLo('10.244.255.253')).toBe(true);
      expect(existsSync(liveFile)).toBe(true);
    } finally {
      rmSync(liveFile, { force: true });
      rmSync(deadFile, { force: true });
      spawnSync('ip', ['addr', 'del', '10.244.255.253/32', 'dev', 'lo']);
    }
  });

  it('makes a pod reachable at its IP, its ClusterIP and through the API server service proxy', async () => {
    const ns = 't-podnet';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await waitUntil('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((sa) => sa.metadata?.name === 'default'));
    runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir: path.join(tmp, 'logs') });
    network = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns });

    const svc: V1Service = await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: {
          selector: { app: 'web' },
          ports: [
            { name: 'web', port: 80, targetPort: 8080 },
            { name: 'named', port: 81, targetPort: 'http' },
          ],
        },
      },
    });
    const clusterIP = svc.spec?.clusterIP ?? '';
    expect(clusterIP).toMatch(/^10\.96\./);
    const t0 = Date.now();
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'web-0', labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'twister2/test:none',
              command: ['node', '-e', SERVER],
              ports: [{ name: 'http', containerPort: 8080 }],
              env: [
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              ],
            },
          ],
        },
      },
    });
    const pod = await waitUntil('pod IP', async () => {
      const p = (await core.readNamespacedPod({ namespace: ns, name: 'web-0' })) as V1Pod;
      return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
    });
    const podIP = pod.status?.podIP ?? '';
    expect(podIP).toMatch(/^10\.244\./);

    // (a) The pod's own address.
    const direct = await waitUntil(`http://${podIP}:8080`, () => answered(`http://${podIP}:8080/hello`));
    console.log(`pod answering at ${podIP}:8080 ${((Date.now() - t0) / 1000).toFixed(1)} s after creating it`);
    const expected = { pod: 'web-0', url: '/hello', local: `${podIP}:8080` };
    expect(direct.status).toBe(200);
    expect(JSON.parse(direct.body)).toEqual(expected);
    expect(onLo(podIP)).toBe(true);
    expect(onLo(clusterIP)).toBe(true);

    // (b) The ClusterIP, by numeric and by named targetPort.
    for (const port of [80, 81]) {
      const r = await get(`http://${clusterIP}:${port}/hello`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual(expected);
    }

    // (c) The API server's service proxy: Endpoints name the pod, and it is kube-apiserver that connects to podIP:8080.
    await waitUntil('endpoints', async () => (await core.readNamespacedEndpoints({ namespace: ns, name: 'web' })).subsets?.[0]?.addresses?.[0]?.ip === podIP);
    const viaApi = await cluster.request('GET', `/api/v1/namespaces/${ns}/services/web:80/proxy/hello`);
    expect(viaApi).toEqual({ status: 200, body: expected });
    // The proxy keeps the connection alive for a while: its owner is the apiserver.
    const conns = execFileSync('ss', ['-Htnp', 'state', 'established', 'dst', `${podIP}:8080`], { encoding: 'utf8' });
    expect(conns).toContain('"kube-apiserver"');

    // (d) Without a ready pod the ClusterIP holds a connection 5 s, then closes it; the pod's IP goes, the ClusterIP stays.
    await core.deleteNamespacedPod({ namespace: ns, name: 'web-0', gracePeriodSeconds: 0 });
    await waitUntil('pod IP gone from lo', () => !onLo(podIP), 30_000);
    expect(onLo(clusterIP)).toBe(true);
    const t1 = Date.now();
    const none = await get(`http://${clusterIP}:80/hello`).then((r) => `HTTP ${r.status}`, (err: Error) => err.message);
    const waited = Date.now() - t1;
    console.log(`no endpoint: "${none}" after ${waited} ms`);
    expect(none).toMatch(/socket hang up|ECONNRESET/);
    expect(waited).toBeGreaterThanOrEqual(4500);
    expect(waited).toBeLessThan(8000);
    // Deleting the Service takes its address away; nothing is left after stop().
    await core.deleteNamespacedService({ namespace: ns, name: 'web' });
    await waitUntil('ClusterIP gone from lo', () => !onLo(clusterIP), 10_000);
    expect(await answered(`http://${clusterIP}:80/hello`)).toBeUndefined();
    expect(network.errors()).toEqual([]);
    await network.stop();
    network = undefined;
    const lo = loAddrs();
    expect(lo).not.toContain(` ${podIP}/`);
    expect(lo).not.toContain(` ${clusterIP}/`);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1OwnerReference, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import { POD_CIDR, startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { waitFor } from '../helpers/cli.js';

// Proves the Kubernetes test environment (test/env/kube-cluster.ts): a real control plane with kwok nodes,
// driven through @kubernetes/client-node with the admin kubeconfig, as the Kubernetes launcher will be.

let cluster: KubeCluster;
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;

beforeAll(async () => {
  cluster = await startKubeCluster({
    nodes: ['kw-1', 'kw-2', 'kw-3'].map((name, i) => ({ name, labels: { 'twister2.test/rack': `r${i % 2}` }, cpu: '8', memory: '32Gi' })),
  });
  console.log(`kube cluster ${cluster.server} started in ${cluster.startSeconds.toFixed(1)} s`);
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

/** Cluster operations under load: a longer default than the helpers' waitFor. */
const waitUntil = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => waitFor(what, fn, timeoutMs);

/** A namespace whose default service account exists (pods are refused until then). */
async function namespace(name: string): Promise<string> {
  await core.createNamespace({ body: { metadata: { name } } });
  await waitUntil(`service account default in ${name}`, async () => (await core.listNamespacedServiceAccount({ namespace: name })).items.some((sa) => sa.metadata?.name === 'default'));
  return name;
}

function statefulSet(name: string, replicas: number, extra: { ownerReferences?: V1OwnerReference[] } = {}): V1StatefulSet {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, labels, ownerReferences: extra.ownerReferences },
    spec: {
      replicas,
      serviceName: name,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' }],
            },
          },
          containers: [
            { name: 'worker', image: 'twister2/worker:test', command: ['sleep', 'infinity'], resources: { requests: { cpu: '100m', memory: '64Mi' } } },
            { name: 'sidecar', image: 'twister2/sidecar:test', command: ['sleep', 'infinity'] },
          ],
        },
      },
    },
  };
}

async function runningPods(ns: string, app: string): Promise<V1Pod[]> {
  const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
  return pods.items.filter((p) => p.status?.phase === 'Running' && p.status.podIP && !p.metadata?.deletionTimestamp);
}

function inPodCidr(ip: string): boolean {
  const [base, bits] = POD_CIDR.split('/');
  const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const mask = 2 ** 32 - 2 ** (32 - Number(bits));
  return (toInt(ip) & mask) >>> 0 === (toInt(base ?? '') & mask) >>> 0;
}

describe('kube test cluster (kube-apiserver, controller-manager, scheduler, kwok)', () => {
  it('runs a Parallel StatefulSet with required anti-affinity as 3 Running pods on 3 distinct nodes', async () => {
    const ns = await namespace('t-sts');
    const t0 = Date.now();
    await apps.createNamespacedStatefulSet({ namespace: ns, body: statefulSet('w', 3) });
    const pods = await waitUntil('3 Running pods', async () => {
      const p = await runningPods(ns, 'w');
      return p.length === 3 && p;
    });
    console.log(`3 pods Running ${((Date.now() - t0) / 1000).toFixed(1)} s after creating the StatefulSet`);
    expect(pods.map((p) => p.metadata?.name).sort()).toEqual(['w-0', 'w-1', 'w-2']);
    expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(3);
    for (const p of pods) {
      expect(inPodCidr(p.status?.podIP ?? '')).toBe(true);
      // Every container of a pod is reported running and ready.
      expect(p.status?.containerStatuses?.map((c) => [c.name, c.ready, Boolean(c.state?.running)]).sort()).toEqual([
        ['sidecar', true, true],
        ['worker', true, true],
      ]);
      expect(p.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }
    expect(new Set(pods.map((p) => p.status?.podIP)).size).toBe(3);

    // A pod deleted on its own comes back with the same name (and a new UID), as with a real kubelet.
    const old = pods.find((p) => p.metadata?.name === 'w-1');
    await core.deleteNamespacedPod({ namespace: ns, name: 'w-1' });
    const t1 = Date.now();
    const again = await waitUntil('w-1 recreated and Running', async () => (await runningPods(ns, 'w')).find((p) => p.metadata?.name === 'w-1' && p.metadata.uid !== old?.metadata?.uid));
    console.log(`w-1 back to Running ${((Date.now() - t1) / 1000).toFixed(1)} s after deleting it`);
    expect(again.spec?.nodeName).toBeTruthy();

    // A fourth replica cannot go anywhere: only 3 nodes, required anti-affinity.
    await apps.replaceNamespacedStatefulSetScale({ namespace: ns, name: 'w', body: { metadata: { name: 'w', namespace: ns }, spec: { replicas: 4 } } });
    const pending = await waitUntil('w-3 unschedulable', async () => {
      const p = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=w' })).items.find((x) => x.metadata?.name === 'w-3');
      return p?.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable') && p;
    });
    expect(pending.status?.phase).toBe('Pending');
  });

  it('deletes a StatefulSet and its pods through the garbage collector when its owner ConfigMap is deleted', async () => {
    const ns = await namespace('t-gc');
    const root = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'job-root' }, data: { job: 'gc-test' } } });
    const ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'job-root', uid: root.metadata?.uid ?? '', blockOwnerDeletion: true, controller: false }];
    await apps.createNamespacedStatefulSet({ namespace: ns, body: statefulSet('g', 3, { ownerReferences }) });
    await waitUntil('3 Running pods', async () => (await runningPods(ns, 'g')).length === 3);

    const t0 = Date.now();
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'job-root', propagationPolicy: 'Background' });
    await waitUntil(
      'StatefulSet and pods gone',
      async () => {
        const sts = await apps.listNamespacedStatefulSet({ namespace: ns });
        const pods = await core.listNamespacedPod({ namespace: ns });
        return sts.items.length === 0 && pods.items.length === 0;
      },
      90_000,
    );
    console.log(`StatefulSet and pods gone ${((Date.now() - t0) / 1000).toFixed(1)} s after deleting the owner ConfigMap (Background)`);
  });

  it('gives a service account only what its Role allows (token from TokenRequest)', async () => {
    const ns = await namespace('t-rbac');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'job-master' } } });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'job-master-pod-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'job-master', namespace: ns }],
      },
    });
    const token = await cluster.tokenFor(ns, 'job-master');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: cluster.server, caFile: cluster.caFile }],
      users: [{ name: 'job-master', token }],
      contexts: [{ name: 'test', cluster: 'test', user: 'job-master', namespace: ns }],
      currentContext: 'test',
    });
    const asSa = kc.makeApiClient(CoreV1Api);

    const pods = await asSa.listNamespacedPod({ namespace: ns });
    expect(pods.items).toEqual([]);

    const denied = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApiException);
      return (err as ApiException<unknown>).code;
    };
    expect(await denied(asSa.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'nope' }, stringData: { a: 'b' } } }))).toBe(403);
    expect(await denied(asSa.listNamespacedPod({ namespace: 'default' }))).toBe(403);
    expect(await denied(asSa.deleteNamespacedPod({ namespace: ns, name: 'anything' }))).toBe(403);

    // A wrong token is not authenticated at all.
    const bad = new KubeConfig();
    bad.loadFromOptions({
      clusters: [{ name: 'test', server: cluster.server, caFile: cluster.caFile }],
      users: [{ name: 'x', token: 'not-a-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'x' }],
      currentContext: 'test',
    });
    expect(await denied(bad.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns }))).toBe(401);
  });
});

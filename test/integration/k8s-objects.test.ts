import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthorizationV1Api, KubeConfig, SchedulingV1Api, type V1Pod } from '@kubernetes/client-node';
import { startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { waitFor } from '../helpers/cli.js';
import { createObject, deleteRoot, kubeApi, kubeCall, kubeError, scaleStatefulSet, type KubeApi } from '../../src/launchers/k8s/kube-api.js';
import { jobSelector } from '../../src/launchers/k8s/names.js';
import {
  generateSshKeyPair,
  jobMasterServiceUrl,
  jobObjects,
  jobSecret,
  k8sJob,
  rootConfigMap,
  rootOwnerReference,
  workerHeadlessService,
  workerPod,
  type K8sJob,
  workerAccountObjects,
  type KubeObject,
} from '../../src/launchers/k8s/objects/index.js';
import { workerEnvironment } from '../../src/job/worker-environment.js';
import { parseSpec } from '../../src/spec/validate.js';

// Every object the Kubernetes launcher creates, built by the pure builders of src/launchers/k8s/objects
// and created through a real kube-apiserver (test/env/kube-cluster.ts: real API server, RBAC, scheduler,
// StatefulSet controller and garbage collector; kwok plays the kubelets). Also the job master's RBAC and
// the messages of kubeError.

const TOKEN = 'job-token-0123456789abcdef';
let cluster: KubeCluster;
let admin: KubeApi;
let jobCount = 0;

beforeAll(async () => {
  cluster = await startKubeCluster({
    nodes: ['kw-1', 'kw-2', 'kw-3'].map((name, i) => ({
      name,
      labels: { 'twister2.test/zone': i === 2 ? 'b' : 'a', 'twister2.test/cores': String(8 * (i + 1)) },
      cpu: '16',
      memory: '64Gi',
      // kw-3 is tainted: only pods that tolerate it may go there.
      ...(i === 2 ? { taints: [{ key: 'twister2.test/dedicated', value: 'ml', effect: 'NoSchedule' as const }] } : {}),
    })),
  });
  console.log(`kube cluster started in ${cluster.startSeconds.toFixed(1)} s`);
  admin = kubeApi({ namespace: 'default', kubeconfig: cluster.kubeconfigFile });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  await kc.makeApiClient(SchedulingV1Api).createPriorityClass({ body: { metadata: { name: 'twister2-high' }, value: 100_000, description: 'test' } });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
});

/** Cluster operations under load: a longer default than the helpers' waitFor. */
const waitUntil = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => waitFor(what, fn, timeoutMs);

async function namespace(name: string): Promise<string> {
  await admin.core.createNamespace({ body: { metadata: { name } } });
  await waitUntil(`service account default in ${name}`, async () => (await admin.core.listNamespacedServiceAccount({ namespace: name })).items.some((sa) => sa.metadata?.name === 'default'));
  return name;
}

interface Created {
  job: K8sJob;
  objects: KubeObject[];
}

/** Creates a job the way the launcher will: the root first, then everything else owned by it. */
async function createJob(ns: string, raw: Record<string, unknown>, opts: { jobMaster?: boolean } = {}): Promise<Created> {
  const jobId = `job${++jobCount}-20261122073606-e203`;
  const spec = parseSpec({ name: `job${jobCount}`, cluster: 'kubernetes', worker: { module: 'main.mjs' }, ...raw, kubernetes: { namespace: ns, ...(raw.kubernetes as object) } });
  const root = await createObject(admin, rootConfigMap(jobId, spec));
  const job = k8sJob(jobId, spec, rootOwnerReference(root));
  const env = workerEnvironment({
    jobId,
    spec,
    packageRef: { kind: 'http', url: 'http://pkg.example:8080/p.tar.gz', token: 'read-token', sha256: 'a'.repeat(64), size: 1 },
    jobMasterUrl: jobMasterServiceUrl(job),
    token: TOKEN,
  }, { secret: { kind: 'cluster' } });
  const objects = jobObjects(job, {
    secret: {
      token: TOKEN,
      packageRef: { kind: 'http', url: 'http://pkg.example:8080/p.tar.gz', token: 'read-token', sha256: 'a'.repeat(64), size: 1 },
      ...(job.k8s.openmpi ? { ssh: generateSshKeyPair(jobId) } : {}),
    },
    workers: { env },
    ...(opts.jobMaster === false ? {} : { jobMaster: {} }),
  });
  for (const o of objects) await createObject(admin, o);
  return { job, objects: [root, ...objects] };
}

/** Everything of a job still in the API, by kind. */
async function leftovers(ns: string, jobId: string): Promise<string[]> {
  const labelSelector = jobSelector(jobId);
  const q = { namespace: ns, labelSelector };
  const lists = await Promise.all([
    admin.core.listNamespacedConfigMap(q).then((l) => l.items.map((i) => `ConfigMap/${i.metadata?.name}`)),
    admin.core.listNamespacedSecret(q).then((l) => l.items.map((i) => `Secret/${i.metadata?.name}`)),
    admin.core.listNamespacedService(q).then((l) => l.items.map((i) => `Service/${i.metadata?.name}`)),
    admin.core.listNamespacedServiceAccount(q).then((l) => l.items.map((i) => `ServiceAccount/${i.metadata?.name}`)),
    admin.core.listNamespacedPod(q).then((l) => l.items.map((i) => `Pod/${i.metadata?.name}`)),
    admin.core.listNamespacedPersistentVolumeClaim(q).then((l) => l.items.map((i) => `PersistentVolumeClaim/${i.metadata?.name}`)),
    admin.rbac.listNamespacedRole(q).then((l) => l.items.map((i) => `Role/${i.metadata?.name}`)),
    admin.rbac.listNamespacedRoleBinding(q).then((l) => l.items.map((i) => `RoleBinding/${i.metadata?.name}`)),
    admin.apps.listNamespacedStatefulSet(q).then((l) => l.items.map((i) => `StatefulSet/${i.metadata?.name}`)),
  ]);
  return lists.flat().sort();
}

async function runningWorkerPods(ns: string, jobId: string, count: number): Promise<V1Pod[]> {
  return waitUntil(`${count} Running worker pods`, async () => {
    const pods = (await admin.core.listNamespacedPod({ namespace: ns, labelSelector: jobSelector(jobId, 'worker') })).items;
    const running = pods.filter((p) => p.status?.phase === 'Running' && p.spec?.nodeName);
    return running.length === count && running;
  });
}

/** Deletes the root and waits until the garbage collector removed everything it owned. */
async function expectCollected(ns: string, jobId: string, kept: string[] = []): Promise<void> {
  expect((await leftovers(ns, jobId)).length).toBeGreaterThan(kept.length);
  const t0 = Date.now();
  await deleteRoot(admin, jobId, ns);
  await waitUntil('the garbage collector to remove the job', async () => JSON.stringify(await leftovers(ns, jobId)) === JSON.stringify(kept), 60_000);
  console.log(`job ${jobId}: everything gone ${((Date.now() - t0) / 1000).toFixed(1)} s after deleting its root`);
}

const MATRIX: Array<{ name: string; raw: Record<string, unknown>; pods: number; check?: (pods: V1Pod[]) => void }> = [
  {
    name: '1 worker per pod, placement any, memory volume, NodePort, node affinity',
    raw: {
      workers: 3,
      kubernetes: {
        volumes: { memory: { sizeLimit: '256Mi' } },
        nodePort: { containerPort: 8080 },
        podPlacement: {
          requiredNodeAffinity: [{ key: 'twister2.test/zone', operator: 'In', values: ['a'] }],
          preferredNodeAffinity: [{ weight: 50, key: 'twister2.test/cores', operator: 'Gt', values: ['4'] }],
        },
      },
    },
    pods: 3,
    check: (pods) => expect(pods.every((p) => p.spec?.nodeName !== 'kw-3')).toBe(true),
  },
  {
    name: '3 workers per pod, all on one node, disk volume, cpuPinning',
    raw: { workers: 6, resources: { cpu: 1, memory: '1Gi' }, kubernetes: { workersPerPod: 3, cpuPinning: true, podPlacement: { workers: 'same-node' }, volumes: { disk: { sizeLimit: '1Gi' } } } },
    pods: 2,
    check: (pods) => {
      expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(1);
      expect(pods.every((p) => p.status?.qosClass === 'Guaranteed')).toBe(true);
      expect(pods[0]?.spec?.containers.map((c) => c.name)).toEqual(['worker-0', 'worker-1', 'worker-2']);
    },
  },
  {
    name: 'spread over nodes, tolerations and a priority class, NFS volume',
    raw: {
      workers: 3,
      kubernetes: {
        podPlacement: { workers: 'spread', tolerations: [{ key: 'twister2.test/dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' }], priorityClassName: 'twister2-high' },
        volumes: { persistent: { nfs: { server: '10.0.0.9', path: '/export/twister2' } } },
      },
    },
    pods: 3,
    check: (pods) => {
      expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(3);
      expect(pods.every((p) => p.spec?.priority === 100_000)).toBe(true);
    },
  },
  {
    name: 'OpenMPI, 2 slots per pod, a PVC (deleted with the job), GPUs',
    raw: {
      workers: 4,
      resources: { gpus: 1 },
      kubernetes: { workersPerPod: 2, openmpi: true, volumes: { persistent: { pvc: { storageClass: 'rwx-test', size: '1Gi' } } } },
    },
    // No storage provisioner and no GPUs on kwok nodes: the pods stay Pending, but every object is accepted.
    pods: 0,
  },
  {
    name: 'spec storage: memory and scratch emptyDirs with their sizeLimits, an NFS export',
    raw: { workers: 4, kubernetes: { workersPerPod: 2 }, storage: { memory: { size: '64Mi' }, scratch: { size: '1Gi' }, persistent: { nfs: { server: '10.0.0.9', path: '/export/results' } } } },
    pods: 2,
    check: (pods) => {
      const volumes = pods[0]?.spec?.volumes?.filter((v) => v.name.startsWith('storage-'));
      expect(volumes?.map((v) => [v.name, v.emptyDir ?? v.nfs])).toEqual([
        ['storage-memory', { medium: 'Memory', sizeLimit: '64Mi' }],
        ['storage-scratch', { sizeLimit: '1Gi' }],
        ['storage-persistent', { server: '10.0.0.9', path: '/export/results' }],
      ]);
    },
  },
  {
    name: 'spec storage: a PVC with logs, mounted in the job master pod too',
    raw: { workers: 4, kubernetes: { workersPerPod: 2 }, storage: { persistent: { pvc: { storageClass: 'rwx-test', size: '1Gi' }, logs: true } } },
    // No storage provisioner: the pods stay Pending, but every object is accepted.
    pods: 0,
  },
];

describe('the job objects against a real kube-apiserver', () => {
  it.each(MATRIX)('creates every object, places the pods and garbage-collects them: $name', async ({ raw, pods, check }) => {
    const ns = await namespace(`m${jobCount + 1}`);
    const { job, objects } = await createJob(ns, raw);
    expect(objects.length).toBeGreaterThanOrEqual(9);
    const sts = await admin.apps.readNamespacedStatefulSet({ namespace: ns, name: job.names.workers() });
    expect(sts.spec?.replicas).toBe(job.spec.workers / job.k8s.workersPerPod);
    if (pods > 0) check?.(await runningWorkerPods(ns, job.jobId, pods));
    else await waitUntil('the worker pods', async () => (await admin.core.listNamespacedPod({ namespace: ns, labelSelector: jobSelector(job.jobId, 'worker') })).items.length === 2);
    await expectCollected(ns, job.jobId);
  });

  it('keeps a PVC with keep: true after the job', async () => {
    const ns = await namespace('keep');
    const { job } = await createJob(ns, { workers: 2, kubernetes: { volumes: { persistent: { pvc: { storageClass: 'rwx-test', size: '1Gi' }, keep: true } } } }, { jobMaster: false });
    await expectCollected(ns, job.jobId, [`PersistentVolumeClaim/${job.names.pvc}`]);
  });
});

describe('plain pods', () => {
  it('are accepted with the names the StatefulSet would give, 3 workers each, and collected with the job', async () => {
    const ns = await namespace('plain');
    const jobId = 'plain-20261122073606-e203';
    const spec = parseSpec({ name: 'plain', cluster: 'kubernetes', workers: 6, worker: { command: 'true' }, kubernetes: { namespace: ns, workersPerPod: 3 } });
    const root = await createObject(admin, rootConfigMap(jobId, spec));
    const job = k8sJob(jobId, spec, rootOwnerReference(root));
    await createObject(admin, jobSecret(job, { token: TOKEN }));
    for (const o of workerAccountObjects(job)) await createObject(admin, o);
    await createObject(admin, workerHeadlessService(job));
    const env = { TWISTER2_JOB_ID: jobId, TWISTER2_JOB_MASTER_URL: 'http://10.0.0.1:7575' };
    for (const ordinal of [0, 1]) await createObject(admin, workerPod(job, { env }, ordinal));
    const pods = await runningWorkerPods(ns, jobId, 2);
    expect(pods.map((p) => p.metadata?.name).sort()).toEqual([`${jobId}-w0-0`, `${jobId}-w0-1`]);
    expect(pods.every((p) => p.spec?.subdomain === job.names.workers() && p.spec?.containers.length === 3)).toBe(true);
    await expectCollected(ns, jobId);
  });
});

describe('the in-cluster job master under RBAC', () => {
  it('may follow pods, scale its workers and end the job, and nothing else', async () => {
    const ns = await namespace('rbac');
    await namespace('rbac-other');
    const { job } = await createJob(ns, { workers: 2 });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.server, caFile: cluster.caFile }],
      users: [{ name: 'jm', token: await cluster.tokenFor(ns, job.names.serviceAccount) }],
      contexts: [{ name: 'c', cluster: 'c', user: 'jm', namespace: ns }],
      currentContext: 'c',
    });
    const jm = kubeApi({ namespace: ns }, { kubeConfig: kc });

    // Allowed: follow the workers, scale them, exec into them (checked by the API server's own review).
    await runningWorkerPods(ns, job.jobId, 2);
    expect((await jm.core.listNamespacedPod({ namespace: ns, labelSelector: jobSelector(job.jobId, 'worker') })).items).toHaveLength(2);
    await scaleStatefulSet(jm, job.names.workers(), 3);
    await jm.apps.patchNamespacedStatefulSet({ namespace: ns, name: job.names.workers(), body: [{ op: 'replace', path: '/spec/replicas', value: 4 }] });
    expect((await admin.apps.readNamespacedStatefulSet({ namespace: ns, name: job.names.workers() })).spec?.replicas).toBe(4);
    const authz = kc.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, resource: string, subresource?: string, namespace = ns, name?: string) =>
      (await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { namespace, verb, resource, subresource, name } } } })).status?.allowed ?? false;
    expect(await can('create', 'pods', 'exec')).toBe(true);
    expect(await can('get', 'pods', 'log')).toBe(true);
    expect(await can('watch', 'pods')).toBe(true);
    expect(await can('create', 'events')).toBe(true); // how the job ended, kept after it
    expect(await can('delete', 'pods')).toBe(false);
    expect(await can('list', 'secrets')).toBe(false);
    expect(await can('create', 'pods', 'exec', 'rbac-other')).toBe(false);

    // Refused: anything outside its Role.
    const refused = async (what: string, call: () => Promise<unknown>) => {
      const err = await kubeCall(what, call).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, what).toBeDefined();
      return (err as Error).message;
    };
    expect(await refused('create Secret "nope"', () => jm.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'nope' }, stringData: { a: 'b' } } }))).toMatch(
      /Kubernetes refused to create Secret "nope": Forbidden: secrets is forbidden: User "system:serviceaccount:rbac:job\d+-20261122073606-e203-jm" cannot create resource "secrets"/,
    );
    expect(await refused('list pods in rbac-other', () => jm.core.listNamespacedPod({ namespace: 'rbac-other' }))).toMatch(/Forbidden: pods is forbidden/);
    expect(await refused('scale the job master', () => scaleStatefulSet(jm, job.names.jobMaster, 2))).toMatch(/Forbidden/);
    expect(await refused('delete the Secret', () => jm.core.deleteNamespacedSecret({ namespace: ns, name: job.names.secret }))).toMatch(/Forbidden/);
    expect(await refused('list ConfigMaps', () => jm.core.listNamespacedConfigMap({ namespace: ns }))).toMatch(/Forbidden/);

    // Ending the job: deleting the root is allowed, and the garbage collector does the rest.
    await deleteRoot(jm, job.names.root);
    await waitUntil('the job gone', async () => (await leftovers(ns, job.jobId)).length === 0);
  });
});

describe('kubeError', () => {
  it('names the object and the reason for what the API server refuses', async () => {
    const ns = await namespace('errors');
    const fail = (p: Promise<unknown>) =>
      p.then(
        () => {
          throw new Error('expected a refusal');
        },
        (e: unknown) => (e as Error).message,
      );
    const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'Bad_Name', namespace: ns }, spec: { selector: { matchLabels: { a: 'b' } }, serviceName: 'x', template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } } };
    expect(await fail(createObject(admin, sts))).toMatch(
      /^Kubernetes refused to create StatefulSet "Bad_Name" in namespace "errors": Invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of/,
    );
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'twice', namespace: ns } };
    await createObject(admin, cm);
    expect(await fail(createObject(admin, cm))).toBe('Kubernetes refused to create ConfigMap "twice" in namespace "errors": AlreadyExists: configmaps "twice" already exists');
    expect(await fail(createObject(admin, { ...cm, metadata: { name: 'x', namespace: 'no-such-ns' } }))).toBe(
      'Kubernetes refused to create ConfigMap "x" in namespace "no-such-ns": NotFound: namespaces "no-such-ns" not found',
    );
    await admin.core.createNamespacedResourceQuota({ namespace: ns, body: { metadata: { name: 'no-secrets' }, spec: { hard: { 'count/secrets': '0' } } } });
    await waitUntil('the quota counted', async () => (await admin.core.readNamespacedResourceQuota({ namespace: ns, name: 'no-secrets' })).status?.hard !== undefined);
    const quota = await createObject(admin, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: ns }, stringData: { a: 'b' } }).then(
      () => undefined,
      (e: unknown) => e as Error & { hint?: string },
    );
    expect(quota?.message).toMatch(/^Kubernetes refused to create Secret "s" in namespace "errors": exceeded quota: secrets "s" is forbidden: exceeded quota: no-secrets/);
    expect(quota?.hint).toMatch(/ResourceQuota/);
    // Not an API answer at all.
    expect(kubeError(new Error('connect ECONNREFUSED 127.0.0.1:1'), 'list pods').message).toBe('cannot reach the Kubernetes API server to list pods: connect ECONNREFUSED 127.0.0.1:1');
  });
});

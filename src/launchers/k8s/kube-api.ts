import { ENV } from '../../job/worker-environment.js';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { LauncherError, type Twister2ErrorOptions } from '../../errors.js';
import type { KubernetesSpec } from './section.js';
import { jobSelector } from './names.js';
import type { KubeObject } from './objects/index.js';

/** Where a pod finds its service account's token, CA and namespace (the in-cluster job master). */
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigOptions {
  /** kubernetes.kubeconfig: a file ("~/" is the home directory). */
  kubeconfig?: string | undefined;
  /** kubernetes.context: a context of that kubeconfig instead of its current one. */
  context?: string | undefined;
  /** The pod's own service account (the in-cluster job master), whatever else is configured. */
  inCluster?: boolean;
}

/**
 * The cluster and credentials: kubernetes.kubeconfig if set, else $KUBECONFIG, else ~/.kube/config,
 * else (inside a pod) the pod's service account; `inCluster` forces the last. `context` picks one of
 * the kubeconfig's contexts.
 */
export function loadKubeConfig(opts: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  let source: string;
  try {
    if (opts.inCluster) {
      source = 'the pod\'s service account';
      // Where the account is mounted may differ from the standard path (the test pod runner maps mounts).
      const dir = process.env[ENV.k8sAccountDir] ?? SERVICE_ACCOUNT_DIR;
      const host = process.env.KUBERNETES_SERVICE_HOST;
      if (!host || !existsSync(path.join(dir, 'token'))) {
        throw new Error(`not inside a Kubernetes pod with a service account (no KUBERNETES_SERVICE_HOST or ${path.join(dir, 'token')})`);
      }
      const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${process.env.KUBERNETES_SERVICE_PORT ?? '443'}`;
      kc.loadFromOptions({
        clusters: [{ name: 'in-cluster', server, caFile: path.join(dir, 'ca.crt'), skipTLSVerify: false }],
        // Read from the file at each request: the kubelet rotates the projected token.
        users: [{ name: 'service-account', authProvider: { name: 'tokenFile', config: { tokenFile: path.join(dir, 'token') } } }],
        contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'service-account' }],
        currentContext: 'in-cluster',
      });
    } else if (opts.kubeconfig) {
      const file = opts.kubeconfig.startsWith('~/') ? path.join(os.homedir(), opts.kubeconfig.slice(2)) : opts.kubeconfig;
      source = `kubeconfig ${file} (kubernetes.kubeconfig)`;
      if (!existsSync(file)) throw new Error('no such file');
      kc.loadFromFile(file);
    } else {
      source = process.env.KUBECONFIG ? `kubeconfig ${process.env.KUBECONFIG} ($KUBECONFIG)` : 'the default kubeconfig (~/.kube/config, or the pod\'s service account)';
      kc.loadFromDefault();
    }
  } catch (err) {
    throw new LauncherError(`cannot load the Kubernetes configuration from ${describeSource(opts)}: ${(err as Error).message}`, {
      cause: err,
      hint: 'set kubernetes.kubeconfig to a kubeconfig file, or $KUBECONFIG',
    });
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new LauncherError(`kubernetes.context "${opts.context}" is not in ${source}; it has ${known.length ? known.map((n) => `"${n}"`).join(', ') : 'no contexts'}`);
    }
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new LauncherError(`${source} has no cluster for its current context "${kc.getCurrentContext()}"`, { hint: 'set kubernetes.context to a context of that kubeconfig' });
  }
  // loadFromDefault's last resort when it found nothing at all.
  if (cluster.name === 'cluster' && cluster.server === 'http://localhost:8080' && !opts.kubeconfig && !process.env.KUBECONFIG) {
    throw new LauncherError('no Kubernetes configuration found: no $KUBECONFIG, no ~/.kube/config and not inside a pod', {
      hint: 'set kubernetes.kubeconfig to a kubeconfig file, or $KUBECONFIG',
    });
  }
  return kc;
}

function describeSource(opts: KubeConfigOptions): string {
  if (opts.inCluster) return 'the pod\'s service account';
  if (opts.kubeconfig) return `${opts.kubeconfig} (kubernetes.kubeconfig)`;
  return process.env.KUBECONFIG ? `${process.env.KUBECONFIG} ($KUBECONFIG)` : '~/.kube/config';
}

/** The API clients of one cluster, and the namespace of the job. */
export interface KubeApi {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  rbac: RbacAuthorizationV1Api;
  /** The API server's URL, for messages. */
  server: string;
  namespace: string;
}

export function kubeApi(k8s: Pick<KubernetesSpec, 'namespace' | 'kubeconfig' | 'context'>, opts: { kubeConfig?: KubeConfig; inCluster?: boolean } = {}): KubeApi {
  const kc = opts.kubeConfig ?? loadKubeConfig({ kubeconfig: k8s.kubeconfig, context: k8s.context, inCluster: opts.inCluster ?? false });
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    server: kc.getCurrentCluster()?.server ?? '?',
    namespace: k8s.namespace,
  };
}

// ---------------------------------------------------------------------------------------------------
// Errors

/** What the API server said, as its Status object carries it. */
interface KubeStatus {
  reason?: string;
  message?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: Array<{ reason?: string; message?: string; field?: string }> };
}

/** The API server refused a request: `status` is the HTTP status, `reason` Kubernetes' (Forbidden, Invalid, AlreadyExists, ...). */
export class KubernetesApiError extends LauncherError {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly reason: string | undefined,
    options: Twister2ErrorOptions = {},
  ) {
    super(message, options);
  }
}

const REASON_BY_STATUS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Gone',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

function statusOf(body: unknown): KubeStatus | undefined {
  let b = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body.trim() ? { message: body.trim().slice(0, 500) } : undefined;
    }
  }
  return typeof b === 'object' && b !== null ? (b as KubeStatus) : undefined;
}

/**
 * A clear LauncherError for a failed API call. `what` is the action, e.g. `create StatefulSet "x" in
 * namespace "y"` (describeAction builds it), giving messages such as
 * `Kubernetes refused to create StatefulSet "x" in namespace "y": Forbidden: <the API server's message>`.
 */
export function kubeError(err: unknown, what: string): LauncherError {
  if (err instanceof KubernetesApiError) return err;
  if (err instanceof ApiException) {
    const code = (err as ApiException<unknown>).code;
    const status = statusOf((err as ApiException<unknown>).body);
    const reason = status?.reason || REASON_BY_STATUS[code] || `HTTP ${code}`;
    const message = status?.message ?? '';
    if (code === 401) {
      return new KubernetesApiError(`Kubernetes did not accept our credentials to ${what} (Unauthorized)`, code, reason, {
        cause: err,
        hint: 'the kubeconfig\'s token or certificate is wrong or expired: log in to the cluster again, or check kubernetes.kubeconfig and kubernetes.context',
      });
    }
    if (code === 403 && /exceeded quota/i.test(message)) {
      return new KubernetesApiError(`Kubernetes refused to ${what}: exceeded quota: ${message}`, code, 'ExceededQuota', {
        cause: err,
        hint: 'the namespace\'s ResourceQuota is used up: ask for fewer workers or less per worker (resources), or for a larger quota',
      });
    }
    const causes = (status?.details?.causes ?? []).filter((c) => c.message);
    const detail =
      reason === 'Invalid' && causes.length > 0 ? causes.map((c) => (c.field ? `${c.field}: ${c.message}` : (c.message ?? ''))).join('; ') : message || 'no message';
    return new KubernetesApiError(`Kubernetes refused to ${what}: ${reason}: ${detail}`, code, reason, { cause: err, hint: hintFor(reason) });
  }
  const e = err as { message?: string; code?: string } | undefined;
  return new KubernetesApiError(`cannot reach the Kubernetes API server to ${what}: ${e?.message ?? String(err)}`, undefined, e?.code, {
    cause: err,
    hint: 'check that the cluster in the kubeconfig is up and reachable from here',
  });
}

function hintFor(reason: string): string | undefined {
  switch (reason) {
    case 'Forbidden':
      return 'your Kubernetes user lacks this right in this namespace: ask the cluster administrator, or use another kubernetes.namespace or kubernetes.context';
    case 'AlreadyExists':
      return 'an object of this name is left from an earlier run of this job; delete it (kubectl delete with -l twister2.io/job=<job ID>)';
    case 'NotFound':
      return 'check kubernetes.namespace: the namespace must exist';
    case 'Invalid':
      return 'a value in the kubernetes section of the spec (or resources) is not one Kubernetes accepts';
    default:
      return undefined;
  }
}

/** `StatefulSet "x" in namespace "y"`. */
export function describeObject(obj: { kind?: string; metadata?: { name?: string; namespace?: string } }, namespace?: string): string {
  const ns = obj.metadata?.namespace ?? namespace;
  return `${obj.kind ?? 'object'} "${obj.metadata?.name ?? '?'}"${ns ? ` in namespace "${ns}"` : ''}`;
}

/** Runs an API call, turning its failure into kubeError(err, what). */
export async function kubeCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw kubeError(err, what);
  }
}

/** Creates one of the job's objects in `namespace` (default: its metadata's, else the api's) and returns what the API server stored. */
export async function createObject<T extends KubeObject>(api: KubeApi, obj: T, namespace?: string): Promise<T> {
  const ns = namespace ?? obj.metadata?.namespace ?? api.namespace;
  const what = `create ${describeObject(obj, ns)}`;
  return kubeCall(what, async () => {
    const p = { namespace: ns, body: obj as never };
    switch (obj.kind) {
      case 'ConfigMap':
        return (await api.core.createNamespacedConfigMap(p)) as T;
      case 'Secret':
        return (await api.core.createNamespacedSecret(p)) as T;
      case 'Service':
        return (await api.core.createNamespacedService(p)) as T;
      case 'ServiceAccount':
        return (await api.core.createNamespacedServiceAccount(p)) as T;
      case 'Pod':
        return (await api.core.createNamespacedPod(p)) as T;
      case 'PersistentVolumeClaim':
        return (await api.core.createNamespacedPersistentVolumeClaim(p)) as T;
      case 'Role':
        return (await api.rbac.createNamespacedRole(p)) as T;
      case 'RoleBinding':
        return (await api.rbac.createNamespacedRoleBinding(p)) as T;
      case 'StatefulSet':
        return (await api.apps.createNamespacedStatefulSet(p)) as T;
      default:
        throw new LauncherError(`cannot create a ${obj.kind ?? 'object without a kind'}: not one of the job's kinds`);
    }
  });
}

/**
 * Ends a job: deletes its root ConfigMap (Background propagation); the garbage collector deletes every
 * object it owns. Resolves once the root is gone from the API (not its dependents). A missing root is fine.
 */
export async function deleteRoot(api: KubeApi, rootName: string, namespace = api.namespace): Promise<void> {
  await kubeCall(`delete ConfigMap "${rootName}" in namespace "${namespace}"`, async () => {
    try {
      await api.core.deleteNamespacedConfigMap({ namespace, name: rootName, propagationPolicy: 'Background' });
    } catch (err) {
      if (err instanceof ApiException && (err as ApiException<unknown>).code === 404) return;
      throw err;
    }
  });
}

/** Sets a worker StatefulSet's replicas (its scale subresource), e.g. for scaling by whole pods. */
export async function scaleStatefulSet(api: KubeApi, name: string, replicas: number, namespace = api.namespace): Promise<void> {
  await kubeCall(`scale StatefulSet "${name}" in namespace "${namespace}" to ${replicas} pods`, () =>
    api.apps.patchNamespacedStatefulSetScale({ namespace, name, body: [{ op: 'replace', path: '/spec/replicas', value: replicas }] }),
  );
}

/** Everything labelled with the job that the API still lists (what release waits for, and tests check). */
export async function jobObjectsLeft(api: KubeApi, jobId: string): Promise<string[]> {
  const q = { namespace: api.namespace, labelSelector: jobSelector(jobId) };
  const [pods, sets, services, secrets, maps] = await kubeCall(`list the objects of job ${jobId}`, () =>
    Promise.all([
      api.core.listNamespacedPod(q),
      api.apps.listNamespacedStatefulSet(q),
      api.core.listNamespacedService(q),
      api.core.listNamespacedSecret(q),
      api.core.listNamespacedConfigMap(q),
    ]),
  );
  const name = (kind: string) => (o: { metadata?: { name?: string } }) => `${kind}/${o.metadata?.name}`;
  return [...pods.items.map(name('pod')), ...sets.items.map(name('statefulset')), ...services.items.map(name('service')), ...secrets.items.map(name('secret')), ...maps.items.map(name('configmap'))];
}

/** The job's worker pods the API still lists (the objects an in-cluster job master may list). */
export async function workerPodsLeft(api: KubeApi, jobId: string): Promise<string[]> {
  const pods = await kubeCall(`list the worker pods of job ${jobId}`, () => api.core.listNamespacedPod({ namespace: api.namespace, labelSelector: jobSelector(jobId, 'worker') }));
  return pods.items.map((p) => `pod/${p.metadata?.name}`);
}

const GONE_TIMEOUT_MS = 60_000;

/**
 * Lists `left()` until it is empty or `timeoutMs` passed; returns what was still listed (empty: all gone).
 * Deleted objects go through the garbage collector and the kubelet, so they take a while.
 */
export async function untilNoneLeft(left: () => Promise<string[]>, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const still = await left();
    if (still.length === 0 || Date.now() > deadline) return still;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Deletes the job's root and waits until the garbage collector removed everything labelled with the job. */
export async function deleteJob(api: KubeApi, jobId: string, rootName: string): Promise<void> {
  await deleteRoot(api, rootName);
  const still = await untilNoneLeft(() => jobObjectsLeft(api, jobId), GONE_TIMEOUT_MS);
  if (still.length > 0) throw new LauncherError(`objects of job ${jobId} were still in namespace "${api.namespace}" ${GONE_TIMEOUT_MS / 1000}s after its root was deleted: ${still.join(', ')}`);
}

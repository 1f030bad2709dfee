// Benchmark (g): Kubernetes control-plane start-up. One real control plane (test/env/kube-cluster.ts: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler; KWOK plays the kubelets, so no container ever runs)
// with enough fake node capacity for 1024 pods. For N workers (1 per pod), each run in a fresh namespace:
//   StatefulSet: the launcher's objects (root ConfigMap, then jobObjects: Secret, worker account, headless
//                Service, worker StatefulSet); the StatefulSet controller creates the N pods.
//   plain pods:  the same root, Secret, account and Service, then N workerPod() creates issued by this process
//                (CREATE_CONCURRENCY requests in flight).
// Timed from the first create until all N pods are Running (seen on a watch of the job's worker pods), then
// from deleting the root until the garbage collector removed every pod.
// Prints one JSON line with every sample on stdout; progress goes to stderr. Stops everything it starts.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createObject, deleteRoot, kubeApi } from '../dist/launchers/k8s/kube-api.js';
import { jobSelector } from '../dist/launchers/k8s/names.js';
import {
  jobObjects,
  jobSecret,
  k8sJob,
  rootConfigMap,
  rootOwnerReference,
  workerAccountObjects,
  workerHeadlessService,
  workerPod,
} from '../dist/launchers/k8s/objects/index.js';
import { workerEnvironment } from '../dist/job/worker-environment.js';
import { parseSpec } from '../dist/spec/validate.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../scripts/build-k8s.sh', import.meta.url));
const SIZES = (process.env.BENCH_K8S_SIZES ?? '16,128,1024').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_K8S_REPEATS ?? 3);
/** Runs at N ≥ 512. */
const BIG_REPEATS = Number(process.env.BENCH_K8S_BIG_REPEATS ?? 2);
/** Plain pods: create requests in flight at once. */
const CREATE_CONCURRENCY = Number(process.env.BENCH_K8S_CREATE_CONCURRENCY ?? 32);
/** KWOK nodes: NODES × NODE_PODS pod slots (1600 for 1024 workers). */
const NODES = 8;
const NODE = { cpu: '64', memory: '256Gi', pods: '200' };
const RESOURCES = { cpu: 0.01, memory: '16Mi' };
const RUN_TIMEOUT_MS = 300_000;
const MODES = ['statefulset', 'pods'];
const TOKEN = 'bench-token-0123456789abcdef';
const PACKAGE_REF = { kind: 'http', url: 'http://pkg.example:8080/p.tar.gz', token: 'read-token', sha256: 'a'.repeat(64), size: 1 };

const { tsImport } = await import('tsx/esm/api');
const { startKubeCluster, KUBERNETES_VERSION, KWOK_VERSION } = await tsImport('../test/env/kube-cluster.ts', import.meta.url);
const { testCacheDir } = await tsImport('../test/env/s3-server.ts', import.meta.url);

let cluster;
/** The build script's process group while it runs (a cold build takes tens of minutes). */
let buildGroup;
// test/env/kube-cluster.ts has its own exit hook: it SIGKILLs the cluster's processes, by PID, and removes its dirs.
process.on('exit', () => {
  if (buildGroup) killGroup(buildGroup, 'SIGKILL');
});
/** Set on SIGTERM/SIGINT: the runs' errors from then on are the control plane going away. */
let terminating = false;
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    terminating = true;
    process.stderr.write(`k8s bench: ${sig}, stopping the control plane\n`);
    const stopped = cluster ? cluster.stop().catch(() => undefined) : Promise.resolve();
    void Promise.race([stopped, sleep(8000)]).then(() => process.exit(1));
  });
}

function killGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch {
    // Already gone.
  }
}

/**
 * startKubeCluster builds missing binaries synchronously (blocking SIGTERM for tens of minutes): build them here
 * first, without blocking, when the cache has none.
 */
function ensureBinaries() {
  const marker = path.join(testCacheDir(), `k8s-${KUBERNETES_VERSION}`, '.twister2-ready');
  try {
    if (readFileSync(marker, 'utf8').trim() === `kubernetes=v${KUBERNETES_VERSION} kwok=${KWOK_VERSION}`) return Promise.resolve();
  } catch {
    // Not built.
  }
  process.stderr.write('k8s bench: building the Kubernetes binaries (scripts/build-k8s.sh; tens of minutes cold)\n');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT], {
      env: { ...process.env, K8S_VERSION: KUBERNETES_VERSION, KWOK_VERSION, TWISTER2_TEST_CACHE: testCacheDir() },
      stdio: ['ignore', 'ignore', 'inherit'],
      detached: true,
    });
    buildGroup = child.pid;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      buildGroup = undefined;
      if (code === 0) resolve();
      else reject(new Error(`scripts/build-k8s.sh ended with ${signal ?? `code ${code}`}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// CPU time of the control plane's processes (from /proc), to show where the time goes.

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Name → pid of this cluster's processes (the env's state file records them by PID, in start order). */
const components = {};
const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'];

function clusterPids() {
  return JSON.parse(readFileSync(path.join(cluster.dataDir, 'twister2-kube-state.json'), 'utf8')).pids;
}

function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function cpuSnapshot() {
  const out = Object.fromEntries(Object.entries(components).map(([name, pid]) => [name, cpuMs(pid)]));
  const self = process.cpuUsage();
  out.bench = (self.user + self.system) / 1000;
  return out;
}

const cpuDelta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));

// ---------------------------------------------------------------------------------------------------
// A list + watch of one job's worker pods, over its own connection (not the client library's).

function watchPods(ns, labelSelector) {
  const ca = readFileSync(cluster.caFile);
  const base = `${cluster.server}/api/v1/namespaces/${encodeURIComponent(ns)}/pods?labelSelector=${encodeURIComponent(labelSelector)}`;
  const pods = new Map();
  const listeners = new Set();
  let rv;
  let req;
  let closed = false;
  let restarts = 0;
  /** The current connection's number: a connection's end and error both call restart(), only once counts. */
  let gen = 0;

  const apply = (type, pod) => {
    const name = pod.metadata.name;
    if (type === 'DELETED') pods.delete(name);
    else pods.set(name, { scheduled: Boolean(pod.spec?.nodeName), running: pod.status?.phase === 'Running' && Boolean(pod.spec?.nodeName) });
  };
  const changed = () => {
    for (const l of listeners) l();
  };
  const list = async () => {
    const r = await cluster.request('GET', `/api/v1/namespaces/${encodeURIComponent(ns)}/pods?labelSelector=${encodeURIComponent(labelSelector)}`);
    pods.clear();
    for (const p of r.body.items) apply('ADDED', p);
    rv = r.body.metadata.resourceVersion;
    changed();
  };
  const restart = (g) => {
    if (closed || g !== gen) return;
    const next = ++gen;
    restarts++;
    setTimeout(() => {
      if (closed) return;
      list().then(watch, () => restart(next));
    }, 200);
  };
  const watch = () => {
    if (closed) return;
    const g = gen;
    req = https.get(
      `${base}&watch=true&allowWatchBookmarks=true&timeoutSeconds=1800&resourceVersion=${rv}`,
      { headers: { authorization: `Bearer ${cluster.adminToken}`, accept: 'application/json' }, ca, agent: false },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return restart(g);
        }
        const lines = createInterface({ input: res });
        // A reset or our own close(): restart() below decides whether to go on.
        lines.on('error', () => undefined);
        lines.on('line', (line) => {
          let ev;
          try {
            ev = JSON.parse(line);
          } catch {
            return;
          }
          if (ev.type === 'ERROR') {
            // Typically 410 Gone (resourceVersion too old): list again. The stream is closed by the server.
            return;
          }
          rv = ev.object?.metadata?.resourceVersion ?? rv;
          if (ev.type !== 'BOOKMARK') {
            apply(ev.type, ev.object);
            changed();
          }
        });
        res.on('end', () => restart(g));
        res.on('error', () => undefined);
      },
    );
    req.on('error', () => restart(g));
  };

  const ready = list().then(watch);
  return {
    ready,
    pods,
    get restarts() {
      return restarts;
    },
    /** Resolves with performance.now() of the first change at which pred() holds. */
    until(what, pred, timeoutMs = RUN_TIMEOUT_MS) {
      if (pred()) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (${describe()})`));
        }, timeoutMs);
        const check = () => {
          if (!pred()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(performance.now());
        };
        listeners.add(check);
      });
    },
    counts: () => {
      let scheduled = 0;
      let running = 0;
      for (const p of pods.values()) {
        if (p.scheduled) scheduled++;
        if (p.running) running++;
      }
      return { exist: pods.size, scheduled, running };
    },
    close() {
      closed = true;
      req?.destroy();
    },
  };
  function describe() {
    let scheduled = 0;
    let running = 0;
    for (const p of pods.values()) {
      if (p.scheduled) scheduled++;
      if (p.running) running++;
    }
    return `${pods.size} pods, ${scheduled} scheduled, ${running} Running`;
  }
}

// ---------------------------------------------------------------------------------------------------

let api;

async function waitUntil(what, fn, timeoutMs = 120_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function createNamespace(ns) {
  await cluster.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await waitUntil(`service account default in ${ns}`, async () => (await cluster.request('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`, undefined, [404])).status === 200);
}

async function deleteNamespace(ns) {
  await cluster.request('DELETE', `/api/v1/namespaces/${ns}`, undefined, [404]);
  await waitUntil(`namespace ${ns} gone`, async () => (await cluster.request('GET', `/api/v1/namespaces/${ns}`, undefined, [404])).status === 404, 180_000, 500);
}

/** Runs `fn(i)` for i in 0..n-1, `limit` at a time. */
async function pool(n, limit, fn) {
  let next = 0;
  const lane = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
}

let runSeq = 0;

/** One job of n workers in a fresh namespace, its pods from a StatefulSet or created one by one by this process. */
async function runOnce(mode, n) {
  const seq = ++runSeq;
  const ns = `bench-${mode === 'statefulset' ? 'sts' : 'pods'}-${n}-${seq}`;
  const jobId = `${mode === 'statefulset' ? 'sts' : 'pods'}-${n}-${seq}-${process.pid}`;
  await createNamespace(ns);
  const spec = parseSpec({
    name: `bench-${mode}`,
    cluster: 'kubernetes',
    workers: n,
    worker: { module: 'worker.mjs' },
    resources: RESOURCES,
    kubernetes: { namespace: ns, workersPerPod: 1 },
  });
  const watcher = watchPods(ns, jobSelector(jobId, 'worker'));
  try {
    await watcher.ready;
    const cpu0 = cpuSnapshot();
    const t0 = performance.now();
    const root = await createObject(api, rootConfigMap(jobId, spec));
    const job = k8sJob(jobId, spec, rootOwnerReference(root));
    const env = workerEnvironment({ jobId, spec, jobMasterUrl: 'http://10.0.0.1:7575', token: TOKEN, packageRef: PACKAGE_REF }, { secret: { kind: 'cluster' } });
    const c = watcher.counts;
    const existing = watcher.until(`${n} pods created`, () => c().exist >= n);
    const scheduled = watcher.until(`${n} pods scheduled`, () => c().scheduled >= n);
    const running = watcher.until(`${n} pods Running`, () => c().running >= n);
    // Handled below; not unhandled if a create fails first.
    for (const p of [existing, scheduled, running]) p.catch(() => undefined);
    if (mode === 'statefulset') {
      for (const o of jobObjects(job, { secret: { token: TOKEN, packageRef: PACKAGE_REF }, workers: { env } })) await createObject(api, o);
    } else {
      await createObject(api, jobSecret(job, { token: TOKEN, packageRef: PACKAGE_REF }));
      for (const o of workerAccountObjects(job)) await createObject(api, o);
      await createObject(api, workerHeadlessService(job));
      await pool(n, CREATE_CONCURRENCY, (ordinal) => createObject(api, workerPod(job, { env }, ordinal)));
    }
    const created = performance.now();
    const [tExist, tScheduled, tRunning] = await Promise.all([existing, scheduled, running]);
    const cpu1 = cpuSnapshot();

    const d0 = performance.now();
    await deleteRoot(api, job.names.root, ns);
    const tGone = await watcher.until(`the ${n} pods deleted`, () => watcher.pods.size === 0);
    return {
      createdMs: created - t0,
      allExistMs: tExist - t0,
      scheduledMs: tScheduled - t0,
      runningMs: tRunning - t0,
      deleteMs: tGone - d0,
      cpuMs: cpuDelta(cpu0, cpu1),
      watchRestarts: watcher.restarts,
    };
  } finally {
    watcher.close();
    await deleteNamespace(ns);
  }
}

/** A run; a failed one is recorded and run once more. */
async function measured(mode, n, r) {
  let s;
  try {
    s = await runOnce(mode, n);
  } catch (err) {
    r.failures.push(`${mode}: ${err.message}`);
    process.stderr.write(`k8s ${mode} n=${n}: run failed, trying again: ${err.message}\n`);
    s = await runOnce(mode, n);
  }
  const into = r[mode];
  for (const k of Object.keys(s)) (into[k] ??= []).push(s[k]);
  process.stderr.write(
    `k8s n=${n} ${mode.padEnd(11)}: client done ${s.createdMs.toFixed(0)} ms, all created ${s.allExistMs.toFixed(0)}, scheduled ${s.scheduledMs.toFixed(0)}, ` +
      `Running ${s.runningMs.toFixed(0)} ms; deleted ${s.deleteMs.toFixed(0)} ms\n`,
  );
}

try {
  await ensureBinaries();
} catch (err) {
  process.stdout.write(JSON.stringify({ k8s: { error: `no Kubernetes binaries: ${err.message} (cold builds take tens of minutes: run bash scripts/build-k8s.sh once)` } }) + '\n');
  process.exit(0);
}

cluster = await startKubeCluster({ nodes: Array.from({ length: NODES }, (_, i) => ({ name: `kw-${i + 1}`, ...NODE })) });
const pids = clusterPids();
pids.forEach((pid, i) => (components[COMPONENTS[i] ?? `pid-${pid}`] = pid));
process.stderr.write(`k8s bench: control plane ${KUBERNETES_VERSION} + kwok ${KWOK_VERSION} up in ${cluster.startSeconds.toFixed(1)} s at ${cluster.server} (pids ${pids.join(' ')})\n`);
api = kubeApi({ namespace: 'default', kubeconfig: cluster.kubeconfigFile });

const results = [];
try {
  // Warm-up (not recorded): the controllers' and the scheduler's first pods, the compiled dist modules.
  for (const mode of MODES) await runOnce(mode, 16);

  for (const n of SIZES) {
    const repeats = n >= 512 ? Math.min(REPEATS, BIG_REPEATS) : REPEATS;
    const r = { n, repeats, statefulset: {}, pods: {}, failures: [] };
    for (let i = 0; i < repeats; i++) {
      // Alternate which mode goes first, so a drift in the machine's load does not favour one.
      for (const mode of i % 2 ? [...MODES].reverse() : MODES) await measured(mode, n, r);
    }
    results.push(r);
  }
} catch (err) {
  // The signal handler stops the control plane and exits.
  if (terminating) await new Promise(() => undefined);
  process.stderr.write(`k8s bench failed: ${err.stack ?? err.message}\n`);
  for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok']) process.stderr.write(`--- ${c}:\n${cluster.logTail(c, 10)}\n`);
  await cluster.stop();
  throw err;
}
await cluster.stop();
const left = pids.filter((pid) => {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // Gone.
  }
});
if (left.length) throw new Error(`k8s bench: control-plane pids ${left.join(' ')} still running after stop()`);
process.stdout.write(
  JSON.stringify({
    k8s: {
      kubernetes: KUBERNETES_VERSION,
      kwok: KWOK_VERSION,
      nodes: NODES,
      node: NODE,
      resources: RESOURCES,
      createConcurrency: CREATE_CONCURRENCY,
      cpus: os.cpus().length,
      startSeconds: cluster.startSeconds,
      results,
    },
  }) + '\n',
);
process.exit(0);

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { ensureDebianPackages } from './debian.js';
import { currentOwner, endChild, exited, orphanedStateDirs, signal } from './processes.js';
import { testCacheDir } from './s3-server.js';

/**
 * A real Kubernetes control plane for the integration tests, without a container runtime:
 * etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager and kube-scheduler built from the
 * published Go modules by scripts/build-k8s.sh (cached under testCacheDir()), and kwok, which plays the
 * kubelets: it keeps the Node objects Ready and moves every scheduled pod to Running with a pod IP, and
 * its server answers the API server's pod log and exec calls as a kubelet would, from the files and
 * commands a pod's kwok Logs and Exec objects name. Containers never run. StatefulSets, the garbage
 * collector, RBAC, TokenRequest, scheduling with affinity and taints are all the real thing.
 *
 * Every call starts its own cluster: its own temp dir, etcd data dir (in /dev/shm) and free loopback ports, so
 * two clusters can coexist. stop() ends the components by PID (SIGTERM in reverse start order, SIGKILL after
 * 5 s) and removes the temp dirs; a process-exit hook does the same if a test forgets, and a later start
 * cleans up what a killed test process left behind (only clusters whose owner process is gone).
 *
 * The binaries take tens of minutes to build cold: `npm test` and `npm run test:clusters` build them before
 * the suites that use them (vitest.clusters.config.ts), as a test hook's timeout is far shorter.
 */

export const KUBERNETES_VERSION = '1.33.13';
export const KWOK_VERSION = 'v0.7.0';
/** Pod IPs handed out by kwok. Disjoint from SERVICE_CIDR. */
export const POD_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/16';

export interface KubeNodeSpec {
  name: string;
  /** Added to kubernetes.io/hostname=<name>, kubernetes.io/os=linux, kubernetes.io/arch=amd64, type=kwok. */
  labels?: Record<string, string>;
  /** Capacity = allocatable. Defaults: cpu 32, memory 256Gi, pods 110. */
  cpu?: string;
  memory?: string;
  pods?: string;
  /** More resources the node advertises (capacity = allocatable), e.g. `{ 'nvidia.com/gpu': '4' }` as a device plugin would. */
  extended?: Record<string, string>;
  taints?: Array<{ key: string; value?: string; effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }>;
}

export interface KubeCluster {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Admin kubeconfig (user "admin" in group system:masters, by bearer token; CA = caFile). */
  kubeconfigFile: string;
  adminToken: string;
  /** The apiserver's self-signed serving certificate with its CA (the kubeconfig's certificate-authority). */
  caFile: string;
  /** This cluster's temp dir (removed by stop()). */
  dataDir: string;
  /** One <component>.log per component (inside dataDir, so also removed by stop()). */
  logsDir: string;
  /** Ports in use, for diagnostics. */
  ports: { etcd: number; etcdPeer: number; apiserver: number; controllerManager: number; scheduler: number; kwok: number };
  /** Seconds startKubeCluster took, from the first process spawned to all nodes Ready. */
  startSeconds: number;
  /** Creates a node and waits until kwok reports it Ready. */
  addNode(node: KubeNodeSpec): Promise<void>;
  /** A token for the service account (TokenRequest API, 1 h); the service account must exist. */
  tokenFor(namespace: string, serviceAccount: string, expirationSeconds?: number): Promise<string>;
  /** A raw API call as admin: `request('GET', '/api/v1/nodes')`. Throws on HTTP >= 400 unless `allowStatus` lists it. */
  request<T = unknown>(method: string, apiPath: string, body?: unknown, allowStatus?: number[]): Promise<{ status: number; body: T }>;
  /** The last lines of a component's log: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok. */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

export interface StartKubeClusterOptions {
  nodes: KubeNodeSpec[];
  /** Keep dataDir (logs, certs) after stop(), for debugging. Also TWISTER2_KEEP_KUBE_CLUSTER=1. */
  keepDataDir?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Binaries

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'];

function kubeBinDir(): string {
  return path.join(testCacheDir(), `k8s-${KUBERNETES_VERSION}`, 'bin');
}

function binariesReady(): boolean {
  const dir = kubeBinDir();
  try {
    const marker = readFileSync(path.join(dir, '..', '.twister2-ready'), 'utf8').trim();
    return marker === `kubernetes=v${KUBERNETES_VERSION} kwok=${KWOK_VERSION}` && BINARIES.every((b) => existsSync(path.join(dir, b)));
  } catch {
    return false;
  }
}

/**
 * The directory with kube-apiserver, kube-controller-manager, kube-scheduler and kwok; builds them with
 * scripts/build-k8s.sh when missing (tens of minutes cold, synchronous; the script's lock makes concurrent
 * callers wait for one build).
 */
export function ensureKubeBinaries(): string {
  if (binariesReady()) return kubeBinDir();
  const script = path.join(repoRoot, 'scripts', 'build-k8s.sh');
  const r = spawnSync('bash', [script], {
    encoding: 'utf8',
    env: { ...process.env, K8S_VERSION: KUBERNETES_VERSION, KWOK_VERSION },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
    timeout: 2 * 60 * 60_000,
  });
  const dir = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !binariesReady()) {
    throw new Error(`${script} failed (${r.signal ?? `exit ${r.status}`}):\n${(r.stderr ?? '').split('\n').slice(-40).join('\n')}`);
  }
  return dir || kubeBinDir();
}

/**
 * kwok's Logs and Exec CRDs, from its Go module (in the build's module cache; `go mod download` is a no-op
 * there, and fetches it otherwise). With them kwok's server answers the API server's log and exec calls
 * for a pod from the files and commands its Logs and Exec objects name (test/env/kube-pod-runner.ts).
 */
function kwokCrds(): Json[] {
  const cache = testCacheDir();
  const r = spawnSync('/usr/local/go/bin/go', ['mod', 'download', '-json', `sigs.k8s.io/kwok@${KWOK_VERSION}`], {
    encoding: 'utf8',
    env: { ...process.env, GOMODCACHE: path.join(cache, 'go', 'mod'), GOFLAGS: '-modcacherw', GOTOOLCHAIN: 'local' },
    timeout: 5 * 60_000,
  });
  const dir = r.status === 0 ? (JSON.parse(r.stdout) as { Dir?: string }).Dir : undefined;
  if (!dir) throw new Error(`go mod download sigs.k8s.io/kwok@${KWOK_VERSION} failed: ${r.stderr || r.error?.message}`);
  return ['logs', 'execs'].map((k) => parseYaml(readFileSync(path.join(dir, 'kustomize', 'crd', 'bases', `kwok.x-k8s.io_${k}.yaml`), 'utf8')) as Json);
}

function ensureEtcd(): string {
  const etcd = '/usr/bin/etcd';
  if (!existsSync(etcd)) ensureDebianPackages(['etcd-server']);
  if (!existsSync(etcd)) throw new Error('etcd-server installed but /usr/bin/etcd is missing');
  return etcd;
}

// ---------------------------------------------------------------------------------------------------
// Processes: tracked by PID, killed on exit, leftovers of dead owners cleaned up at the next start.

interface ClusterState {
  ownerPid: number;
  ownerStart: string;
  pids: number[];
  dirs: string[];
}

const STATE_FILE = 'twister2-kube-state.json';
const TEMP_PREFIX = 'twister2-kube-';
const live = new Map<string, { children: ChildProcess[]; state: ClusterState; dataDir: string; keep: boolean }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live.values()) {
      for (const pid of c.state.pids) signal(pid, 'SIGKILL');
      if (!c.keep) for (const d of c.state.dirs) rmSync(d, { recursive: true, force: true });
    }
  });
}

/** Removes clusters whose owning process died without stopping them (killed test workers). */
function reapOrphans(): void {
  for (const { name: e, state } of orphanedStateDirs<ClusterState>(TEMP_PREFIX, STATE_FILE)) {
    for (const pid of state.pids) {
      // Only a process that is still one of this cluster's (its command line names the cluster's dir).
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(e)) signal(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    for (const d of state.dirs) if (d.includes(TEMP_PREFIX)) rmSync(d, { recursive: true, force: true });
  }
}

function tailFile(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** `count` distinct free loopback ports (all held open together while chosen). */
async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => {
            const a = srv.address();
            resolve(typeof a === 'object' && a ? a.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

// ---------------------------------------------------------------------------------------------------
// HTTP

interface Json {
  [k: string]: unknown;
}

function httpRequest(
  url: string,
  opts: { method?: string; token?: string; ca?: string; body?: unknown; timeoutMs?: number; contentType?: string },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (payload !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: opts.method ?? 'GET',
        headers,
        ...(u.protocol === 'https:' ? (opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }) : {}),
        timeout: opts.timeoutMs ?? 10_000,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 10_000} ms: ${opts.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function probe(url: string, token?: string, ca?: string): Promise<boolean> {
  try {
    const r = await httpRequest(url, { token, ca, timeoutMs: 2000 });
    return r.status === 200;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------

function nodeObject(n: KubeNodeSpec): Json {
  const resources = { cpu: n.cpu ?? '32', memory: n.memory ?? '256Gi', pods: n.pods ?? '110', ...n.extended };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
        ...n.labels,
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'kwok.x-k8s.io/node': 'fake' },
    },
    spec: { taints: n.taints ?? [] },
    status: {
      allocatable: resources,
      capacity: resources,
      // Loopback only: anything that dials a "kubelet" (logs, exec) stays on this machine.
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: n.name },
      ],
    },
  };
}

function nodeReady(node: Json): boolean {
  const status = node.status as { conditions?: Array<{ type: string; status: string }> } | undefined;
  const spec = node.spec as { taints?: Array<{ key: string }> } | undefined;
  const ready = status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  // The node lifecycle controller taints a node not-ready until it has seen it Ready.
  const notReadyTaint = spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready' || t.key === 'node.kubernetes.io/unreachable') ?? false;
  return ready && !notReadyTaint;
}

export async function startKubeCluster(opts: StartKubeClusterOptions): Promise<KubeCluster> {
  const bin = ensureKubeBinaries();
  const etcdBin = ensureEtcd();
  reapOrphans();
  installExitHook();
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startOnce(bin, etcdBin, opts);
    } catch (err) {
      lastError = err;
      // A port taken between choosing and binding: try again with others.
      if (!(err instanceof PortRaceError)) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

class PortRaceError extends Error {}

async function startOnce(bin: string, etcdBin: string, opts: StartKubeClusterOptions): Promise<KubeCluster> {
  const t0 = Date.now();
  const keep = opts.keepDataDir ?? process.env.TWISTER2_KEEP_KUBE_CLUSTER === '1';
  const dataDir = mkdtempSync(path.join(os.tmpdir(), TEMP_PREFIX));
  const shm = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const etcdDir = mkdtempSync(path.join(shm, `${TEMP_PREFIX}etcd-`));
  const logsDir = path.join(dataDir, 'logs');
  const pkiDir = path.join(dataDir, 'pki');
  mkdirSync(logsDir);
  mkdirSync(pkiDir);
  const [etcdPort, etcdPeerPort, apiPort, kcmPort, schedPort, kwokPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const ports = { etcd: etcdPort, etcdPeer: etcdPeerPort, apiserver: apiPort, controllerManager: kcmPort, scheduler: schedPort, kwok: kwokPort };
  const server = `https://127.0.0.1:${apiPort}`;

  const state: ClusterState = { ...currentOwner(), pids: [], dirs: [etcdDir, dataDir] };
  const saveState = () => writeFileSync(path.join(dataDir, STATE_FILE), JSON.stringify(state));
  saveState();
  const children: ChildProcess[] = [];
  const names = new Map<ChildProcess, string>();
  live.set(dataDir, { children, state, dataDir, keep });

  const logFile = (name: string) => path.join(logsDir, `${name}.log`);
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_') && k !== 'KUBECONFIG')) as NodeJS.ProcessEnv;
  const launch = (name: string, cmd: string, args: string[]): ChildProcess => {
    const fd = openSync(logFile(name), 'a');
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...cleanEnv, HOME: dataDir }, cwd: dataDir });
    closeSync(fd);
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    children.push(child);
    names.set(child, name);
    state.pids.push(child.pid);
    saveState();
    return child;
  };
  const failIfExited = (child: ChildProcess) => {
    if (!exited(child)) return;
    const name = names.get(child) ?? '?';
    const log = tailFile(logFile(name));
    const msg = `${name} exited (${child.signalCode ?? `code ${child.exitCode}`}) during start-up; ${logFile(name)}:\n${log}`;
    throw /address already in use/i.test(log) ? new PortRaceError(msg) : new Error(msg);
  };
  const waitFor = async (what: string, ms: number, deps: ChildProcess[], check: () => Promise<boolean>) => {
    const deadline = Date.now() + ms;
    for (;;) {
      deps.forEach(failIfExited);
      if (await check()) return;
      if (Date.now() > deadline) {
        const logs = deps.map((c) => `--- ${names.get(c)}:\n${tailFile(logFile(names.get(c) ?? ''), 20)}`).join('\n');
        throw new Error(`timed out after ${ms} ms waiting for ${what}\n${logs}`);
      }
      await sleep(100);
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const end = (child: ChildProcess) => endChild(child, 5000);
      // Reverse start order: the apiserver's clients together (kwok, scheduler, controller-manager), then
      // the apiserver, then etcd.
      const [etcdChild, apiChild, ...clients] = children;
      await Promise.all(clients.map(end));
      if (apiChild) await end(apiChild);
      if (etcdChild) await end(etcdChild);
      live.delete(dataDir);
      rmSync(etcdDir, { recursive: true, force: true });
      if (!keep) rmSync(dataDir, { recursive: true, force: true });
    })());

  try {
    // etcd: Debian's build, own ports and data dir (never the distribution's service on :2379).
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = launch('etcd', etcdBin, [
      '--name=twister2',
      `--data-dir=${etcdDir}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=twister2=${peerUrl}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-level=warn',
      // Names this cluster's dir on etcd's command line, which is how reapOrphans recognises the process.
      `--initial-cluster-token=${path.basename(dataDir)}`,
    ]);

    const adminToken = randomBytes(24).toString('hex');
    const tokensFile = path.join(pkiDir, 'tokens.csv');
    writeFileSync(tokensFile, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const saKey = path.join(pkiDir, 'sa.key');
    const saPub = path.join(pkiDir, 'sa.pub');
    writeFileSync(saKey, privateKey, { mode: 0o600 });
    writeFileSync(saPub, publicKey);

    await waitFor('etcd', 30_000, [etcd], () => probe(`${etcdUrl}/health`));

    const apiserver = launch('kube-apiserver', path.join(bin, 'kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pkiDir}`,
      `--token-auth-file=${tokensFile}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      // The "kubernetes" service's endpoints would be 127.0.0.1, which Endpoints validation refuses.
      '--endpoint-reconciler-type=none',
      // Logs, exec and attach dial the node's InternalIP (127.0.0.1, where no kubelet listens), never a name to resolve.
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      '--v=0',
    ]);
    const caFile = path.join(pkiDir, 'apiserver.crt');
    await waitFor('kube-apiserver /readyz', 60_000, [etcd, apiserver], async () => existsSync(caFile) && probe(`${server}/readyz`, adminToken));
    const ca = readFileSync(caFile, 'utf8');

    const kubeconfigFile = path.join(dataDir, 'admin.kubeconfig');
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'twister2-test', cluster: { server, 'certificate-authority': caFile } }],
      users: [{ name: 'admin', user: { token: adminToken } }],
      contexts: [{ name: 'twister2-test', context: { cluster: 'twister2-test', user: 'admin', namespace: 'default' } }],
      'current-context': 'twister2-test',
    };
    writeFileSync(kubeconfigFile, JSON.stringify(kubeconfig, null, 2) + '\n', { mode: 0o600 });

    const request = async <T = unknown>(method: string, apiPath: string, body?: unknown, allowStatus: number[] = []) => {
      const contentType = method === 'PATCH' ? 'application/merge-patch+json' : undefined;
      const r = await httpRequest(`${server}${apiPath}`, { method, token: adminToken, ca, body, contentType, timeoutMs: 30_000 });
      if (r.status >= 400 && !allowStatus.includes(r.status)) throw new Error(`${method} ${apiPath}: HTTP ${r.status} ${r.text.slice(0, 2000)}`);
      let parsed: unknown = r.text;
      try {
        parsed = JSON.parse(r.text);
      } catch {
        // Not JSON.
      }
      return { status: r.status, body: parsed as T };
    };

    // The other three wait for the apiserver themselves; started together they overlap their start-up.
    const kcm = launch('kube-controller-manager', path.join(bin, 'kube-controller-manager'), [
      `--kubeconfig=${kubeconfigFile}`,
      '--leader-elect=false',
      '--controllers=*',
      `--service-account-private-key-file=${saKey}`,
      `--root-ca-file=${caFile}`,
      '--use-service-account-credentials=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path.join(pkiDir, 'kcm')}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-statefulset-syncs=10',
      // kwok renews its nodes' heartbeats late on a busy machine; a node thought unreachable has its pods marked
      // not Ready (ContainersReady stays True), which takes them out of their Services' endpoints.
      '--node-monitor-grace-period=10m',
      '--profiling=false',
      '--v=0',
    ]);
    const scheduler = launch('kube-scheduler', path.join(bin, 'kube-scheduler'), [
      `--kubeconfig=${kubeconfigFile}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${path.join(pkiDir, 'scheduler')}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--profiling=false',
      '--v=0',
    ]);
    // kwok watches Logs and Exec objects only once their CRDs exist.
    for (const crd of kwokCrds()) await request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    await waitFor('the kwok CRDs established', 30_000, [etcd, apiserver], async () => {
      const r = await request<{ items: Array<{ spec: { group: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> }>('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
      const kwokCrds = r.body.items.filter((c) => c.spec.group === 'kwok.x-k8s.io');
      return kwokCrds.length === 2 && kwokCrds.every((c) => c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True'));
    });
    // An empty config file: without --config kwok reads ~/.kwok/kwok.yaml.
    const kwokConfig = path.join(dataDir, 'kwok.yaml');
    writeFileSync(kwokConfig, '');
    const kwok = launch('kwok', path.join(bin, 'kwok'), [
      `--config=${kwokConfig}`,
      `--kubeconfig=${kubeconfigFile}`,
      '--manage-all-nodes=true',
      `--cidr=${POD_CIDR}`,
      '--node-ip=127.0.0.1',
      `--server-address=127.0.0.1:${kwokPort}`,
      // Nodes advertise kwok's server as their kubelet: the API server sends pod log and exec calls there.
      `--node-port=${kwokPort}`,
      '--enable-crds=Logs,Exec',
    ]);
    const all = [etcd, apiserver, kcm, scheduler, kwok];

    const createNode = async (n: KubeNodeSpec) => {
      await request('POST', '/api/v1/nodes', nodeObject(n));
    };
    const waitNodesReady = (nodeNames: string[], ms: number) =>
      waitFor(`nodes ${nodeNames.join(', ')} Ready`, ms, all, async () => {
        const r = await request<{ items: Json[] }>('GET', '/api/v1/nodes');
        const ready = new Set(r.body.items.filter(nodeReady).map((n) => (n.metadata as { name: string }).name));
        return nodeNames.every((n) => ready.has(n));
      });

    await Promise.all(opts.nodes.map(createNode));
    await waitFor('kube-controller-manager, kube-scheduler and kwok /healthz', 60_000, all, async () => {
      const ok = await Promise.all([
        probe(`https://127.0.0.1:${kcmPort}/healthz`),
        probe(`https://127.0.0.1:${schedPort}/healthz`),
        probe(`http://127.0.0.1:${kwokPort}/healthz`),
      ]);
      return ok.every(Boolean);
    });
    await waitNodesReady(
      opts.nodes.map((n) => n.name),
      60_000,
    );
    // The service account controller is running once "default" has its default service account.
    await waitFor('the default service account', 30_000, all, async () => (await request('GET', '/api/v1/namespaces/default/serviceaccounts/default', undefined, [404])).status === 200);
    // kwok makes its pod IP pool when it first needs it, without a lock: pods started together in a fresh
    // cluster could get the same IP from two pools. One pod first makes the one pool.
    const warm = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'twister2-kwok-warm-up', namespace: 'default' }, spec: { nodeName: opts.nodes[0]!.name, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'c', image: 'none' }] } };
    await request('POST', '/api/v1/namespaces/default/pods', warm);
    await waitFor('the warm-up pod\'s IP', 30_000, all, async () => Boolean((await request<{ status?: { podIP?: string } }>('GET', '/api/v1/namespaces/default/pods/twister2-kwok-warm-up')).body.status?.podIP));
    await request('DELETE', '/api/v1/namespaces/default/pods/twister2-kwok-warm-up?gracePeriodSeconds=0');

    return {
      server,
      kubeconfigFile,
      adminToken,
      caFile,
      dataDir,
      logsDir,
      ports,
      startSeconds: (Date.now() - t0) / 1000,
      request,
      async addNode(node) {
        await createNode(node);
        await waitNodesReady([node.name], 60_000);
      },
      async tokenFor(namespace, serviceAccount, expirationSeconds = 3600) {
        const r = await request<{ status: { token: string } }>(
          'POST',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
          { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
        );
        return r.body.status.token;
      },
      logTail: (component, lines = 40) => tailFile(logFile(component), lines),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

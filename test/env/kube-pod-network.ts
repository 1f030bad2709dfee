import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig, type V1Pod, type V1Service, type V1ServicePort } from '@kubernetes/client-node';
import { POD_CIDR, SERVICE_CIDR } from './kube-cluster.js';
import { currentOwner, isAlive, teardownOnExit, type Owner } from './processes.js';
import { startPollLoop } from './poll-loop.js';

/**
 * The pod network of a kwok cluster (test/env/kube-cluster.ts) for one namespace, as a CNI plugin and kube-proxy
 * give it. test/env/kube-pod-runner.ts runs pods' containers as local processes sharing this machine's network,
 * where kwok's pod IPs (POD_CIDR) and ClusterIPs (SERVICE_CIDR) lead nowhere. This makes them real, so that the
 * in-cluster job master is reached by workers through its ClusterIP, and by the client through the API server's
 * service proxy (which dials podIP:targetPort of an Endpoints address):
 * - each Running pod's podIP (no deletionTimestamp) is on lo as /32, for its processes to bind, while a pod has it;
 * - each Service's ClusterIP too, with a listener per TCP port (kube-proxy's userspace mode) piping each connection
 *   to a ready pod of its selector (round robin) at targetPort (a name: a container port's), waiting up to 5 s for one.
 * Pods and Services are polled; API errors go to errors(). Only addresses inside POD_CIDR or SERVICE_CIDR are ever
 * touched (a hostNetwork pod's IP is 127.0.0.1). os.tmpdir()/twister2-podnet-<pid>-<n>.json lists the addresses
 * (written before adding one, after removing one): a later start removes those of dead processes from lo, never one
 * a live network lists. Two clusters at once may hand out the same IPs: they share the address, not its ports.
 */

export interface PodNetwork {
  /** Puts a Running pod's IP on lo now (the pod runner calls it before starting the pod's processes, which may bind it). */
  attach(pod: V1Pod): void;
  stop(): Promise<void>;
  errors(): string[];
}

interface State extends Owner {
  addrs: string[];
}

interface Listener {
  server: net.Server;
  sockets: Set<net.Socket>;
  port: V1ServicePort;
}

const PREFIX = 'twister2-podnet-';
const NO_ENDPOINT_WAIT_MS = 5000;
const ATTACH_HOLD_MS = 5000;
let seq = 0;

const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
function inCidr(ip: string, cidr: string): boolean {
  const [base = '', bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return net.isIPv4(ip) && Math.floor(toInt(ip) / size) === Math.floor(toInt(base) / size);
}
const managed = (ip: string | undefined): ip is string => !!ip && (inCidr(ip, POD_CIDR) || inCidr(ip, SERVICE_CIDR));

function ipAddr(op: 'add' | 'del', addr: string): void {
  try {
    execFileSync('ip', ['addr', op, `${addr}/32`, 'dev', 'lo'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const msg = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
    // Already there / already gone (the wording depends on the iproute2 version).
    if (!(op === 'add' ? /exists|already assigned/i : /not found|cannot assign/i).test(msg)) throw new Error(`ip addr ${op} ${addr}/32 dev lo: ${msg}`);
  }
}

function stateFiles(): Array<{ file: string; state: State; alive: boolean }> {
  const out: Array<{ file: string; state: State; alive: boolean }> = [];
  for (const name of readdirSync(os.tmpdir()).filter((n) => n.startsWith(PREFIX) && n.endsWith('.json'))) {
    const file = path.join(os.tmpdir(), name);
    try {
      const state = JSON.parse(readFileSync(file, 'utf8')) as State;
      out.push({ file, state, alive: isAlive(state.ownerPid, state.ownerStart) });
    } catch {
      // Being written, or just removed.
    }
  }
  return out;
}

/** Whether a live network other than the one with `self` as its state file has `addr`. */
const claimedElsewhere = (addr: string, self: string) => stateFiles().some((s) => s.alive && s.file !== self && s.state.addrs.includes(addr));

/** Removes the addresses networks of dead processes left on lo, and their state files. */
function reapStale(): void {
  for (const s of stateFiles().filter((f) => !f.alive)) {
    for (const a of s.state.addrs.filter(managed)) if (!claimedElsewhere(a, s.file)) ipAddr('del', a);
    rmSync(s.file, { force: true });
  }
}

const runnable = (p: V1Pod) => p.status?.phase === 'Running' && managed(p.status.podIP) && !p.metadata?.deletionTimestamp;
const ready = (p: V1Pod) => runnable(p) && (p.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'True') === 'True';
const selects = (s: V1Service, p: V1Pod) => {
  const sel = Object.entries(s.spec?.selector ?? {});
  return sel.length > 0 && sel.every(([k, v]) => p.metadata?.labels?.[k] === v);
};

/** The pod's port for a service port's targetPort (a number, a container port's name, or the port itself). */
function targetPort(p: V1Pod, sp: V1ServicePort): number | undefined {
  const t = sp.targetPort ?? sp.port;
  if (typeof t === 'number' || /^\d+$/.test(t)) return Number(t);
  for (const c of p.spec?.containers ?? []) for (const cp of c.ports ?? []) if (cp.name === t && (cp.protocol ?? 'TCP') === 'TCP') return cp.containerPort;
  return undefined;
}

export async function startPodNetwork(opts: { kubeconfigFile: string; namespace: string; pollMs?: number }): Promise<PodNetwork> {
  reapStale();
  const kc = new KubeConfig();
  kc.loadFromFile(opts.kubeconfigFile);
  const core = kc.makeApiClient(CoreV1Api);
  const ns = opts.namespace;
  const pollMs = opts.pollMs ?? 200;
  const stateFile = path.join(os.tmpdir(), `${PREFIX}${process.pid}-${++seq}.json`);
  const owner = currentOwner();
  const addrs = new Set<string>();
  const listeners = new Map<string, Listener>();
  /** Pod IP → the pod the runner attached it for, and when. */
  const attached = new Map<string, { uid: string; at: number }>();
  /** Service uid → its ready pods, from the last poll. */
  const endpoints = new Map<string, V1Pod[]>();
  const problems: string[] = [];
  const problem = (msg: string) => {
    if (!problems.includes(msg)) problems.push(msg);
  };
  let stopped = false;
  let rr = 0;

  const save = () => writeFileSync(stateFile, JSON.stringify({ ...owner, addrs: [...addrs] } satisfies State));
  const attempt = (fn: () => void) => {
    try {
      fn();
      return true;
    } catch (err) {
      problem((err as Error).message);
      return false;
    }
  };
  const addAddr = (a: string) => {
    addrs.add(a);
    save();
    if (attempt(() => ipAddr('add', a))) return;
    addrs.delete(a);
    save();
  };
  const dropAddr = (a: string) => {
    if (!claimedElsewhere(a, stateFile)) attempt(() => ipAddr('del', a));
    addrs.delete(a);
    save();
  };
  const close = (key: string) => {
    const l = listeners.get(key);
    listeners.delete(key);
    l?.server.close();
    for (const s of l?.sockets ?? []) s.destroy();
  };

  const pick = (uid: string, sp: V1ServicePort) => {
    const pods = endpoints.get(uid) ?? [];
    for (let i = 0; i < pods.length; i++) {
      const p = pods[rr++ % pods.length];
      const port = p && targetPort(p, sp);
      if (p?.status?.podIP && port) return { host: p.status.podIP, port };
    }
    return undefined;
  };

  const proxy = async (client: net.Socket, l: Listener, uid: string) => {
    l.sockets.add(client);
    client.on('error', () => client.destroy());
    client.on('close', () => l.sockets.delete(client));
    const deadline = Date.now() + NO_ENDPOINT_WAIT_MS;
    let to = pick(uid, l.port);
    while (!to && Date.now() < deadline && !client.destroyed && !stopped) to = await sleep(Math.min(pollMs, 100)).then(() => pick(uid, l.port));
    if (!to || client.destroyed || stopped) return void client.destroy();
    const upstream = net.connect(to.port, to.host);
    l.sockets.add(upstream);
    upstream.on('error', () => upstream.destroy());
    // An error on one side ends the other at once; a clean close lets what is buffered through first.
    upstream.on('close', (hadError) => {
      l.sockets.delete(upstream);
      if (hadError) client.destroy();
      else client.end();
    });
    client.on('close', (hadError) => (hadError ? upstream.destroy() : upstream.end()));
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const open = async (key: string, ip: string, sp: V1ServicePort, svc: V1Service) => {
    const l: Listener = { server: net.createServer(), sockets: new Set(), port: sp };
    const uid = svc.metadata?.uid ?? '';
    l.server.on('connection', (c) => void proxy(c, l, uid));
    try {
      await new Promise<void>((resolve, reject) => l.server.once('error', reject).listen(sp.port, ip, resolve));
      l.server.on('error', (err) => problem(`service ${ns}/${svc.metadata?.name} ${ip}:${sp.port}: ${err.message}`));
      listeners.set(key, l);
    } catch (err) {
      problem(`service ${ns}/${svc.metadata?.name}: listen on ${ip}:${sp.port}: ${(err as Error).message}`);
    }
  };

  const tick = async () => {
    let pods: V1Pod[];
    let services: V1Service[];
    try {
      const [pl, sl] = await Promise.all([core.listNamespacedPod({ namespace: ns }), core.listNamespacedService({ namespace: ns })]);
      [pods, services] = [pl.items, sl.items];
    } catch (err) {
      problem(`listing pods and services in ${ns}: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    if (stopped) return;
    const live = pods.filter(runnable);
    const want = new Set(live.map((p) => p.status?.podIP ?? ''));
    // A pod attached by the runner keeps its IP until a list shows it gone: a list may lag behind the runner's
    // (the API server answers lists from its watch cache), and kwok hands a freed IP to the next pod at once.
    const listed = new Map(pods.map((p) => [p.metadata?.uid ?? '', p]));
    for (const [ip, a] of attached) {
      const p = listed.get(a.uid);
      // A lagging list may also show the pod as it was before it ran: only its end lets the IP go.
      const ended = p ? Boolean(p.metadata?.deletionTimestamp) || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' : Date.now() - a.at >= ATTACH_HOLD_MS;
      if (ended) attached.delete(ip);
      else want.add(ip);
    }
    const wantPorts = new Map<string, [string, V1ServicePort, V1Service]>();
    endpoints.clear();
    for (const s of services) {
      const ip = s.spec?.clusterIP;
      if (!managed(ip)) continue;
      want.add(ip);
      endpoints.set(s.metadata?.uid ?? '', live.filter((p) => ready(p) && selects(s, p)));
      for (const sp of s.spec?.ports ?? []) if ((sp.protocol ?? 'TCP') === 'TCP') wantPorts.set(`${s.metadata?.uid} ${ip}:${sp.port}`, [ip, sp, s]);
    }
    for (const a of want) if (!addrs.has(a)) addAddr(a);
    for (const [key, [ip, sp, s]] of wantPorts) {
      const l = listeners.get(key);
      if (l) l.port = sp;
      else await open(key, ip, sp, s);
    }
    for (const key of [...listeners.keys()]) if (!wantPorts.has(key)) close(key);
    for (const a of [...addrs]) if (!want.has(a)) dropAddr(a);
  };

  // Synchronous, so that it can also run when the test process exits without stop().
  const teardown = teardownOnExit(() => {
    for (const key of [...listeners.keys()]) close(key);
    for (const a of [...addrs]) dropAddr(a);
    rmSync(stateFile, { force: true });
  });
  const polling = await startPollLoop(tick, pollMs);

  return {
    errors: () => [...problems],
    attach(pod) {
      const ip = pod.status?.podIP;
      if (stopped || !managed(ip)) return;
      attached.set(ip, { uid: pod.metadata?.uid ?? '', at: Date.now() });
      if (!addrs.has(ip)) addAddr(ip);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await polling.stop();
      teardown.stop();
    },
  };
}

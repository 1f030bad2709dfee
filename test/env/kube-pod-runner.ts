import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants as fsConstants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, type V1Container, type V1EnvVar, type V1Node, type V1Pod, type V1Volume } from '@kubernetes/client-node';
import { orphanedStateDirs, processStart, type Owner } from './processes.js';
import { startPollLoop } from './poll-loop.js';

/**
 * A stand-in for the kubelet's container runtime on a kwok cluster (test/env/kube-cluster.ts), where pods
 * become Running without any container: every pod of a namespace that kwok reports Running (pod IP, no
 * deletionTimestamp; optionally only those matching a label selector) gets one LOCAL process per container,
 * `command[0] [...command.slice(1), ...args]`, with the environment the kubelet would give it:
 *
 * - `env` in order (value, fieldRef, secretKeyRef, configMapKeyRef, resourceFieldRef) after `envFrom`
 *   (secretRef/configMapRef, prefix), `$(VAR)` references expanded as Kubernetes does (also in command and
 *   args); KUBERNETES_SERVICE_HOST/PORT name the real API server (as the kubelet injects them); HOSTNAME is the
 *   pod's hostname; PATH and HOME are the test process's (an image's own), TMPDIR a directory of the pod's
 *   (its own /tmp); `extraEnv` last, overriding.
 * - The pod's hostname (spec.hostname, else its name) is also what gethostname() says in its containers:
 *   each runs in a UTS namespace of its own with that name (so this needs root, as the pod network does).
 *   Commands exec'd through the API server (kwok runs them) still see this machine's hostname.
 * - Volumes: every mountPath is a local directory under this runner's temp dir: per pod (its containers
 *   share it) for emptyDir, configMap, secret, downwardAPI and projected volumes (the last four filled in
 *   once, when the pod starts; a projected serviceAccountToken is a real TokenRequest bound to the pod);
 *   per runner for a PVC (by claim name: ReadWriteMany) and NFS (server+path); per node for hostPath.
 *   An emptyDir of medium Memory is a directory in /dev/shm (tmpfs, as the kubelet mounts one; its
 *   sizeLimit is not enforced). With `removeEmptyDirs` a pod's emptyDirs are removed once its processes
 *   are gone, as the kubelet removes them with the pod.
 *   Command, args and env values that name a mountPath (or a path under it) are rewritten to the local
 *   directory, and `pathMap` (container prefix → local prefix) likewise, e.g. `/opt/twister2` → the
 *   repository checkout. In command and args a path is recognised anywhere after a word boundary (shell
 *   scripts); in env values at the start of the value or of a colon-separated element.
 * - stdout+stderr are appended to `${logDir}/${pod}-${container}.log`; cwd is a per-container temp dir
 *   (or workingDir, if it maps to a local directory through the mounts or pathMap).
 * - Container logs through the API server, as a kubelet serves them: each run of a container also writes
 *   its output in the CRI log format to a file of its own, and the pod's kwok `Logs` object (same name,
 *   owned by the pod, so collected with it) names that file and the previous run's; kwok's server then
 *   answers `GET .../pods/<pod>/log?container=<c>[&previous=true]` from them (test/env/kube-cluster.ts
 *   enables the CRD).
 * - Container statuses, as a kubelet reports them (kwok sets them once, when the pod becomes Running, and
 *   no kwok stage touches a pod with an IP again): a run that starts is `state.running` with a
 *   containerID; one that ends is `state.terminated` (exitCode, 128 + signal number when killed, reason,
 *   times), or, when it is restarted, `state.waiting` (CrashLoopBackOff) with the run in `lastState` until
 *   the next run starts with `restartCount` one higher. The Logs object names a new run's file before its
 *   status says it started, so a log request after that status reads the new run.
 * - Exec through the API server (`POST .../pods/<pod>/exec`): the pod's kwok `Exec` object has kwok run the
 *   command as a local process in the container's cwd, with the container's environment (mapped paths
 *   included) except the values that come from Secrets.
 *
 * A pod that goes away (gone from the list, new uid, deletionTimestamp, phase Succeeded/Failed) has its
 * processes' groups sent SIGTERM, then SIGKILL after the pod's terminationGracePeriodSeconds (as the kubelet;
 * default 30, at most 30 here); a recreated pod (new uid) starts afresh. A process
 * that exits is recorded and not restarted, unless `restart: true` (restartPolicy Always/OnFailure, 1 s
 * backoff doubling to 10 s). Processes are detached (own process group) and tracked by PID only; the
 * test process's exit kills them, and a later start kills what a killed test process left behind.
 *
 * Secret values are never logged: errors name the Secret and key only.
 */

export interface PodProcess {
  pod: string;
  uid: string;
  container: string;
  /** 0 when the spawn itself failed (see error). */
  pid: number;
  /** undefined while running; null when ended by a signal (see signal). */
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  /** The spawn failed (e.g. ENOENT). */
  error?: string;
  logFile: string;
  /** mountPath → local directory, for this container. */
  mounts: Record<string, string>;
  /** 0 for the first run of the container; with `restart`, one more per restart. */
  restartCount: number;
}

export interface PodRunner {
  /** Every process started, current and finished, in start order. */
  processes(): PodProcess[];
  /** Problems met so far: pods whose containers could not be started (retried at the next poll), API errors. */
  errors(): string[];
  /** The runner's temp dir (removed by stop()). */
  readonly dir: string;
  /** Kills every process it started (SIGTERM to the groups, SIGKILL after 3 s), stops watching, removes the temp dir. */
  stop(): Promise<void>;
  /**
   * Holds container status updates (a kubelet whose status reports lag behind its containers) until the
   * returned function is called; the held updates are then made in order.
   */
  holdStatusUpdates(): () => void;
}

export interface StartPodRunnerOptions {
  kubeconfigFile: string;
  namespace: string;
  labelSelector?: string;
  logDir: string;
  /** Added to every container's environment last (overriding); a function gets the pod and container. */
  extraEnv?: Record<string, string> | ((pod: V1Pod, container: V1Container) => Record<string, string>);
  /** Container path prefix → local path prefix, applied to command, args, env values and workingDir. */
  pathMap?: Record<string, string>;
  /** Emulate restartPolicy Always / OnFailure (the kubelet's restarts). Default false. */
  restart?: boolean;
  /** Create the pods' kwok Exec objects, so exec through the API server works. Default true. */
  serveExec?: boolean;
  /** Poll interval of the pod list. Default 200 ms. */
  pollMs?: number;
  /** Called before a pod's processes start (e.g. to put its IP on this machine: kube-pod-network.ts). */
  beforeStart?: (pod: V1Pod) => void;
  /** Remove a pod's emptyDirs once its processes are gone, as the kubelet does. Default false: tests may read what a finished pod left there. */
  removeEmptyDirs?: boolean;
}

const TEMP_PREFIX = 'twister2-pods-';
const STATE_FILE = 'runner.json';
const KILL_GRACE_MS = 3000;

interface Run {
  proc: PodProcess;
  child?: ChildProcess;
  done: Promise<void>;
}

interface PodState {
  name: string;
  uid: string;
  dir: string;
  runs: Run[];
  terminating: boolean;
  /** Resolves when every process of the pod has been killed (set once terminating). */
  terminated?: Promise<void>;
  restartTimers: NodeJS.Timeout[];
  /** Container → the run whose CRI log file the pod's Logs object names. */
  logRuns: Map<string, number>;
  /** SIGTERM → SIGKILL, from the pod's terminationGracePeriodSeconds. */
  graceMs: number;
  /** Container → what its Exec object entry gives an exec'd command. */
  execs: Map<string, { workDir: string; envs: Array<{ name: string; value: string }> }>;
  /** Container → its status updates, made one after the other. */
  statusUpdates: Map<string, Promise<void>>;
  /** Container → how its last run ended, for the next run's `lastState`. */
  lastTerminated: Map<string, Terminated>;
}

/** A ContainerStateTerminated as it goes on the wire. */
interface Terminated {
  exitCode: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
  containerID: string;
}

/** The status fields a kubelet sets for a container (besides name and image). */
interface ContainerStatusFields {
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: { running?: { startedAt: string }; terminated?: Terminated; waiting?: { reason: string; message: string } };
  lastState: { terminated?: Terminated };
}

// ---------------------------------------------------------------------------------------------------
// CRI log format: `<RFC 3339 time> <stream> <F|P> <text>` per line, what the kubelet's log reader parses.

function criWriter(fd: number, stream: 'stdout' | 'stderr'): { write(b: Buffer): void; end(): void } {
  let partial = '';
  const line = (text: string, tag: 'F' | 'P') => writeSync(fd, `${new Date().toISOString()} ${stream} ${tag} ${text}\n`);
  return {
    write(b) {
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) line(l, 'F');
    },
    end() {
      if (partial) line(partial, 'F');
      partial = '';
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Process groups

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  if (!(pgid > 0)) return;
  try {
    process.kill(-pgid, sig);
  } catch {
    // Gone.
  }
}

function procState(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', pgrp: Number(f[2]) };
  } catch {
    return undefined;
  }
}

/** Whether any process of the group is still alive (zombies do not count). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  const lead = procState(pgid);
  if (lead && lead.pgrp === pgid && lead.state !== 'Z') return true;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const s = procState(Number(e));
    if (s && s.pgrp === pgid && s.state !== 'Z') return true;
  }
  return false;
}

async function killGroup(pgid: number, graceMs = KILL_GRACE_MS): Promise<void> {
  if (!(pgid > 0)) return;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return;
    await sleep(50);
  }
  signalGroup(pgid, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (Date.now() < hard && groupAlive(pgid)) await sleep(50);
}

/** Where a runner keeps its pods' emptyDirs of medium Memory: tmpfs. */
const memoryRootOf = (runnerDir: string) => path.join('/dev/shm', path.basename(runnerDir));

/** Kills what runners of dead test processes left behind: groups whose leader's cwd is inside their dir. */
function reapOrphans(): void {
  for (const { dir, state } of orphanedStateDirs<Owner & { pids: number[] }>(TEMP_PREFIX, STATE_FILE)) {
    for (const pid of state.pids) {
      try {
        if (readlinkSync(`/proc/${pid}/cwd`).startsWith(dir + path.sep)) signalGroup(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(memoryRootOf(dir), { recursive: true, force: true });
  }
}

/** Where execvp would find `file` with this PATH (relative to cwd if it names a path); undefined if nowhere. */
function resolveCommand(file: string, pathVar: string, cwd: string): string | undefined {
  const candidates = file.includes('/') ? [path.resolve(cwd, file)] : pathVar.split(':').map((d) => path.resolve(cwd, d || '.', file));
  for (const f of candidates) {
    try {
      accessSync(f, fsConstants.X_OK);
      if (statSync(f).isFile()) return f;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/** This machine's unshare (util-linux), looked up once. */
let unshareBin: string | undefined;

/**
 * The command line that runs `file args` with the pod's hostname, as a container runtime gives every
 * container of a pod (spec.hostname, else the pod's name) its own UTS namespace: here all pods run on one
 * machine, and would all have its hostname, so what programs name after the hostname would meet another
 * pod's (OpenMPI's session directory `$TMPDIR/ompi.<hostname>.<uid>`, whose job family's part every OpenMPI
 * daemon clears as it starts: daemons sharing one removed each other's, `mkdir ...: File exists`; the
 * OpenMPI tests' stand-in for ssh gives each "remote host" its own name the same way). unshare and then sh
 * exec the command, so the PID the runner records, signals and waits for (and the process group's leader)
 * is the container's own process, and its exit code or signal is the container's. A command that cannot be
 * found is spawned as it is, so it fails to start as before (StartError).
 */
function inPodUts(hostname: string, plan: { file: string; args: string[]; env: Record<string, string>; cwd: string }): { file: string; args: string[] } {
  unshareBin ??= resolveCommand('unshare', process.env.PATH ?? '/usr/bin:/bin', '/') ?? '/usr/bin/unshare';
  if (!hostname || !resolveCommand(plan.file, plan.env.PATH ?? '', plan.cwd)) return { file: plan.file, args: plan.args };
  const script = 'printf %s "$1" > /proc/sys/kernel/hostname && shift && exec "$@"';
  return { file: unshareBin, args: ['--uts', '--', '/bin/sh', '-c', script, 'sh', hostname, plan.file, ...plan.args] };
}

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes semantics

/** `$(VAR)` expansion exactly as k8s.io/kubernetes/third_party/forked/golang/expansion: `$$` is `$`, unknown references stay. */
export function expandVars(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const rest = input.slice(cursor + 1);
    let read: string;
    let isVar = false;
    let advance = 1;
    if (rest[0] === '$') {
      read = '$';
    } else if (rest[0] === '(') {
      const close = rest.indexOf(')', 1);
      if (close > 0) {
        read = rest.slice(1, close);
        isVar = true;
        advance = close + 1;
      } else {
        read = '$(';
      }
    } else {
      read = `$${rest[0]}`;
    }
    out += isVar ? (lookup(read) ?? `$(${read})`) : read;
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource.Quantity as a number ("500m" → 0.5, "64Mi" → 67108864, "1e3" → 1000). */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?([a-zA-Z]*)$/.exec(q.trim());
  const mult = m ? SUFFIXES[m[3] ?? ''] : undefined;
  if (!m || mult === undefined) throw new Error(`not a quantity: ${q}`);
  return Number(m[1]) * (m[2] ? 10 ** Number(m[2].slice(1)) : 1) * mult;
}

function labelLines(map: Record<string, string> | undefined): string {
  return Object.keys(map ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(map?.[k] ?? '')}`)
    .join('\n');
}

function fieldValue(pod: V1Pod, fieldPath: string, forFile = false): string {
  const md = pod.metadata ?? {};
  const sel = /^metadata\.(labels|annotations)\[(['"])(.*)\2\]$/.exec(fieldPath);
  if (sel) return (sel[1] === 'labels' ? md.labels : md.annotations)?.[sel[3] ?? ''] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return md.name ?? '';
    case 'metadata.namespace':
      return md.namespace ?? '';
    case 'metadata.uid':
      return md.uid ?? '';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.podIPs':
      return (pod.status?.podIPs ?? []).map((p) => p.ip).join(',');
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.hostIPs':
      return (pod.status?.hostIPs ?? []).map((p) => p.ip).join(',');
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
  }
  if (forFile && fieldPath === 'metadata.labels') return labelLines(md.labels);
  if (forFile && fieldPath === 'metadata.annotations') return labelLines(md.annotations);
  throw new Error(`unsupported fieldRef ${fieldPath}`);
}

/** Valid environment variable names for envFrom (C_IDENTIFIER-ish, as the kubelet checks). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

// ---------------------------------------------------------------------------------------------------

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Container-path → local-path rewriting: longest prefix first, only whole path components. */
class PathMapper {
  private readonly entries: Array<[string, string]>;
  private readonly embedded: RegExp | undefined;

  constructor(maps: Array<Record<string, string>>) {
    const seen = new Map<string, string>();
    for (const m of maps) {
      for (const [from, to] of Object.entries(m)) {
        const f = from.length > 1 ? from.replace(/\/+$/, '') : from;
        if (f === '/' || f === '' || seen.has(f)) continue;
        seen.set(f, to.length > 1 ? to.replace(/\/+$/, '') : to);
      }
    }
    this.entries = [...seen.entries()].sort((a, b) => b[0].length - a[0].length);
    this.embedded = this.entries.length
      ? new RegExp(`(^|[\\s"'=:;(,\`])(${this.entries.map(([f]) => escapeRe(f)).join('|')})(?=$|[/\\s"':;),\`])`, 'g')
      : undefined;
  }

  private one(v: string): string {
    for (const [from, to] of this.entries) {
      if (v === from) return to;
      if (v.startsWith(`${from}/`)) return to + v.slice(from.length);
    }
    return v;
  }

  /** An env value: the value, or each element of a colon-separated list, when it is or starts with a mapped path. */
  env(v: string): string {
    return v.includes(':') ? v.split(':').map((s) => this.one(s)).join(':') : this.one(v);
  }

  /** A command or argument: mapped paths anywhere after a word boundary (shell scripts too). */
  arg(v: string): string {
    if (!this.embedded) return v;
    const lookup = new Map(this.entries);
    return v.replace(this.embedded, (_m, pre: string, p: string) => pre + (lookup.get(p) ?? p));
  }
}

function safeJoin(dir: string, rel: string): string {
  const p = path.resolve(dir, rel);
  if (p !== dir && !p.startsWith(dir + path.sep)) throw new Error(`path ${rel} escapes its volume`);
  return p;
}

function writeVolumeFile(dir: string, rel: string, data: Buffer | string, mode: number): void {
  const file = safeJoin(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  rmSync(file, { force: true });
  writeFileSync(file, data, { mode: 0o600 });
  chmodSync(file, mode);
}

// ---------------------------------------------------------------------------------------------------

export async function startPodRunner(opts: StartPodRunnerOptions): Promise<PodRunner> {
  reapOrphans();
  installExitHook();
  const kc = new KubeConfig();
  kc.loadFromFile(opts.kubeconfigFile);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const server = new URL(kc.getCurrentCluster()?.server ?? 'https://127.0.0.1:443');
  const serviceEnv = {
    KUBERNETES_SERVICE_HOST: server.hostname.replace(/^\[|\]$/g, ''),
    KUBERNETES_SERVICE_PORT: server.port || (server.protocol === 'https:' ? '443' : '80'),
  };
  const ns = opts.namespace;
  const pollMs = opts.pollMs ?? 200;
  mkdirSync(opts.logDir, { recursive: true });
  const root = mkdtempSync(path.join(os.tmpdir(), TEMP_PREFIX));
  const memoryRoot = memoryRootOf(root);
  /** A pod's emptyDirs: on disk in its dir, of medium Memory in /dev/shm. */
  const emptyDirsOf = (podDir: string) => ({ disk: path.join(podDir, 'volumes'), memory: path.join(memoryRoot, path.basename(podDir)) });
  const ownerStart = processStart(process.pid) ?? '';
  const pods = new Map<string, PodState>();
  const all: Run[] = [];
  const problems: string[] = [];
  const problemSeen = new Set<string>();
  let stopped = false;

  const problem = (msg: string) => {
    if (problemSeen.has(msg)) return;
    problemSeen.add(msg);
    problems.push(msg);
  };
  const saveState = () => {
    const pids = all.map((r) => r.proc.pid).filter((p) => p > 0);
    writeFileSync(path.join(root, STATE_FILE), JSON.stringify({ ownerPid: process.pid, ownerStart, pids }));
  };
  saveState();

  const notFound = (err: unknown) => err instanceof ApiException && err.code === 404;

  /** Secrets, config maps and nodes read for one pod start (each once). */
  const reader = () => {
    const cache = new Map<string, Promise<unknown>>();
    const once = <T>(key: string, fn: () => Promise<T>): Promise<T | undefined> => {
      if (!cache.has(key)) cache.set(key, fn().catch((err: unknown) => (notFound(err) ? undefined : Promise.reject(err))));
      return cache.get(key) as Promise<T | undefined>;
    };
    return {
      /** The Secret's data decoded, or undefined when it does not exist. */
      secret: (name: string) =>
        once(`s/${name}`, async () => {
          const s = await core.readNamespacedSecret({ name, namespace: ns });
          const data: Record<string, Buffer> = {};
          for (const [k, v] of Object.entries(s.data ?? {})) data[k] = Buffer.from(v, 'base64');
          for (const [k, v] of Object.entries(s.stringData ?? {})) data[k] = Buffer.from(v, 'utf8');
          return data;
        }),
      configMap: (name: string) =>
        once(`c/${name}`, async () => {
          const c = await core.readNamespacedConfigMap({ name, namespace: ns });
          const data: Record<string, Buffer> = {};
          for (const [k, v] of Object.entries(c.data ?? {})) data[k] = Buffer.from(v, 'utf8');
          for (const [k, v] of Object.entries(c.binaryData ?? {})) data[k] = Buffer.from(v, 'base64');
          return data;
        }),
      node: (name: string) => once<V1Node>(`n/${name}`, () => core.readNode({ name })),
    };
  };
  type Reader = ReturnType<typeof reader>;

  const keyOf = async (r: Reader, kind: 'Secret' | 'ConfigMap', name: string, key: string, optional: boolean | undefined): Promise<Buffer | undefined> => {
    const data = kind === 'Secret' ? await r.secret(name) : await r.configMap(name);
    const v = data?.[key];
    if (v === undefined && !optional) throw new Error(data ? `${kind} ${ns}/${name} has no key "${key}"` : `${kind} ${ns}/${name} not found`);
    return v;
  };

  const resourceValue = async (r: Reader, pod: V1Pod, container: V1Container, ref: { containerName?: string; resource: string; divisor?: string | number }): Promise<string> => {
    const c = ref.containerName ? pod.spec?.containers.find((x) => x.name === ref.containerName) : container;
    if (!c) throw new Error(`resourceFieldRef names no container ${ref.containerName}`);
    const [kind, res] = ref.resource.split('.') as ['limits' | 'requests', string];
    let q: string | undefined = c.resources?.[kind]?.[res];
    if (q === undefined && kind === 'limits' && pod.spec?.nodeName) {
      // The kubelet's default for an unset limit: the node's allocatable.
      q = (await r.node(pod.spec.nodeName))?.status?.allocatable?.[res];
    }
    const value = q === undefined ? 0 : parseQuantity(q);
    // An unset divisor comes back from the API server as "0": the kubelet takes it as 1.
    const divisor = (ref.divisor === undefined ? 0 : parseQuantity(ref.divisor)) || 1;
    if (res === 'cpu') return String(Math.ceil(Math.round(value * 1000) / Math.max(1, Math.round(divisor * 1000))));
    return String(Math.ceil(value / divisor));
  };

  /** Names in the container's environment whose values come from Secrets. */
  const secretEnvNames = async (r: Reader, container: V1Container): Promise<Set<string>> => {
    const names = new Set<string>();
    for (const e of container.env ?? []) if (e.valueFrom?.secretKeyRef) names.add(e.name);
    for (const from of container.envFrom ?? []) {
      if (!from.secretRef?.name) continue;
      for (const k of Object.keys((await r.secret(from.secretRef.name)) ?? {})) names.add((from.prefix ?? '') + k);
    }
    return names;
  };

  /** The container's environment as the kubelet computes it (before path rewriting). */
  const containerEnv = async (r: Reader, pod: V1Pod, container: V1Container): Promise<Array<[string, string]>> => {
    const tmp = new Map<string, string>();
    const order: string[] = [];
    const set = (k: string, v: string) => {
      if (!tmp.has(k)) order.push(k);
      tmp.set(k, v);
    };
    for (const from of container.envFrom ?? []) {
      const prefix = from.prefix ?? '';
      const src = from.secretRef ? { kind: 'Secret' as const, ...from.secretRef } : from.configMapRef ? { kind: 'ConfigMap' as const, ...from.configMapRef } : undefined;
      if (!src?.name) continue;
      const data = src.kind === 'Secret' ? await r.secret(src.name) : await r.configMap(src.name);
      if (!data) {
        if (src.optional) continue;
        throw new Error(`${src.kind} ${ns}/${src.name} (envFrom) not found`);
      }
      for (const [k, v] of Object.entries(data)) if (ENV_NAME.test(prefix + k)) set(prefix + k, v.toString('utf8'));
    }
    const lookup = (name: string) => tmp.get(name) ?? (serviceEnv as Record<string, string>)[name];
    for (const e of container.env ?? ([] as V1EnvVar[])) {
      const vf = e.valueFrom;
      if (!vf) {
        set(e.name, expandVars(e.value ?? '', lookup));
      } else if (vf.fieldRef) {
        set(e.name, fieldValue(pod, vf.fieldRef.fieldPath));
      } else if (vf.resourceFieldRef) {
        set(e.name, await resourceValue(r, pod, container, vf.resourceFieldRef));
      } else if (vf.secretKeyRef || vf.configMapKeyRef) {
        const ref = (vf.secretKeyRef ?? vf.configMapKeyRef)!;
        const v = await keyOf(r, vf.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name ?? '', ref.key, ref.optional);
        if (v !== undefined) set(e.name, v.toString('utf8'));
      }
    }
    return order.map((k) => [k, tmp.get(k) ?? '']);
  };

  /** Creates (and fills) the local directory of a volume. */
  const volumeDir = async (r: Reader, pod: V1Pod, podDir: string, v: V1Volume): Promise<string> => {
    let dir: string;
    if (v.persistentVolumeClaim) dir = path.join(root, 'pvc', v.persistentVolumeClaim.claimName);
    else if (v.nfs) dir = safeJoin(path.join(root, 'nfs', v.nfs.server), `.${path.posix.resolve('/', v.nfs.path)}`);
    else if (v.hostPath) dir = safeJoin(path.join(root, 'host', pod.spec?.nodeName ?? 'node'), `.${path.posix.resolve('/', v.hostPath.path)}`);
    else if (v.emptyDir?.medium === 'Memory') dir = path.join(emptyDirsOf(podDir).memory, v.name);
    else dir = path.join(emptyDirsOf(podDir).disk, v.name);
    mkdirSync(dir, { recursive: true });

    const fromData = async (
      kind: 'Secret' | 'ConfigMap',
      name: string | undefined,
      items: Array<{ key: string; path: string; mode?: number }> | undefined,
      optional: boolean | undefined,
      mode: number,
    ) => {
      if (!name) return;
      const data = kind === 'Secret' ? await r.secret(name) : await r.configMap(name);
      if (!data) {
        if (optional) return;
        throw new Error(`${kind} ${ns}/${name} (volume ${v.name}) not found`);
      }
      if (items?.length) {
        for (const it of items) {
          const val = data[it.key];
          if (val === undefined) {
            if (optional) continue;
            throw new Error(`${kind} ${ns}/${name} (volume ${v.name}) has no key "${it.key}"`);
          }
          writeVolumeFile(dir, it.path, val, it.mode ?? mode);
        }
      } else {
        for (const [k, val] of Object.entries(data)) writeVolumeFile(dir, k, val, mode);
      }
    };
    const downward = async (items: Array<{ path: string; fieldRef?: { fieldPath: string }; resourceFieldRef?: { containerName?: string; resource: string; divisor?: string }; mode?: number }> | undefined, mode: number) => {
      for (const it of items ?? []) {
        let val = '';
        if (it.fieldRef) val = fieldValue(pod, it.fieldRef.fieldPath, true);
        else if (it.resourceFieldRef) {
          const c = pod.spec?.containers.find((x) => x.name === it.resourceFieldRef?.containerName) ?? pod.spec?.containers[0];
          if (c) val = await resourceValue(r, pod, c, it.resourceFieldRef);
        }
        writeVolumeFile(dir, it.path, val, it.mode ?? mode);
      }
    };

    if (v.configMap) await fromData('ConfigMap', v.configMap.name, v.configMap.items, v.configMap.optional, v.configMap.defaultMode ?? 0o644);
    if (v.secret) await fromData('Secret', v.secret.secretName, v.secret.items, v.secret.optional, v.secret.defaultMode ?? 0o644);
    if (v.downwardAPI) await downward(v.downwardAPI.items, v.downwardAPI.defaultMode ?? 0o644);
    if (v.projected) {
      const mode = v.projected.defaultMode ?? 0o644;
      for (const s of v.projected.sources ?? []) {
        if (s.configMap) await fromData('ConfigMap', s.configMap.name, s.configMap.items, s.configMap.optional, mode);
        if (s.secret) await fromData('Secret', s.secret.name, s.secret.items, s.secret.optional, mode);
        if (s.downwardAPI) await downward(s.downwardAPI.items, mode);
        if (s.serviceAccountToken) {
          const tr = await core.createNamespacedServiceAccountToken({
            name: pod.spec?.serviceAccountName ?? 'default',
            namespace: ns,
            body: {
              spec: {
                audiences: s.serviceAccountToken.audience ? [s.serviceAccountToken.audience] : [],
                expirationSeconds: s.serviceAccountToken.expirationSeconds ?? 3607,
                boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
              },
            },
          });
          writeVolumeFile(dir, s.serviceAccountToken.path, tr.status?.token ?? '', mode);
        }
      }
    }
    return dir;
  };

  /** Creates (empty) and returns the CRI log file of one run of a container. */
  const criLogFile = (state: PodState, container: string, run: number): string => {
    const dir = path.join(state.dir, 'cri-logs');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${container}-${run}.log`);
    closeSync(openSync(file, 'a'));
    if (!state.logRuns.has(container)) state.logRuns.set(container, run);
    return file;
  };

  /** Creates or replaces one of the pod's kwok objects (named after the pod, owned by it). */
  const upsertKwokObject = async (state: PodState, kind: 'Logs' | 'Exec', spec: unknown): Promise<void> => {
    const ref = { group: 'kwok.x-k8s.io', version: 'v1alpha1', namespace: ns, plural: kind === 'Logs' ? 'logs' : 'execs', name: state.name };
    const ownerReferences = [{ apiVersion: 'v1', kind: 'Pod', name: state.name, uid: state.uid }];
    const existing = (await custom.getNamespacedCustomObject(ref).catch((err: unknown) => (notFound(err) ? undefined : Promise.reject(err)))) as
      | { metadata: { resourceVersion: string } }
      | undefined;
    const body = { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind, metadata: { name: state.name, namespace: ns, ownerReferences }, spec };
    if (!existing) await custom.createNamespacedCustomObject({ ...ref, body });
    else await custom.replaceNamespacedCustomObject({ ...ref, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } } });
  };

  /** The pod's kwok Logs object: each container → its current run's CRI log file, and the previous run's. */
  const publishLogs = (state: PodState, containers: string[]): Promise<void> =>
    upsertKwokObject(state, 'Logs', {
      logs: containers.map((c) => {
        const run = state.logRuns.get(c) ?? 0;
        const file = (n: number) => path.join(state.dir, 'cri-logs', `${c}-${n}.log`);
        return { containers: [c], logsFile: file(run), ...(run > 0 ? { previousLogsFile: file(run - 1) } : {}) };
      }),
    });

  /**
   * Waits until kwok's server reads the container's log from the file the Logs object now names, which does
   * not exist yet: kwok learns of the object through a watch, after the API server has it.
   */
  const kwokReadsNewLog = async (state: PodState, container: string): Promise<boolean> => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !stopped && !state.terminating) {
      const stale = await core.readNamespacedPodLog({ name: state.name, namespace: ns, container }).then(
        () => true,
        () => false,
      );
      if (!stale) return true;
      await sleep(50);
    }
    return stopped || state.terminating;
  };

  let statusGate: Promise<void> = Promise.resolve();

  /** Queues one status update of a container (after its earlier ones and while status updates are held). */
  const updateStatus = (state: PodState, container: string, fields: ContainerStatusFields): void => {
    const update = async () => {
      await statusGate;
      if (stopped || state.terminating) return;
      const pod = await core.readNamespacedPod({ name: state.name, namespace: ns });
      if (pod.metadata?.uid !== state.uid || pod.metadata.deletionTimestamp) return;
      const statuses = pod.status?.containerStatuses ?? [];
      const i = statuses.findIndex((s) => s.name === container);
      if (i < 0) throw new Error(`the pod has no status for container ${container}`);
      const value = { name: container, image: statuses[i]!.image, imageID: statuses[i]!.imageID ?? '', ...fields };
      // JSON patch of this container's entry only: the pod's other containers report on their own.
      await core.patchNamespacedPodStatus({
        name: state.name,
        namespace: ns,
        body: [
          { op: 'test', path: '/metadata/uid', value: state.uid },
          { op: 'test', path: `/status/containerStatuses/${i}/name`, value: container },
          { op: 'replace', path: `/status/containerStatuses/${i}`, value },
        ],
      });
    };
    const next = (state.statusUpdates.get(container) ?? Promise.resolve()).then(update).catch((err: Error) => {
      if (!stopped && !state.terminating && !notFound(err)) problem(`pod ${ns}/${state.name}: status of container ${container}: ${err.message.split('\n')[0]}`);
    });
    state.statusUpdates.set(container, next);
  };

  /** The pod's kwok Exec object: each container → its cwd and environment. */
  const publishExecs = (state: PodState): Promise<void> =>
    upsertKwokObject(state, 'Exec', {
      execs: [...state.execs].map(([c, local]) => ({ containers: [c], local })),
    });

  const spawnRun = (pod: V1Pod, state: PodState, c: V1Container, plan: { file: string; args: string[]; env: Record<string, string>; cwd: string; mounts: Record<string, string>; hostname: string }, restartCount: number): Run => {
    const proc: PodProcess = {
      pod: state.name,
      uid: state.uid,
      container: c.name,
      pid: 0,
      logFile: path.join(opts.logDir, `${state.name}-${c.name}.log`),
      mounts: plan.mounts,
      restartCount,
    };
    const containerID = `local://${state.uid.slice(0, 8)}-${c.name}-${restartCount}`;
    const startedAt = new Date().toISOString();
    const lastTerminated = state.lastTerminated.get(c.name);
    const lastState = lastTerminated ? { terminated: lastTerminated } : {};
    const fd = openSync(proc.logFile, 'a');
    const criFd = openSync(criLogFile(state, c.name, restartCount), 'a');
    const cmd = inPodUts(plan.hostname, plan);
    const child = spawn(cmd.file, cmd.args, { env: plan.env, cwd: plan.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const streams = [criWriter(criFd, 'stdout'), criWriter(criFd, 'stderr')];
    child.stdout!.on('data', (b: Buffer) => (writeSync(fd, b), streams[0]!.write(b)));
    child.stderr!.on('data', (b: Buffer) => (writeSync(fd, b), streams[1]!.write(b)));
    let open = true;
    const closeLogs = () => {
      if (!open) return;
      open = false;
      for (const w of streams) w.end();
      closeSync(fd);
      closeSync(criFd);
    };
    child.once('close', closeLogs);
    child.once('error', () => {
      if (!child.pid) closeLogs();
    });
    proc.pid = child.pid ?? 0;
    if (proc.pid > 0) liveGroups.add(proc.pid);
    const run: Run = {
      proc,
      child,
      done: new Promise<void>((resolve) => {
        child.once('error', (err) => {
          if (proc.pid > 0) return;
          proc.error = err.message;
          proc.exitCode = 127;
          resolve();
        });
        child.once('exit', (code, signal) => {
          proc.exitCode = code;
          proc.signal = signal;
          resolve();
        });
      }),
    };
    all.push(run);
    state.runs.push(run);
    saveState();
    if (proc.pid > 0) updateStatus(state, c.name, { containerID, ready: true, started: true, restartCount, state: { running: { startedAt } }, lastState });
    void run.done.then(() => {
      // The group may outlive its leader; it is killed with the pod.
      const policy = pod.spec?.restartPolicy ?? 'Always';
      const restarts = opts.restart && !stopped && !state.terminating && policy !== 'Never' && !(policy === 'OnFailure' && proc.exitCode === 0);
      const signo = proc.signal ? (os.constants.signals[proc.signal] ?? 0) : 0;
      const exitCode = proc.exitCode ?? 128 + signo;
      const terminated: Terminated = {
        exitCode,
        reason: proc.error ? 'StartError' : exitCode === 0 ? 'Completed' : 'Error',
        ...(proc.error ? { message: proc.error } : {}),
        startedAt,
        finishedAt: new Date().toISOString(),
        containerID,
      };
      state.lastTerminated.set(c.name, terminated);
      const backoff = Math.min(10_000, 1000 * 2 ** Math.min(restartCount, 4));
      const ended = { containerID, ready: false, started: false, restartCount };
      if (!restarts) return updateStatus(state, c.name, { ...ended, state: { terminated }, lastState });
      const message = `back-off ${backoff / 1000}s restarting failed container=${c.name} pod=${state.name}_${ns}(${state.uid})`;
      updateStatus(state, c.name, { ...ended, state: { waiting: { reason: 'CrashLoopBackOff', message } }, lastState: { terminated } });
      const t = setTimeout(() => {
        if (stopped || state.terminating) return;
        // The next run logs to a file of its own, named in the pod's Logs object before it starts (and
        // before its status says so).
        state.logRuns.set(c.name, restartCount + 1);
        void publishLogs(state, [...state.logRuns.keys()])
          .then(() => kwokReadsNewLog(state, c.name))
          .then((ok) => {
            if (!ok) problem(`pod ${ns}/${state.name}: kwok did not pick up the Logs object of container ${c.name}'s run ${restartCount + 1}`);
          })
          .catch((err: Error) => problem(`pod ${ns}/${state.name}: Logs object: ${err.message.split('\n')[0]}`))
          .then(() => {
            if (!stopped && !state.terminating) spawnRun(pod, state, c, plan, restartCount + 1);
          });
      }, backoff);
      state.restartTimers.push(t);
    });
    return run;
  };

  const startPod = async (pod: V1Pod, state: PodState) => {
    opts.beforeStart?.(pod);
    const r = reader();
    const spec = pod.spec!;
    mkdirSync(state.dir, { recursive: true });
    const volumes = new Map<string, string>();
    for (const v of spec.volumes ?? []) volumes.set(v.name, await volumeDir(r, pod, state.dir, v));
    const hostname = spec.hostname ?? pod.metadata?.name ?? '';
    const plans: Array<[V1Container, Parameters<typeof spawnRun>[3]]> = [];
    for (const c of spec.containers) {
      const mounts: Record<string, string> = {};
      for (const m of c.volumeMounts ?? []) {
        const vd = volumes.get(m.name);
        if (!vd) throw new Error(`container ${c.name} mounts unknown volume ${m.name}`);
        const local = m.subPath ? safeJoin(vd, m.subPath) : vd;
        mkdirSync(local, { recursive: true });
        mounts[m.mountPath] = local;
      }
      const mapper = new PathMapper([mounts, opts.pathMap ?? {}]);
      const kubeEnv = await containerEnv(r, pod, c);
      const envMap = new Map(kubeEnv);
      const lookup = (n: string) => envMap.get(n) ?? (serviceEnv as Record<string, string>)[n];
      const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => mapper.arg(expandVars(a, lookup)));
      if (!c.command?.length) throw new Error(`container ${c.name} has no command (the image's entrypoint is unknown here)`);
      // A pod has a /tmp of its own: programs that make well-known names under it (OpenMPI's session
      // directory, /tmp/ompi.<host>.<uid>) must not meet another pod's, as they would in this machine's /tmp.
      const tmp = path.join(state.dir, 'tmp');
      mkdirSync(tmp, { recursive: true });
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: process.env.HOME ?? os.homedir(),
        TMPDIR: tmp,
        HOSTNAME: hostname,
        ...serviceEnv,
      };
      for (const [k, v] of kubeEnv) env[k] = mapper.env(v);
      Object.assign(env, typeof opts.extraEnv === 'function' ? opts.extraEnv(pod, c) : (opts.extraEnv ?? {}));
      let cwd = path.join(state.dir, 'containers', c.name);
      mkdirSync(cwd, { recursive: true });
      if (c.workingDir) {
        const wd = mapper.env(c.workingDir);
        if (wd !== c.workingDir) cwd = wd;
      }
      plans.push([c, { file: argv[0]!, args: argv.slice(1), env, cwd, mounts, hostname }]);
    }
    // All or nothing: a container whose environment cannot be resolved starts none (retried later).
    for (const [c] of plans) criLogFile(state, c.name, 0);
    await publishLogs(state, plans.map(([c]) => c.name));
    for (const [c, plan] of plans) {
      const fromSecrets = await secretEnvNames(r, c);
      state.execs.set(c.name, { workDir: plan.cwd, envs: Object.entries(plan.env).filter(([k]) => !fromSecrets.has(k)).map(([name, value]) => ({ name, value })) });
    }
    if (opts.serveExec !== false) await publishExecs(state);
    for (const [c, plan] of plans) spawnRun(pod, state, c, plan, 0);
  };

  const terminate = (state: PodState): Promise<void> => {
    if (state.terminated) return state.terminated;
    state.terminating = true;
    for (const t of state.restartTimers) clearTimeout(t);
    state.terminated = Promise.all(
      state.runs.map(async (run) => {
        await killGroup(run.proc.pid, stopped ? KILL_GRACE_MS : state.graceMs);
        liveGroups.delete(run.proc.pid);
        await Promise.race([run.done, sleep(1000)]);
      }),
    ).then(() => {
      if (!opts.removeEmptyDirs) return;
      for (const dir of Object.values(emptyDirsOf(state.dir))) rmSync(dir, { recursive: true, force: true });
    });
    return state.terminated;
  };

  const runnable = (p: V1Pod) => p.status?.phase === 'Running' && Boolean(p.status.podIP) && !p.metadata?.deletionTimestamp;

  const tick = async () => {
    let list: V1Pod[];
    try {
      list = (await core.listNamespacedPod({ namespace: ns, ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}) })).items;
    } catch (err) {
      problem(`listing pods in ${ns}: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    const byUid = new Map(list.map((p) => [p.metadata?.uid ?? '', p]));
    for (const state of pods.values()) {
      if (state.terminating) continue;
      const p = byUid.get(state.uid);
      if (!p || p.metadata?.deletionTimestamp || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') void terminate(state);
    }
    for (const p of list) {
      const uid = p.metadata?.uid;
      const name = p.metadata?.name;
      if (!uid || !name || pods.has(uid) || !runnable(p) || stopped) continue;
      const graceMs = Math.min(p.spec?.terminationGracePeriodSeconds ?? 30, 30) * 1000;
      const state: PodState = { name, uid, dir: path.join(root, `${name}-${uid.slice(0, 8)}`), runs: [], terminating: false, restartTimers: [], logRuns: new Map(), execs: new Map(), graceMs, statusUpdates: new Map(), lastTerminated: new Map() };
      pods.set(uid, state);
      try {
        await startPod(p, state);
      } catch (err) {
        pods.delete(uid);
        problem(`pod ${ns}/${name} (${uid}): ${(err as Error).message.split('\n')[0]}`);
      }
    }
  };

  const polling = await startPollLoop(tick, pollMs);

  return {
    dir: root,
    processes: () => all.map((r) => ({ ...r.proc, mounts: { ...r.proc.mounts } })),
    errors: () => [...problems],
    holdStatusUpdates() {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const before = statusGate;
      statusGate = Promise.all([before, held]).then(() => undefined);
      return release;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await polling.stop();
      await Promise.all([...pods.values()].map(terminate));
      rmSync(root, { recursive: true, force: true });
      rmSync(memoryRoot, { recursive: true, force: true });
    },
  };
}

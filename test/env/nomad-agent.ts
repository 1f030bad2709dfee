import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { agentConfig } from './nomad-config.js';
import { freePort, testCacheDir } from './s3-server.js';

/**
 * A real Nomad agent (server and client in one process) for the integration tests.
 *
 * The binary is built from Nomad's published Go module by scripts/build-nomad.sh into
 * `$TWISTER2_TEST_CACHE/nomad-<version>/bin/nomad` (default cache ~/.cache/twister2-test). A cold build takes about ten
 * minutes on 2 cores, too long for a test hook: `npm test` runs the script before vitest, after which
 * ensureNomadBinary() returns in a few milliseconds.
 *
 * Each startNomadAgent() call runs its own agent in dev mode (`nomad agent -dev` plus a config file, see
 * nomad-config.ts): in-memory Raft, one node, raw_exec enabled, everything bound to 127.0.0.1 on free ports (HTTP,
 * RPC, Serf), so several agents can run at once. startNomadClient() adds a client-only agent (no -dev, no server,
 * `client { servers = [the dev agent's RPC address] }`) as one more node of that agent's cluster, and
 * startNomadCluster() starts both kinds at once; every agent is started, watched and stopped the same way. Its data, alloc and state directories live under one temp directory. Fingerprinters that
 * would reach out of the machine (cloud metadata at 169.254.169.254) or probe Consul/Vault are switched off, as are
 * HashiCorp's update check and Consul auto-join. No ACLs: no token needed.
 *
 * Cgroups: a Nomad client running as root puts every raw_exec task into cgroups of its own (on this machine's cgroup
 * v1 hierarchy it creates /sys/fs/cgroup/<controller>/nomad and moves tasks out of the cgroups the test process
 * runs in). The tests need none of that, so the root agent runs in a private mount namespace (`unshare --mount`) in
 * which /sys/fs/cgroup is unmounted: Nomad then finds no cgroups and runs tasks as plain child processes, which stay
 * in the test process's cgroups, as root, able to read anything under /work and /tmp and to run `node`. Should that
 * agent not come up, the agent runs as the unprivileged user `nobody` instead (from a copy of the binary in its
 * temp directory; such tasks cannot read root's 0700 directories, e.g. mkdtemp ones). `agent.user` tells which;
 * TWISTER2_NOMAD_USER=<user> forces a user.
 *
 * stop() shuts the agent down with SIGTERM (dev mode destroys its allocations on shutdown: tasks get SIGINT, then
 * SIGKILL after their kill_timeout, 5 s by default), SIGKILL after 8 s, and then kills by PID whatever the agent
 * started that is still there: its descendants (found by
 * walking /proc PPIDs, remembered before the agent goes) and any process that still works in, names or carries the
 * agent's temp directory (tasks whose executor died and that were re-parented). Then it removes the temp directory.
 * A process-exit hook does the same synchronously, and a later start cleans up after a test process that died
 * without either. Nothing is ever killed by name.
 */

/** Pinned: keep in step with NOMAD_VERSION's default in scripts/build-nomad.sh. */
export const NOMAD_VERSION = '1.11.3';

export interface NomadAgentOptions {
  /** The node's memory total as the scheduler sees it (client memory_total_mb); default: fingerprinted. */
  memoryMB?: number;
  /** The node's CPU total in MHz (client cpu_total_compute); default: fingerprinted. */
  cpuMHz?: number;
  /** Extra client meta (node attributes `${meta.KEY}`). */
  meta?: Record<string, string>;
  /** The agent's and its node's name (`${node.unique.name}`); default twister2-test-<http port>. */
  name?: string;
  /** Host volumes of its client (name → an existing directory the tasks' user may write). */
  hostVolumes?: Record<string, string>;
}

export interface NomadAgent {
  /** http://127.0.0.1:PORT: the HTTP API (NOMAD_ADDR). */
  addr: string;
  binary: string;
  /** The agent's temp directory (data_dir is `dataDir/data`, allocations under `dataDir/data/alloc`). */
  dataDir: string;
  /** The agent's stdout and stderr; kept after stop() for post-mortems. */
  logFile: string;
  /** Its client node's ID and name. */
  nodeId: string;
  nodeName: string;
  /** The OS user the agent and its raw_exec tasks run as: 'root' (without cgroups) or 'nobody'. */
  user: string;
  /** Ports the agent listens on (all on 127.0.0.1). */
  ports: { http: number; rpc: number; serf: number };
  /** SIGTERM, SIGKILL after 8 s, kill leftover task processes, remove dataDir. Idempotent. */
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('../../scripts/build-nomad.sh', import.meta.url));
const DIR_PREFIX = 'twister2-nomad-';
/** Marks the agent's environment (inherited by its plugins and, through them, by tasks) with its temp directory. */
const MARKER_VAR = 'TWISTER2_NOMAD_AGENT_DIR';

/** Builds Nomad unless cached (see scripts/build-nomad.sh) and returns the binary's path. */
export function ensureNomadBinary(): string {
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: { ...process.env, NOMAD_VERSION, TWISTER2_TEST_CACHE: testCacheDir() },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 90 * 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`scripts/build-nomad.sh failed (${why}):\n${(r.stderr ?? '').split('\n').slice(-40).join('\n')}`);
  }
  const binary = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (!binary || !existsSync(binary)) throw new Error(`scripts/build-nomad.sh printed no binary path (stdout: ${r.stdout})`);
  return binary;
}

// ---------------------------------------------------------------------------------------------------
// Processes

interface ProcStat {
  ppid: number;
  state: string;
  start: string;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', ppid: Number(f[1]), start: f[19] ?? '' };
  } catch {
    return undefined;
  }
}

/** Neither gone nor a zombie. */
function isRunning(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X';
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** Every live descendant of `root` (by PPID), not including root. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const s = procStat(pid);
    if (!s || s.state === 'Z') continue;
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    if (out.includes(p)) continue;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Processes that work in `dir`, name it on their command line, or carry the agent's marker for it. */
function processesUsing(dir: string): number[] {
  const out: number[] = [];
  const marker = `${MARKER_VAR}=${dir}`;
  for (const pid of allPids()) {
    if (pid === process.pid || !isRunning(pid)) continue;
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) {
        out.push(pid);
        continue;
      }
    } catch {
      // Gone, or a kernel thread.
    }
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) {
        out.push(pid);
        continue;
      }
    } catch {
      // Gone.
    }
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(marker)) out.push(pid);
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * SIGKILLs `known` (if still the same processes), their descendants and every process using `dir`, until none is
 * left (at most ~5 s). Synchronous so the exit hook can use it. Never throws.
 */
function killLeftovers(dir: string, known: Map<number, string>): number[] {
  const killed = new Set<number>();
  for (let round = 0; round < 50; round++) {
    const targets = new Set<number>();
    for (const [pid, start] of known) {
      if (isRunning(pid) && procStat(pid)?.start === start) {
        targets.add(pid);
        for (const d of descendants(pid)) targets.add(d);
      }
    }
    for (const p of processesUsing(dir)) {
      targets.add(p);
      for (const d of descendants(p)) targets.add(d);
    }
    targets.delete(process.pid);
    if (targets.size === 0) break;
    for (const p of targets) {
      signal(p, 'SIGKILL');
      killed.add(p);
    }
    sleepSync(100);
  }
  return [...killed];
}

// ---------------------------------------------------------------------------------------------------
// Agent state on disk (for cleaning up after a test process that died without its exit hook)

interface OwnerFile {
  ownerPid: number;
  ownerStart: string;
  agentPid?: number;
  agentStart?: string;
}

function ownerFile(dir: string): string {
  return path.join(dir, 'owner.json');
}

function cleanupDeadOwners(): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(os.tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(os.tmpdir(), e);
    let owner: OwnerFile;
    try {
      owner = JSON.parse(readFileSync(ownerFile(dir), 'utf8')) as OwnerFile;
    } catch {
      continue; // Not (yet) an agent directory, or a log directory.
    }
    if (procStat(owner.ownerPid)?.start === owner.ownerStart) continue;
    const known = new Map<number, string>();
    if (owner.agentPid && owner.agentStart) known.set(owner.agentPid, owner.agentStart);
    killLeftovers(dir, known);
    removeAgentDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------------
// Which user runs the agent

interface RunAs {
  name: string;
  uid?: number;
  gid?: number;
}

/** Decided once per test process by TWISTER2_NOMAD_USER ('root' or a user name) or by trying root first. */
let chosenUser: RunAs | undefined;

function userIds(name: string): RunAs {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error(`no such user for the Nomad agent: ${name}`);
  return { name, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function candidateUsers(): RunAs[] {
  if (chosenUser) return [chosenUser];
  const wanted = process.env.TWISTER2_NOMAD_USER;
  const isRoot = process.getuid?.() === 0;
  if (wanted && wanted !== 'root') return [isRoot ? userIds(wanted) : { name: os.userInfo().username }];
  if (!isRoot) return [{ name: os.userInfo().username }];
  if (wanted === 'root') return [{ name: 'root' }];
  return [{ name: 'root' }, userIds('nobody')];
}

// ---------------------------------------------------------------------------------------------------

const live = new Set<{ stopSync(): void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const a of live) a.stopSync();
  });
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function api<T>(addr: string, p: string): Promise<T> {
  const res = await fetch(`${addr}${p}`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface NodeStub {
  ID: string;
  Name: string;
  Status: string;
  SchedulingEligibility: string;
  Drivers?: Record<string, { Detected: boolean; Healthy: boolean }>;
}

/** Starts a dev-mode agent on free loopback ports and waits until its node is ready, eligible and has raw_exec. */
export async function startNomadAgent(opts: NomadAgentOptions = {}): Promise<NomadAgent> {
  return startAgent(opts);
}

/**
 * A client-only agent joining `server` (a dev-mode agent from startNomadAgent): its own temp directory, ports and
 * node name, the same user, cgroup handling and clean-up. Waits until the server lists its node ready with raw_exec.
 */
export async function startNomadClient(server: NomadAgent, opts: NomadAgentOptions = {}): Promise<NomadAgent> {
  return startAgent(opts, { servers: [`127.0.0.1:${server.ports.rpc}`], serverAddr: server.addr });
}

export interface NomadCluster {
  /** The dev-mode agent's HTTP API (NOMAD_ADDR): the one server, which lists every node. */
  addr: string;
  /** Every agent, the dev-mode one (server and first client) first; one client node each. */
  agents: NomadAgent[];
  /** Stops the client-only agents, then the server; each as NomadAgent.stop(). Idempotent. */
  stop(): Promise<void>;
}

/**
 * A cluster of `1 + clients` client nodes: one dev-mode agent (server and client) and `clients` client-only agents
 * joining it. `each(i)` gives agent i its options (node name, meta, memory). If any agent fails to start, those
 * started are stopped before the error is thrown.
 */
export async function startNomadCluster(clients: number, each: (i: number) => NomadAgentOptions = () => ({})): Promise<NomadCluster> {
  const agents: NomadAgent[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(agents.slice(1).map((a) => a.stop()));
      await agents[0]?.stop();
    })());
  try {
    agents.push(await startNomadAgent(each(0)));
    // One after another: on 2 cores, parallel start-ups only slow each other down.
    for (let i = 1; i <= clients; i++) agents.push(await startNomadClient(agents[0]!, each(i)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { addr: agents[0]!.addr, agents, stop };
}

/** Where a client-only agent registers: the servers' RPC addresses, and the HTTP API that lists its node. */
interface JoinServer {
  servers: string[];
  serverAddr: string;
}

async function startAgent(opts: NomadAgentOptions, join?: JoinServer): Promise<NomadAgent> {
  const binary = ensureNomadBinary();
  installExitHook();
  cleanupDeadOwners();
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'twister2-nomadlog-'));
  const errors: string[] = [];
  for (const user of candidateUsers()) {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const agent = await startOnce(binary, user, logDir, opts, join);
        chosenUser = user;
        return agent;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        errors.push(`as ${user.name}: ${msg}`);
        // A port taken between probing and binding: try other ports. Anything else: try the next user, if any.
        if (!/address already in use/i.test(msg)) break;
      }
    }
  }
  throw new Error(`could not start a Nomad agent:\n${errors.join('\n\n')}`);
}

async function startOnce(binary: string, user: RunAs, logDir: string, opts: NomadAgentOptions, join: JoinServer | undefined): Promise<NomadAgent> {
  const dir = mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  const ports = { http: await freePort(), rpc: await freePort(), serf: await freePort() };
  const addr = `http://127.0.0.1:${ports.http}`;
  const name = opts.name ?? `twister2-test-${ports.http}`;
  const logFile = path.join(logDir, `nomad-${ports.http}-${user.name}.log`);
  const owner: OwnerFile = { ownerPid: process.pid, ownerStart: procStat(process.pid)?.start ?? '' };
  writeFileSync(ownerFile(dir), JSON.stringify(owner));
  const configFile = path.join(dir, 'agent.hcl');
  writeFileSync(configFile, agentConfig({ name, dir, ports, memoryMB: opts.memoryMB, cpuMHz: opts.cpuMHz, meta: opts.meta, hostVolumes: opts.hostVolumes, ...(join ? { servers: join.servers } : {}) }));
  mkdirSync(path.join(dir, 'data'), { mode: 0o755 });
  if (user.uid !== undefined && user.gid !== undefined) {
    chownSync(dir, user.uid, user.gid);
    chownSync(path.join(dir, 'data'), user.uid, user.gid);
  }

  const fd = openSync(logFile, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_VAR]: dir };
  // The test runner's Nomad settings must not leak into the agent (or, through it, into tasks).
  for (const k of Object.keys(env)) if (k.startsWith('NOMAD_')) delete env[k];
  if (user.uid !== undefined) {
    env.HOME = dir;
    env.USER = user.name;
    env.LOGNAME = user.name;
  }
  const args = ['agent', ...(join ? [] : ['-dev']), `-config=${configFile}`];
  let cmd = binary;
  if (user.uid === undefined && process.getuid?.() === 0) {
    // Hide the cgroup file systems from Nomad (see above). unshare and sh exec in place: the PID is the agent's.
    args.unshift('--mount', '--propagation', 'private', '--', '/bin/sh', '-c', 'umount -l /sys/fs/cgroup 2>/dev/null; exec "$0" "$@"', binary);
    cmd = 'unshare';
  } else if (user.uid !== undefined) {
    // The cache under root's home is not theirs to read.
    const own = path.join(dir, 'nomad');
    copyFileSync(binary, own);
    chmodSync(own, 0o755);
    cmd = own;
  }
  const child: ChildProcess = spawn(cmd, args, {
    cwd: dir,
    stdio: ['ignore', fd, fd],
    env,
    detached: true,
    ...(user.uid !== undefined ? { uid: user.uid, gid: user.gid } : {}),
  });
  closeSync(fd);
  child.on('error', () => undefined);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${binary}`);
  owner.agentPid = pid;
  owner.agentStart = procStat(pid)?.start ?? '';
  writeFileSync(ownerFile(dir), JSON.stringify(owner));

  /** Every process the agent started, with its start time (so a reused PID is never killed). */
  const known = new Map<number, string>([[pid, owner.agentStart]]);
  const remember = () => {
    for (const d of descendants(pid)) {
      const s = procStat(d);
      if (s && !known.has(d)) known.set(d, s.start);
    }
  };
  const exited = () => child.exitCode !== null || child.signalCode !== null;

  const stopSync = () => {
    if (isRunning(pid) && procStat(pid)?.start === owner.agentStart) {
      remember();
      signal(pid, 'SIGKILL');
    }
    killLeftovers(dir, known);
    removeAgentDir(dir);
    live.delete(handle);
  };
  const handle = { stopSync };
  live.add(handle);

  const stopAsync = async () => {
    if (!exited()) {
      remember();
      signal(pid, 'SIGTERM');
      const deadline = Date.now() + 8000;
      while (!exited() && Date.now() < deadline) {
        remember();
        await sleep(100);
      }
      if (!exited()) {
        remember();
        signal(pid, 'SIGKILL');
        const hard = Date.now() + 5000;
        while (!exited() && Date.now() < hard) await sleep(50);
      }
    }
    killLeftovers(dir, known);
    removeAgentDir(dir);
    live.delete(handle);
  };

  try {
    const nodeId = await waitReady(join?.serverAddr ?? addr, name, child, logFile, opts, 120_000);
    remember();
    let stopping: Promise<void> | undefined;
    return { addr, binary, dataDir: dir, logFile, nodeId, nodeName: name, user: user.name, ports, stop: () => (stopping ??= stopAsync()) };
  } catch (err) {
    await stopAsync();
    throw err;
  }
}

/** Waits until the servers at `addr` list node `name` ready, eligible, with raw_exec (and the memory asked for); its ID. */
async function waitReady(addr: string, name: string, child: ChildProcess, logFile: string, opts: NomadAgentOptions, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nomad agent exited (${child.signalCode ?? `code ${child.exitCode}`}) before it was ready; ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const leader = await api<string>(addr, '/v1/status/leader');
      const nodes = leader ? await api<NodeStub[]>(addr, '/v1/nodes') : [];
      const node = nodes.find((n) => n.Name === name);
      if (!leader) last = 'no leader';
      else if (!node) last = `node ${name} not registered`;
      else if (node.Status !== 'ready' || node.SchedulingEligibility !== 'eligible') last = `node ${node.Status}/${node.SchedulingEligibility}`;
      else if (!node.Drivers?.raw_exec?.Healthy) last = 'raw_exec not healthy';
      else {
        const full = await api<{ NodeResources?: { Memory?: { MemoryMB?: number }; Processors?: { Topology?: { OverrideTotalCompute?: number } } } }>(addr, `/v1/node/${node.ID}`);
        const mem = full.NodeResources?.Memory?.MemoryMB;
        if (opts.memoryMB !== undefined && mem !== Math.floor(opts.memoryMB)) last = `node memory ${mem} MB, want ${opts.memoryMB}`;
        else return node.ID;
      }
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(250);
  }
  throw new Error(`nomad agent at ${addr} not ready within ${ms} ms (${last}); ${logFile}:\n${tail(logFile)}`);
}

/**
 * Removes an agent's directory. Nomad mounts a small tmpfs on each task's secrets/ and private/ directories
 * (as root); an allocation whose clean-up the agent did not finish leaves them mounted, so unmount every
 * mount under the directory first, deepest first.
 */
function removeAgentDir(dir: string): void {
  const prefix = `${dir}/`;
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

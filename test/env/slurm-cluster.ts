import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from './debian.js';
import { createBridge, createNamespace, deleteNetwork, findByName, namespaceInodes, NetnsSlots, tryConnect, type SlotNetwork } from './netns.js';
import { currentOwner, isRunning, parentPid, signal, sleepSync, teardownOnExit, waitExit } from './processes.js';

/**
 * A real Slurm cluster (22.05, Debian's slurm-wlm) on one machine, for integration tests.
 *
 * Each call claims a free slot n (0..254, an atomic mkdir under /run/twister2-slurm-clusters) and gets
 * its own everything: a temp dir with slurm.conf, gres.conf, state, spool, logs and pid files; its own
 * munged (own random key, own socket, named in slurm.conf by AuthInfo=socket=..., so nothing machine-wide
 * is started or needed); its own free SlurmctldPort/SlurmdPort; node names t2n<n>a, t2n<n>b, ... and
 * controller t2n<n>ctl. Two clusters (or a stale one) never collide.
 *
 * - 1 node: slurmd in the root network namespace on 127.0.0.1 (in its own UTS namespace, so `hostname` in a
 *   task prints the node name); slurmctld on 127.0.0.1.
 * - n >= 2 nodes: one network namespace per node (named like the node) on a bridge t2n<n>br with subnet
 *   10.232.n.0/24: bridge .1 (slurmctld listens there, in the root namespace), node i at .(10 + i). Each
 *   slurmd runs as `unshare --uts sh -c "hostname NODE; exec nsenter --net=/run/netns/NODE slurmd -D ..."`
 *   (nsenter, not `ip netns exec`, which remounts /sys). The file system is shared, as with NFS.
 *
 * The client side (sbatch, squeue, scancel, sinfo, scontrol, srun, run from the root namespace) needs only
 * `env` (SLURM_CONF). stop() and a process-exit hook cancel jobs and end every process of the cluster by
 * PID: the daemons from their recorded PIDs, plus slurmstepd and task processes found by the cluster's
 * marker variable in their environment, by membership of the cluster's network namespaces, and as
 * descendants of those; then namespaces, veths, bridge, temp dir and slot go. A later call cleans up what a
 * crashed run left (only when its owner PID is gone).
 */

export interface SlurmNode {
  /** NodeName, also the node's hostname and, for n >= 2 nodes, its network namespace (/run/netns/NAME). */
  name: string;
  /** NodeAddr: 127.0.0.1 (1 node) or 10.232.<slot>.(10 + i). */
  address: string;
  /** Network namespace name, for n >= 2 nodes. */
  namespace?: string;
  /** For n >= 2 nodes, the bridge side of the node's veth: down, it cuts the node off silently (setLink). */
  link?: string;
  features: string[];
  gpus: number;
  cpus: number;
  memoryMB: number;
}

export interface SlurmCluster {
  /** Environment for sbatch/squeue/scancel/sinfo/scontrol/srun: SLURM_CONF (merge into process.env). */
  env: Record<string, string>;
  confFile: string;
  /** The cluster's temp dir (slurm.conf, state/, spool/, log/, run/, munge/). */
  dir: string;
  /** Daemon logs: slurmctld.log, slurmd-<node>.log, munged.log, *.out (daemon stdout/stderr). */
  logDir: string;
  clusterName: string;
  nodes: SlurmNode[];
  /** Where tasks on the nodes reach the login (root namespace) side: 127.0.0.1, or the bridge address. */
  controllerAddress: string;
  /** debug (default) and batch; both contain all nodes. */
  partitions: string[];
  defaultPartition: string;
  totalCpus: number;
  slot: number;
  /** 10.232.<slot>.0/24 for n >= 2 nodes. */
  subnet?: string;
  /** Runs a Slurm client command (sbatch, squeue, ...) against this cluster. */
  run(cmd: string, args: string[], opts?: { timeoutMs?: number; input?: string; env?: Record<string, string> }): { code: number; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export interface SlurmClusterOptions {
  /** Number of nodes (1 runs on loopback; 2..26 each in a network namespace). */
  nodes: number;
  /** CPUs each node claims (SlurmdParameters=config_overrides lets this exceed the hardware). Default 4. */
  cpusPerNode?: number;
  /** RealMemory per node in MB (memory is a consumable resource: CR_Core_Memory). Default 4000. */
  memoryMB?: number;
  /** gpu GRES per node (fake devices). Default 2; 0 for none. */
  gpusPerNode?: number;
  /**
   * EnforcePartLimits=ALL: sbatch rejects at submission a job no partition can ever hold (e.g. -n 100).
   * Default false (Slurm's default NO): such a job is accepted and stays PENDING (Reason=PartitionConfig).
   */
  enforcePartLimits?: boolean;
  /** MinJobAge: how long squeue -t all / scontrol still show a finished job. Default 600 s (minimum 2). */
  minJobAgeSec?: number;
}

const STATE_ROOT = '/run/twister2-slurm-clusters';
const SECOND_OCTET = 232;
const MARKER_VAR = 'TWISTER2_SLURM_CLUSTER';
/**
 * libpmix-dev for Slurm's mpi/pmix plugin (`srun --mpi=pmix`): the plugin dlopens the unversioned
 * /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so, which only the -dev package installs (the runtime,
 * libpmix2, has libpmix.so.2 alone); without it `srun --mpi=list` still lists pmix but every step fails.
 */
export const SLURM_PACKAGES = ['slurm-wlm', 'munge', 'iproute2', 'util-linux', 'libpmix-dev'];

/** Installs slurm-wlm and munge if missing (call at module level: apt can take a minute on a new machine). */
export function ensureSlurm(): void {
  ensureDebianPackages(SLURM_PACKAGES);
}

interface SlotState extends SlotNetwork {
  tempDir: string;
  mungedPid?: number;
  /** slurmctld and slurmd PIDs. */
  daemonPids: number[];
}

const slots = new NetnsSlots<SlotState>(STATE_ROOT, SECOND_OCTET);

export async function startSlurmCluster(opts: SlurmClusterOptions): Promise<SlurmCluster> {
  const count = opts.nodes;
  if (!Number.isInteger(count) || count < 1 || count > 26) throw new Error(`startSlurmCluster: nodes must be 1..26, got ${count}`);
  const cpus = opts.cpusPerNode ?? 4;
  const memoryMB = opts.memoryMB ?? 4000;
  const gpus = opts.gpusPerNode ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 256) throw new Error(`startSlurmCluster: cpusPerNode must be 1..256, got ${cpus}`);
  if (!Number.isInteger(memoryMB) || memoryMB < 100) throw new Error(`startSlurmCluster: memoryMB must be >= 100, got ${memoryMB}`);
  if (!Number.isInteger(gpus) || gpus < 0 || gpus > 8) throw new Error(`startSlurmCluster: gpusPerNode must be 0..8, got ${gpus}`);
  ensureSlurm();

  const slot = claimSlot();
  const tag = `t2n${slot}`;
  const multi = count > 1;
  const base = slots.base(slot);
  const state: SlotState = {
    ...currentOwner(),
    tempDir: mkdtempSync(path.join(os.tmpdir(), `twister2-slurm-${tag}-`)),
    veths: [],
    namespaces: [],
    daemonPids: [],
  };
  const save = () => slots.write(slot, state);
  save();

  const children: ChildProcess[] = [];
  const cleanup = teardownOnExit(() => teardown(state, slot));

  try {
    const dir = state.tempDir;
    // Daemons running as root don't need more, but munged insists on a traversable socket path.
    chmodSync(dir, 0o755);
    const logDir = path.join(dir, 'log');
    const runDir = path.join(dir, 'run');
    const mungeDir = path.join(dir, 'munge');
    for (const d of [logDir, runDir, path.join(dir, 'state'), path.join(dir, 'spool'), path.join(dir, 'dev')]) mkdirSync(d, { recursive: true });
    mkdirSync(mungeDir, { mode: 0o755 });
    const confFile = path.join(dir, 'slurm.conf');
    const clusterName = tag;
    const ctlName = `${tag}ctl`;
    const controllerAddress = multi ? `${base}.1` : '127.0.0.1';

    const nodes: SlurmNode[] = [];
    for (let i = 0; i < count; i++) {
      const name = `${tag}${String.fromCharCode(97 + i)}`;
      nodes.push({
        name,
        address: multi ? `${base}.${10 + i}` : '127.0.0.1',
        ...(multi ? { namespace: name } : {}),
        features: i === 0 ? ['fast', 'first'] : ['fast'],
        gpus,
        cpus,
        memoryMB,
      });
      mkdirSync(path.join(dir, 'spool', name), { recursive: true });
      mkdirSync(path.join(dir, 'tmp', name), { recursive: true });
    }

    // Network: bridge + one namespace per node.
    if (multi) {
      state.bridge = `${tag}br`;
      save();
      createBridge(state.bridge, controllerAddress);
      for (const [i, node] of nodes.entries()) {
        const ns = node.name;
        const veth = `${tag}v${String.fromCharCode(97 + i)}`;
        node.link = veth;
        createNamespace({
          ns,
          veth,
          bridge: state.bridge,
          address: node.address,
          record: () => {
            state.namespaces.push(ns);
            state.veths.push(veth);
            save();
          },
        });
      }
    }

    // Fake GPU devices: gres/gpu drops File-less GPUs and wants character devices (these are /dev/null's).
    // With them Slurm binds --gpus-per-task per task: each task gets its own CUDA_VISIBLE_DEVICES and SLURM_STEP_GPUS.
    const gresLines: string[] = [];
    if (gpus > 0) {
      for (let g = 0; g < gpus; g++) spawnSync('mknod', [path.join(dir, 'dev', `gpu${g}`), 'c', '1', '3'], { stdio: 'ignore' });
      const files = gpus === 1 ? `${dir}/dev/gpu0` : `${dir}/dev/gpu[0-${gpus - 1}]`;
      for (const n of nodes) gresLines.push(`NodeName=${n.name} Name=gpu File=${files}`);
    }
    writeFileSync(path.join(dir, 'gres.conf'), gresLines.join('\n') + '\n');

    // Own munged with its own key and socket.
    const mungeSocket = path.join(mungeDir, 'munge.socket');
    const keyFile = path.join(dir, 'munge.key');
    writeFileSync(keyFile, randomBytes(1024), { mode: 0o600 });
    const daemonEnv: NodeJS.ProcessEnv = { ...cleanEnv(), SLURM_CONF: confFile, [MARKER_VAR]: dir };
    const startDaemon = (label: string, cmd: string, args: string[], munge = false): { child: ChildProcess; out: string } => {
      const out = path.join(logDir, `${label}.out`);
      const fd = openSync(out, 'a');
      try {
        const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env: daemonEnv });
        child.on('error', () => {});
        child.unref();
        if (child.pid === undefined) throw new Error(`could not start ${label} (${cmd})`);
        children.push(child);
        if (munge) state.mungedPid = child.pid;
        else state.daemonPids.push(child.pid);
        save();
        return { child, out };
      } finally {
        closeSync(fd);
      }
    };
    const munged = startDaemon('munged', 'munged', [
      '--foreground',
      '--force',
      `--socket=${mungeSocket}`,
      `--key-file=${keyFile}`,
      `--pid-file=${path.join(runDir, 'munged.pid')}`,
      `--seed-file=${path.join(runDir, 'munged.seed')}`,
      `--log-file=${path.join(logDir, 'munged.log')}`,
    ], true);
    await waitFor(() => existsSync(mungeSocket), 10_000, munged, 'munged');

    const [ctlPort, slurmdPort] = await freePorts(2);
    writeFileSync(
      confFile,
      slurmConf({
        clusterName,
        ctlName,
        controllerAddress,
        ctlPort: ctlPort!,
        slurmdPort: slurmdPort!,
        dir,
        mungeSocket,
        nodes,
        gpus,
        slot,
        enforcePartLimits: opts.enforcePartLimits ?? false,
        minJobAge: Math.max(2, opts.minJobAgeSec ?? 600),
      }),
    );

    const ctl = startDaemon('slurmctld', 'unshare', ['--uts', 'sh', '-c', `hostname ${ctlName} && exec slurmctld -D -f ${confFile}`]);
    await waitForTcp(controllerAddress, ctlPort!, 30_000, ctl);

    const slurmds = nodes.map((n) => {
      const slurmd = `slurmd -D -N ${n.name} -f ${confFile}`;
      const inner = multi ? `exec nsenter --net=/run/netns/${n.namespace} ${slurmd}` : `exec ${slurmd}`;
      return startDaemon(`slurmd-${n.name}`, 'unshare', ['--uts', 'sh', '-c', `hostname ${n.name} && ${inner}`]);
    });

    const env = { SLURM_CONF: confFile };
    const runCmd: SlurmCluster['run'] = (cmd, args, o = {}) => {
      const r = spawnSync(cmd, args, {
        encoding: 'utf8',
        timeout: o.timeoutMs ?? 60_000,
        input: o.input,
        env: { ...process.env, ...env, ...(o.env ?? {}) },
      });
      return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
    };

    // All nodes idle (registered). slurmd registers within a second once slurmctld listens.
    const deadline = Date.now() + 30_000;
    let last = '';
    while (true) {
      for (const s of [ctl, ...slurmds]) {
        if (s.child.exitCode !== null || s.child.signalCode !== null) throw new Error(`${path.basename(s.out)} exited: ${tail(s.out)}`);
      }
      const r = runCmd('sinfo', ['-h', '-N', '-p', 'debug', '-o', '%N %t'], { timeoutMs: 10_000 });
      last = r.stdout + r.stderr;
      const states = new Map(r.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
      if (nodes.every((n) => states.get(n.name) === 'idle')) break;
      if (Date.now() > deadline) throw new Error(`Slurm nodes not idle within 30 s: ${last.trim()}\n${slurmds.map((s) => tail(s.out)).join('\n')}`);
      await sleep(200);
    }

    let stopping: Promise<void> | undefined;
    return {
      env,
      confFile,
      dir,
      logDir,
      clusterName,
      nodes,
      controllerAddress,
      partitions: ['debug', 'batch'],
      defaultPartition: 'debug',
      totalCpus: cpus * count,
      slot,
      ...(multi ? { subnet: `${base}.0/24` } : {}),
      run: runCmd,
      stop() {
        stopping ??= (async () => {
          if (!cleanup.stopped) {
            // Cancel what is left and give slurmstepd a moment to end its tasks the normal way.
            const q = runCmd('squeue', ['-h', '-o', '%i'], { timeoutMs: 10_000 });
            const ids = q.stdout.split(/\s+/).filter(Boolean);
            if (ids.length > 0) {
              runCmd('scancel', ids, { timeoutMs: 10_000 });
              // Tasks that ignore SIGTERM get SIGKILL after KillWait; don't wait for that, teardown kills them.
              const until = Date.now() + 3_000;
              while (Date.now() < until) {
                const left = runCmd('squeue', ['-h', '-o', '%i'], { timeoutMs: 10_000 }).stdout.trim();
                // A job leaves squeue once its steps have ended (COMPLETING is over).
                if (left === '') break;
                await sleep(200);
              }
            }
          }
          cleanup.stop();
          await Promise.all(children.map((c) => waitExit(c, 3000)));
        })();
        return stopping;
      },
    };
  } catch (err) {
    cleanup.stop();
    throw err;
  }
}

function slurmConf(o: {
  clusterName: string;
  ctlName: string;
  controllerAddress: string;
  ctlPort: number;
  slurmdPort: number;
  dir: string;
  mungeSocket: string;
  nodes: SlurmNode[];
  gpus: number;
  slot: number;
  enforcePartLimits: boolean;
  minJobAge: number;
}): string {
  const d = o.dir;
  const lines = [
    `# twister2 test cluster ${o.clusterName} (test/env/slurm-cluster.ts)`,
    `ClusterName=${o.clusterName}`,
    `SlurmctldHost=${o.ctlName}(${o.controllerAddress})`,
    `SlurmctldPort=${o.ctlPort}`,
    `SlurmdPort=${o.slurmdPort}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${o.mungeSocket}`,
    `StateSaveLocation=${d}/state`,
    `SlurmdSpoolDir=${d}/spool/%n`,
    // The nodes share this machine's /tmp, where Slurm's PMIx plugin makes each step's client directory
    // (spmix_appdir_<uid>_<job>.<step>) by default: the second node of an `srun --mpi=pmix` step finds it
    // made by the first and fails the step ("File exists"). A TmpFS per node (%n) keeps them apart, as
    // each node's own /tmp would on a real cluster.
    `TmpFS=${d}/tmp/%n`,
    `SlurmctldPidFile=${d}/run/slurmctld.pid`,
    `SlurmdPidFile=${d}/run/slurmd-%n.pid`,
    `SlurmctldLogFile=${d}/log/slurmctld.log`,
    `SlurmdLogFile=${d}/log/slurmd-%n.log`,
    'SlurmctldDebug=info',
    'SlurmdDebug=info',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SwitchType=switch/none',
    'MpiDefault=none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core_Memory',
    'SlurmdParameters=config_overrides',
    'ReturnToService=2',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'MailProg=/bin/true',
    `EnforcePartLimits=${o.enforcePartLimits ? 'ALL' : 'NO'}`,
    // Distinct job ids per cluster, so a query sent to the wrong cluster can't match by accident.
    `FirstJobId=${(o.slot + 1) * 1000 + 1}`,
    // Finished jobs stay visible to squeue -t all / scontrol for this long (default 10 minutes).
    `MinJobAge=${o.minJobAge}`,
    'KillWait=2',
    'UnkillableStepTimeout=10',
    'InactiveLimit=0',
    'MessageTimeout=10',
    'SlurmdTimeout=60',
    'SchedulerType=sched/backfill',
    'SchedulerParameters=sched_interval=1,bf_interval=1,sched_min_interval=0',
    `DefMemPerCPU=${Math.max(1, Math.floor(o.nodes[0]!.memoryMB / o.nodes[0]!.cpus))}`,
    o.gpus > 0 ? 'GresTypes=gpu' : '',
  ];
  for (const n of o.nodes) {
    lines.push(
      `NodeName=${n.name} NodeHostname=${n.name} NodeAddr=${n.address} CPUs=${n.cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket=${n.cpus} ThreadsPerCore=1` +
        ` RealMemory=${n.memoryMB} Features=${n.features.join(',')}${n.gpus > 0 ? ` Gres=gpu:${n.gpus}` : ''} State=UNKNOWN`,
    );
  }
  lines.push('PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP');
  lines.push('PartitionName=batch Nodes=ALL Default=NO MaxTime=INFINITE State=UP');
  return lines.filter(Boolean).join('\n') + '\n';
}

/** The test process's environment without Slurm job variables (a test run inside a Slurm job). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLURM_') && !k.startsWith('SBATCH_') && !k.startsWith('SRUN_')) env[k] = v;
  return env;
}

// ---------------------------------------------------------------------------------------------------

function claimSlot(): number {
  return slots.claim({
    tag: (slot) => `t2n${slot}`,
    teardown,
    removeLeftovers: removeByName,
    noneFree: `no free slot for a Slurm test cluster (see ${STATE_ROOT})`,
  });
}

/** Removes namespaces t2n<slot>[a-z], veths t2n<slot>v[a-z] and the bridge t2n<slot>br of a crashed run. */
function removeByName(tag: string): void {
  const { namespaces, links } = findByName(new RegExp(`^${tag}[a-z]$`), new RegExp(`^${tag}v[a-z]$`));
  const state: SlotState = { ownerPid: 0, ownerStart: '', tempDir: '', veths: links, namespaces, daemonPids: [], bridge: `${tag}br` };
  killAll(findClusterProcesses(state, []));
  deleteNetwork(state);
}


/**
 * Every live process of a cluster: its daemons (recorded PIDs whose command line still names the temp
 * dir), processes carrying the cluster's marker variable (slurmstepd inherits slurmd's environment),
 * processes in its network namespaces, and all descendants of these (tasks, slurmctld's slurmscriptd).
 */
function findClusterProcesses(state: SlotState, exclude: number[]): number[] {
  const marker = state.tempDir ? `${MARKER_VAR}=${state.tempDir}\0` : undefined;
  const nsInodes = namespaceInodes(state.namespaces ?? []);
  const roots = new Set<number>();
  for (const p of [...(state.daemonPids ?? []), ...(state.mungedPid ? [state.mungedPid] : [])]) {
    try {
      if (state.tempDir && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(state.tempDir)) roots.add(p);
    } catch {
      /* gone */
    }
  }
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const ppid = parentPid(pid);
    if (ppid !== undefined) parents.set(pid, ppid);
    try {
      if (nsInodes.size > 0 && nsInodes.has(statSync(`/proc/${pid}/ns/net`).ino)) roots.add(pid);
      else if (marker && readFileSync(`/proc/${pid}/environ`, 'utf8').includes(marker)) roots.add(pid);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  // Descendants, to a fixed point.
  const all = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!all.has(pid) && all.has(ppid)) {
        all.add(pid);
        grew = true;
      }
    }
  }
  for (const p of exclude) all.delete(p);
  all.delete(process.pid);
  return [...all].filter(isRunning);
}

function killAll(pids: number[]): void {
  for (const p of pids) signal(p, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && pids.some(isRunning)) sleepSync(20);
  for (const p of pids) if (isRunning(p)) signal(p, 'SIGKILL');
}

/** Removes everything a slot recorded. Synchronous so it can run from an exit hook. Never throws. */
function teardown(state: SlotState, slot: number): void {
  try {
    // slurmd and slurmctld first (SIGTERM, then SIGKILL), then whatever is left: slurmstepd keeps running
    // when slurmd stops, and tasks outlive a killed slurmstepd. munged last, so the daemons can shut down.
    const munged = state.mungedPid ? [state.mungedPid] : [];
    const daemons = findClusterProcesses({ ...state, namespaces: [] }, munged).filter((p) => (state.daemonPids ?? []).includes(p));
    killAll(daemons);
    for (let round = 0; round < 3; round++) {
      const left = findClusterProcesses(state, munged);
      if (left.length === 0) break;
      for (const p of left) signal(p, 'SIGKILL');
      const until = Date.now() + 1000;
      while (Date.now() < until && left.some(isRunning)) sleepSync(20);
    }
    killAll(findClusterProcesses(state, []));
  } catch {
    /* best effort */
  }
  deleteNetwork(state);
  if (state.tempDir && state.tempDir.startsWith(path.join(os.tmpdir(), 'twister2-slurm-'))) rmSync(state.tempDir, { recursive: true, force: true });
  slots.release(slot);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Ports free on all addresses (slurmctld and slurmd bind the wildcard address). */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '0.0.0.0', () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, d: { child: ChildProcess; out: string }, label: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`${label} exited: ${tail(d.out)}`);
    if (Date.now() > deadline) throw new Error(`${label} not ready within ${timeoutMs} ms: ${tail(d.out)}`);
    await sleep(50);
  }
}

async function waitForTcp(host: string, port: number, timeoutMs: number, d: { child: ChildProcess; out: string }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`slurmctld exited: ${tail(d.out)}`);
    if (await tryConnect(host, port, 1000)) return;
    if (Date.now() > deadline) throw new Error(`slurmctld did not listen on ${host}:${port} within ${timeoutMs} ms: ${tail(d.out)}`);
    await sleep(50);
  }
}


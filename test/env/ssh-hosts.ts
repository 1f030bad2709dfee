import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from './debian.js';

/**
 * Several SSH "hosts" on one machine: one network namespace per host, joined by a bridge in the root
 * namespace, each running its own sshd bound only to the namespace's address. The file system is shared
 * with the root namespace (as on a cluster with NFS), so a file copied to a host is also visible locally.
 *
 * Every call claims a free slot n (0..254) and uses the subnet 10.231.n.0/24: the bridge gets .1, host i
 * gets .(10 + i). A slot is claimed with an atomic mkdir under /run/twister2-ssh-hosts and records the
 * owner's PID, the interface and namespace names and the sshd PIDs, so a later call can clean up what a
 * crashed run left behind (only when that owner is gone) and two suites running at once never share a
 * subnet. stop() and a process-exit hook remove everything: sshd processes (by PID), namespaces, veths,
 * bridge, temp files and the slot.
 */

export interface SshHost {
  /** The network namespace name; also what exec() takes. */
  name: string;
  address: string;
  port: number;
  user: string;
}

export interface SshHosts {
  hosts: SshHost[];
  /** Private key (ed25519) whose public half is in every host's authorized keys. */
  keyFile: string;
  /** known_hosts file with each host's key, for strict host-key checking. */
  knownHostsFile?: string;
  /** The /24 these hosts live in, e.g. 10.231.3.0/24. */
  subnet: string;
  /** An address in the subnet that no host has (for "unreachable" tests). */
  unusedAddress: string;
  stop(): Promise<void>;
  /** Runs `cmd` on a host over ssh (as root). Arguments are shell-quoted for the remote shell. */
  exec(hostName: string, cmd: string[]): { code: number; stdout: string; stderr: string };
}

const STATE_ROOT = '/run/twister2-ssh-hosts';
const SECOND_OCTET = 231;
const MAX_SLOTS = 255;
const SSHD = '/usr/sbin/sshd';

interface SlotState {
  ownerPid: number;
  ownerStart: string;
  bridge: string;
  veths: string[];
  namespaces: string[];
  sshdPids: number[];
  pidFiles: string[];
  tempDir: string;
}

export async function startSshHosts(count: number, opts: { prefix?: string } = {}): Promise<SshHosts> {
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error(`startSshHosts: count must be 1..50, got ${count}`);
  const prefix = opts.prefix ?? 't2s';
  // Interface names are limited to 15 characters: prefix (≤6) + slot (≤3) + 'v' + index (≤2).
  if (!/^[a-z][a-z0-9]{0,5}$/.test(prefix)) throw new Error(`startSshHosts: prefix must match [a-z][a-z0-9]{0,5}, got '${prefix}'`);
  ensureDebianPackages(['openssh-server', 'iproute2']);

  const slot = claimSlot(prefix);
  const base = `10.${SECOND_OCTET}.${slot}`;
  const tag = `${prefix}${slot}`;
  const state: SlotState = {
    ownerPid: process.pid,
    ownerStart: processStart(process.pid) ?? '',
    bridge: `${tag}br`,
    veths: [],
    namespaces: [],
    sshdPids: [],
    pidFiles: [],
    tempDir: mkdtempSync(path.join(os.tmpdir(), `twister2-ssh-hosts-${tag}-`)),
  };
  const save = () => writeFileSync(slotStateFile(slot), JSON.stringify(state));
  save();

  const children: ChildProcess[] = [];
  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    teardown(state, slot);
  };
  const onExit = () => stopSync();
  const onSignal = (sig: NodeJS.Signals) => {
    stopSync();
    // Re-raise with the default action when nobody else handles the signal.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  process.on('exit', onExit);
  for (const s of signals) process.once(s, onSignal);
  const unhook = () => {
    process.off('exit', onExit);
    for (const s of signals) process.off(s, onSignal);
  };

  try {
    const dir = state.tempDir;
    // Leftovers with our names (from a crashed run whose state file is gone) would make `ip` fail.
    removeLinkIfExists(state.bridge);
    ip(['link', 'add', state.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${base}.1/24`, 'dev', state.bridge]);
    ip(['link', 'set', state.bridge, 'up']);

    const keyFile = path.join(dir, 'id_ed25519');
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `twister2-test-${tag}`, '-f', keyFile]);
    const authorizedKeys = path.join(dir, 'authorized_keys');
    writeFileSync(authorizedKeys, readFileSync(`${keyFile}.pub`, 'utf8'), { mode: 0o600 });
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

    const hosts: SshHost[] = [];
    const knownHosts: string[] = [];
    for (let i = 1; i <= count; i++) {
      const ns = `${tag}h${i}`;
      const veth = `${tag}v${i}`;
      const address = `${base}.${10 + i}`;
      if (existsSync(`/run/netns/${ns}`)) ip(['netns', 'del', ns]);
      removeLinkIfExists(veth);
      state.namespaces.push(ns);
      state.veths.push(veth);
      save();
      ip(['netns', 'add', ns]);
      ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['link', 'set', veth, 'master', state.bridge, 'up']);
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);

      const hostKey = path.join(dir, `host_${i}_ed25519`);
      run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', ns, '-f', hostKey]);
      const [type, blob] = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
      knownHosts.push(`${address} ${type} ${blob}`);
      const pidFile = path.join(dir, `sshd_${i}.pid`);
      state.pidFiles.push(pidFile);
      // nsenter execs sshd in place, so the child's PID is sshd's.
      const child = spawn(
        'nsenter',
        [
          `--net=/run/netns/${ns}`,
          SSHD,
          '-D',
          '-e',
          '-f',
          '/dev/null',
          '-o',
          'Port=22',
          '-o',
          `ListenAddress=${address}`,
          '-o',
          `HostKey=${hostKey}`,
          '-o',
          `PidFile=${pidFile}`,
          '-o',
          `AuthorizedKeysFile=${authorizedKeys}`,
          '-o',
          'PermitRootLogin=prohibit-password',
          '-o',
          'PasswordAuthentication=no',
          '-o',
          'KbdInteractiveAuthentication=no',
          '-o',
          'UsePAM=no',
          '-o',
          'StrictModes=no',
          '-o',
          'Subsystem=sftp internal-sftp',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      children.push(child);
      // stop() and the exit hook own its lifetime; it must not keep the test process alive.
      child.unref();
      (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => {
        if (stderr.length < 20_000) stderr += d;
      });
      if (child.pid === undefined) throw new Error(`could not start sshd for ${ns}`);
      state.sshdPids.push(child.pid);
      save();
      await waitForTcp(address, 22, 15_000, child, () => stderr);
      hosts.push({ name: ns, address, port: 22, user: 'root' });
    }
    const knownHostsFile = path.join(dir, 'known_hosts');
    writeFileSync(knownHostsFile, knownHosts.join('\n') + '\n');

    let stopping: Promise<void> | undefined;
    return {
      hosts,
      keyFile,
      knownHostsFile,
      subnet: `${base}.0/24`,
      unusedAddress: `${base}.250`,
      stop() {
        stopping ??= (async () => {
          stopSync();
          unhook();
          // Let Node reap the killed sshd processes so no zombies remain.
          await Promise.all(children.map((c) => waitExit(c, 3000)));
        })();
        return stopping;
      },
      exec(hostName, cmd) {
        const host = hosts.find((h) => h.name === hostName);
        if (!host) throw new Error(`no such test host: ${hostName}`);
        const r = spawnSync(
          'ssh',
          [
            '-i',
            keyFile,
            '-o',
            'StrictHostKeyChecking=no',
            '-o',
            'UserKnownHostsFile=/dev/null',
            '-o',
            'BatchMode=yes',
            '-o',
            'LogLevel=ERROR',
            '-o',
            'ConnectTimeout=5',
            '-p',
            String(host.port),
            `${host.user}@${host.address}`,
            '--',
            cmd.map(shellQuote).join(' '),
          ],
          { encoding: 'utf8', timeout: 60_000 },
        );
        return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
      },
    };
  } catch (err) {
    stopSync();
    unhook();
    throw err;
  }
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------------

function slotDir(slot: number): string {
  return path.join(STATE_ROOT, String(slot));
}
function slotStateFile(slot: number): string {
  return path.join(slotDir(slot), 'state.json');
}

/** Claims the first free slot whose subnet is not used on this machine, cleaning up dead owners' leftovers. */
function claimSlot(prefix: string): number {
  mkdirSync(STATE_ROOT, { recursive: true });
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const dir = slotDir(slot);
    if (existsSync(dir)) {
      const prev = readState(slot);
      // A directory without a state file may be another process between mkdir and its first write.
      if (!prev) {
        if (ageMs(dir) < 60_000) continue;
      } else if (isAlive(prev.ownerPid, prev.ownerStart)) {
        continue;
      } else {
        teardown(prev, slot);
      }
      rmSync(dir, { recursive: true, force: true });
    }
    const base = `10.${SECOND_OCTET}.${slot}.`;
    // Leftovers with this call's names but no state (the slot directory is gone): remove them by name.
    const tag = `${prefix}${slot}`;
    const addrs = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
    if (addrs.split('\n').some((l) => l.includes(` ${base}`) && l.split(/\s+/)[1] === `${tag}br`)) removeByName(tag);
    // Only a subnet nobody else uses: not on any interface, not in any route.
    const usedAddrs = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
    const routes = spawnSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' }).stdout ?? '';
    if (usedAddrs.includes(` ${base}`) || routes.includes(base)) continue;
    try {
      mkdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    return slot;
  }
  throw new Error(`no free 10.${SECOND_OCTET}.x.0/24 subnet for test hosts (see ${STATE_ROOT})`);
}

/** Removes namespaces `<tag>h<i>`, veths `<tag>v<i>` and the bridge `<tag>br` of a crashed run. */
function removeByName(tag: string): void {
  const nsList = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const namespaces = nsList
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => new RegExp(`^${tag}h\\d+$`).test(n));
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map((l) => (l.split(':')[1] ?? '').trim().split('@')[0] ?? '')
    .filter((n) => new RegExp(`^${tag}v\\d+$`).test(n));
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  for (const l of links) removeLinkIfExists(l);
  removeLinkIfExists(`${tag}br`);
}

function readState(slot: number): SlotState | undefined {
  try {
    return JSON.parse(readFileSync(slotStateFile(slot), 'utf8')) as SlotState;
  } catch {
    return undefined;
  }
}

function ageMs(file: string): number {
  const r = spawnSync('stat', ['-c', '%Y', file], { encoding: 'utf8' });
  const t = Number(r.stdout.trim());
  return Number.isFinite(t) ? Date.now() - t * 1000 : Infinity;
}

/** Start time of a process (field 22 of /proc/PID/stat), to tell a live owner from a reused PID. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Running, i.e. neither gone nor a zombie waiting for its parent (us, while we block) to reap it. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

function isAlive(pid: number, start: string): boolean {
  const now = processStart(pid);
  return now !== undefined && (start === '' || now === start);
}

/** Removes everything a slot recorded. Synchronous so it can run from an exit hook. Never throws. */
function teardown(state: SlotState, slot: number): void {
  const pids = new Set(state.sshdPids);
  for (const f of state.pidFiles ?? []) {
    // sshd -D may write its own pid file; it names the same process, but be thorough.
    try {
      const p = Number(readFileSync(f, 'utf8').trim());
      if (Number.isInteger(p) && p > 1) pids.add(p);
    } catch {
      /* not written */
    }
  }
  const live = [...pids].filter((p) => isOurSshd(p, state));
  // Also every process still inside our namespaces: per-connection sshd sessions outlive the listener,
  // and once the namespace is gone their peers can never close them. These namespaces are ours alone.
  for (const p of processesInNamespaces(state.namespaces ?? [])) if (!live.includes(p)) live.push(p);
  for (const p of live) signal(p, 'SIGTERM');
  const deadline = Date.now() + 3000;
  for (let i = 0; i < 300 && Date.now() < deadline && live.some(isRunning); i++) sleepSync(10);
  for (const p of live) if (isRunning(p)) signal(p, 'SIGKILL');
  for (const ns of state.namespaces ?? []) {
    if (existsSync(`/run/netns/${ns}`)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  for (const v of state.veths ?? []) removeLinkIfExists(v);
  if (state.bridge) removeLinkIfExists(state.bridge);
  if (state.tempDir && state.tempDir.startsWith(os.tmpdir())) rmSync(state.tempDir, { recursive: true, force: true });
  rmSync(slotDir(slot), { recursive: true, force: true });
}

/** PIDs whose network namespace is one of `namespaces` (compared by nsfs inode). */
function processesInNamespaces(namespaces: string[]): number[] {
  const inodes = new Set<number>();
  for (const ns of namespaces) {
    try {
      inodes.add(statSync(`/run/netns/${ns}`).ino);
    } catch {
      /* already deleted */
    }
  }
  if (inodes.size === 0) return [];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (inodes.has(statSync(`/proc/${entry}/ns/net`).ino) && Number(entry) !== process.pid) out.push(Number(entry));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** Only signal a PID that is still an sshd using this slot's files (PIDs can be reused). */
function isOurSshd(pid: number, state: SlotState): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('sshd') && cmdline.includes(state.tempDir);
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function removeLinkIfExists(name: string): void {
  if (spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0) {
    spawnSync('ip', ['link', 'del', 'dev', name], { stdio: 'ignore' });
  }
}

function ip(args: string[]): void {
  run('ip', args);
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim()}`);
}

async function waitForTcp(host: string, port: number, timeoutMs: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  child.once('exit', (code, sig) => (exited = `exited with ${code ?? sig}`));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`sshd for ${host} ${exited}: ${stderr().trim()}`);
    if (await tryConnect(host, port, 1000)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd for ${host}:${port} did not answer within ${timeoutMs} ms: ${stderr().trim()}`);
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function tryConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

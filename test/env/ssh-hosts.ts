import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from './debian.js';
import { createBridge, createNamespace, deleteNetwork, findByName, NetnsSlots, processesInNamespaces, tryConnect, type SlotNetwork } from './netns.js';
import { currentOwner, isRunning, signal, sleepSync, teardownOnExit, waitExit } from './processes.js';

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
  /** The bridge side of the host's veth: down, it cuts the host off from every other, silently (setLink). */
  link: string;
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
const SSHD = '/usr/sbin/sshd';

interface SlotState extends SlotNetwork {
  bridge: string;
  sshdPids: number[];
  pidFiles: string[];
  tempDir: string;
}

const slots = new NetnsSlots<SlotState>(STATE_ROOT, SECOND_OCTET);

export async function startSshHosts(count: number, opts: { prefix?: string } = {}): Promise<SshHosts> {
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error(`startSshHosts: count must be 1..50, got ${count}`);
  const prefix = opts.prefix ?? 't2s';
  // Interface names are limited to 15 characters: prefix (≤6) + slot (≤3) + 'v' + index (≤2).
  if (!/^[a-z][a-z0-9]{0,5}$/.test(prefix)) throw new Error(`startSshHosts: prefix must match [a-z][a-z0-9]{0,5}, got '${prefix}'`);
  ensureDebianPackages(['openssh-server', 'iproute2']);

  const slot = claimSlot(prefix);
  const base = slots.base(slot);
  const tag = `${prefix}${slot}`;
  const state: SlotState = {
    ...currentOwner(),
    bridge: `${tag}br`,
    veths: [],
    namespaces: [],
    sshdPids: [],
    pidFiles: [],
    tempDir: mkdtempSync(path.join(os.tmpdir(), `twister2-ssh-hosts-${tag}-`)),
  };
  const save = () => slots.write(slot, state);
  save();

  const children: ChildProcess[] = [];
  const cleanup = teardownOnExit(() => teardown(state, slot));

  try {
    const dir = state.tempDir;
    // Leftovers with our names (from a crashed run whose state file is gone) would make `ip` fail.
    createBridge(state.bridge, `${base}.1`);

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
      createNamespace({
        ns,
        veth,
        bridge: state.bridge,
        address,
        record: () => {
          state.namespaces.push(ns);
          state.veths.push(veth);
          save();
        },
      });

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
      hosts.push({ name: ns, address, port: 22, user: 'root', link: veth });
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
          cleanup.stop();
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
    cleanup.stop();
    throw err;
  }
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------------

/** Claims the first free slot whose subnet is not used on this machine, cleaning up dead owners' leftovers. */
function claimSlot(prefix: string): number {
  return slots.claim({
    tag: (slot) => `${prefix}${slot}`,
    teardown,
    removeLeftovers: removeByName,
    noneFree: `no free 10.${SECOND_OCTET}.x.0/24 subnet for test hosts (see ${STATE_ROOT})`,
  });
}

/** Removes namespaces `<tag>h<i>`, veths `<tag>v<i>` and the bridge `<tag>br` of a crashed run. */
function removeByName(tag: string): void {
  const { namespaces, links } = findByName(new RegExp(`^${tag}h\\d+$`), new RegExp(`^${tag}v\\d+$`));
  deleteNetwork({ namespaces, veths: links, bridge: `${tag}br` });
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
  deleteNetwork(state);
  if (state.tempDir && state.tempDir.startsWith(os.tmpdir())) rmSync(state.tempDir, { recursive: true, force: true });
  slots.release(slot);
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


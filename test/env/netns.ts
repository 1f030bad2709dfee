import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isAlive, type Owner } from './processes.js';

/**
 * Network namespaces on a bridge, for test environments that play several hosts on one machine
 * (test/env/ssh-hosts.ts, test/env/slurm-cluster.ts), and the "slots" that keep two of them (or a crashed one's
 * leftovers) from sharing names or a subnet.
 *
 * A slot n (0..254) is claimed with an atomic mkdir of `<root>/<n>` and gets the subnet 10.<octet>.n.0/24; its
 * state.json records the owner (PID and start time) and what it created, so a later claim can remove the
 * leftovers of an owner that is gone.
 */

/** What every slot's state records: the owner and the network it created. */
export interface SlotNetwork extends Owner {
  bridge?: string;
  veths: string[];
  namespaces: string[];
}

const MAX_SLOTS = 255;

export class NetnsSlots<S extends SlotNetwork> {
  /**
   * @param root directory of the slot directories (e.g. /run/twister2-ssh-hosts)
   * @param secondOctet slot n uses 10.<secondOctet>.n.0/24
   */
  constructor(
    readonly root: string,
    readonly secondOctet: number,
  ) {}

  dir(slot: number): string {
    return path.join(this.root, String(slot));
  }

  stateFile(slot: number): string {
    return path.join(this.dir(slot), 'state.json');
  }

  /** "10.<octet>.<slot>", the subnet's first three octets. */
  base(slot: number): string {
    return `10.${this.secondOctet}.${slot}`;
  }

  read(slot: number): S | undefined {
    try {
      return JSON.parse(readFileSync(this.stateFile(slot), 'utf8')) as S;
    } catch {
      return undefined;
    }
  }

  write(slot: number, state: S): void {
    writeFileSync(this.stateFile(slot), JSON.stringify(state));
  }

  release(slot: number): void {
    rmSync(this.dir(slot), { recursive: true, force: true });
  }

  /**
   * Claims the first free slot whose subnet is not used on this machine. A slot whose owner is gone is torn
   * down first (`teardown`, which must release it); leftovers named `tag(slot)` with that subnet but no slot
   * directory (a crashed run whose state is gone) are removed by `removeLeftovers(tag)`.
   */
  claim(o: { tag: (slot: number) => string; teardown: (prev: S, slot: number) => void; removeLeftovers: (tag: string) => void; noneFree: string }): number {
    mkdirSync(this.root, { recursive: true });
    for (let slot = 0; slot < MAX_SLOTS; slot++) {
      const dir = this.dir(slot);
      if (existsSync(dir)) {
        const prev = this.read(slot);
        // A directory without a state file may be another process between mkdir and its first write.
        if (!prev) {
          if (ageMs(dir) < 60_000) continue;
        } else if (isAlive(prev.ownerPid, prev.ownerStart)) {
          continue;
        } else {
          o.teardown(prev, slot);
        }
        rmSync(dir, { recursive: true, force: true });
      }
      const base = `${this.base(slot)}.`;
      // Leftovers of a crashed run whose slot dir is gone: our bridge with our subnet.
      const tag = o.tag(slot);
      const addrs = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
      if (addrs.split('\n').some((l) => l.includes(` ${base}`) && l.split(/\s+/)[1] === `${tag}br`)) o.removeLeftovers(tag);
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
    throw new Error(o.noneFree);
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** Creates `bridge` with `address`/24 (removing a leftover of that name first) and sets it up. */
export function createBridge(bridge: string, address: string): void {
  removeLinkIfExists(bridge);
  ip(['link', 'add', bridge, 'type', 'bridge']);
  ip(['addr', 'add', `${address}/24`, 'dev', bridge]);
  ip(['link', 'set', bridge, 'up']);
}

/**
 * Creates namespace `ns` whose eth0 (`address`/24) is the peer of `veth` on `bridge`, with lo up. Leftovers
 * with these names go first; `record` runs before anything is created, to note the names in the slot's state.
 */
export function createNamespace(o: { ns: string; veth: string; bridge: string; address: string; record: () => void }): void {
  const { ns, veth, bridge, address } = o;
  if (existsSync(`/run/netns/${ns}`)) ip(['netns', 'del', ns]);
  removeLinkIfExists(veth);
  o.record();
  ip(['netns', 'add', ns]);
  ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  ip(['link', 'set', veth, 'master', bridge, 'up']);
  ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Deletes the namespaces, then the veths, then the bridge. Never throws. */
export function deleteNetwork(n: { namespaces?: string[]; veths?: string[]; bridge?: string }): void {
  for (const ns of n.namespaces ?? []) {
    if (existsSync(`/run/netns/${ns}`)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  for (const v of n.veths ?? []) removeLinkIfExists(v);
  if (n.bridge) removeLinkIfExists(n.bridge);
}

/** Existing namespaces and links whose names match (for leftovers whose state is gone). */
export function findByName(namespacePattern: RegExp, linkPattern: RegExp): { namespaces: string[]; links: string[] } {
  const nsList = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const namespaces = nsList
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => namespacePattern.test(n));
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map((l) => (l.split(':')[1] ?? '').trim().split('@')[0] ?? '')
    .filter((n) => linkPattern.test(n));
  return { namespaces, links };
}

/** Inode numbers of the named namespaces (/run/netns/NAME), to compare with /proc/PID/ns/net. */
export function namespaceInodes(namespaces: string[]): Set<number> {
  const inodes = new Set<number>();
  for (const ns of namespaces) {
    try {
      inodes.add(statSync(`/run/netns/${ns}`).ino);
    } catch {
      // Already deleted.
    }
  }
  return inodes;
}

/** PIDs (other than this process) whose network namespace is one of `namespaces`. */
export function processesInNamespaces(namespaces: string[]): number[] {
  const inodes = namespaceInodes(namespaces);
  if (inodes.size === 0) return [];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (inodes.has(statSync(`/proc/${entry}/ns/net`).ino) && Number(entry) !== process.pid) out.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out;
}

export function removeLinkIfExists(name: string): void {
  if (spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0) {
    spawnSync('ip', ['link', 'del', 'dev', name], { stdio: 'ignore' });
  }
}

/**
 * Sets a host's bridge-side veth up or down. Down is a partition as a cut cable or a dead switch port makes
 * it: the host keeps its address and route, and whatever it or anyone sends across is dropped silently (no
 * "unreachable" error), so TCP connections stall and resume on their own once the link is up again.
 */
export function setLink(link: string, up: boolean): void {
  ip(['link', 'set', link, up ? 'up' : 'down']);
}

/** Runs `ip args`, throwing with its stderr when it fails. */
export function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Whether a TCP connection to host:port succeeds within `timeoutMs`. */
export function tryConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
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

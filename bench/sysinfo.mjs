// What the benchmarks read about the machine and the processes (Linux /proc).
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

export const openFds = () => readdirSync('/proc/self/fd').length;

export function fdLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s+/)[3]);
}

/** The kernel's count of connections dropped because a listen queue was full (all processes). */
export function listenOverflows() {
  const [names = '', values = ''] = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const i = names.split(' ').indexOf('ListenOverflows');
  return i < 0 ? NaN : Number(values.split(' ')[i]);
}

export const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(', ');

export function machine() {
  return {
    date: execFileSync('date', ['-u'], { encoding: 'utf8' }).trim(),
    cpus: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    fdLimit: fdLimit(),
    loadavg: loadavg(),
    extraCaCerts: extraCaCerts(),
  };
}

/**
 * NODE_EXTRA_CA_CERTS makes every node process read and parse those certificates at start, floors and
 * workers alike: the report says whether it was set and what it adds to a bare node.
 */
function extraCaCerts() {
  if (!process.env.NODE_EXTRA_CA_CERTS) return 'unset';
  const { NODE_EXTRA_CA_CERTS: _, ...without } = process.env;
  const cpu = (env) => {
    const c0 = childrenCpuMs();
    for (let i = 0; i < 10; i++) spawnSync(process.execPath, ['-e', '0'], { env, stdio: 'ignore' });
    return (childrenCpuMs() - c0) / 10;
  };
  return `set: every node process loads those certificates at start; \`node -e 0\` used ${cpu(process.env).toFixed(0)} ms of CPU with it and ${cpu(without).toFixed(0)} ms without (10 runs each; the floors and the workers of every section pay it alike)`;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system, ms) of this process's children that have ended and been reaped. */
export function childrenCpuMs() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ').at(-1).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK; // cutime, cstime
}

/** CPU time (user + system, ms) of this process so far. */
export function ownCpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

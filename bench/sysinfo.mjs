// What the benchmarks read about the machine and the processes (Linux /proc).
import { execFileSync } from 'node:child_process';
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
  };
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

import { ENV, workDirOf } from '../../job/worker-environment.js';
import { leaseLockOf, memoryDirOf } from '../../job/storage.js';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { isLoopbackHost } from '../../net/loopback.js';
import type { MpiSpec } from './section.js';
import { shellQuote } from '../../shell-quote.js';
import { sshOptions } from './ssh-options.js';

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** This machine: mpirun starts its ranks without ssh, and the launcher checks it without ssh too. */
export function isThisMachine(host: string): boolean {
  return isLoopbackHost(host) || host === os.hostname();
}

/** Runs one remote command (a shell string) with the job's ssh settings. Never rejects. */
export function sshRun(ssh: MpiSpec['ssh'], host: string, command: string, timeoutMs = 30_000): Promise<SshResult> {
  return new Promise((resolve) => {
    const child = spawn('ssh', [...sshOptions(ssh, ['-o', 'ConnectTimeout=5']), host, '--', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${err.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Problems reaching the hosts over ssh (`ssh host true`), one message per host that failed; empty when all answer. */
export async function unreachableHosts(ssh: MpiSpec['ssh'], hosts: string[]): Promise<string[]> {
  const results = await Promise.all(
    hosts.filter((h) => !isThisMachine(h)).map(async (host) => ({ host, r: await sshRun(ssh, host, 'true', 20_000) })),
  );
  return results
    .filter(({ r }) => r.code !== 0)
    .map(({ host, r }) => `mpi host "${host}" is not reachable over ssh (${r.code === null ? 'no answer' : `ssh exit ${r.code}`}): ${r.stderr.trim() || 'no message'}`);
}

/**
 * A shell script that SIGKILLs every process whose environment names the job (ranks, and anything they
 * started) and prints the PIDs it found. The ssh session itself never carries the variable. When it finds
 * none, it removes the job's scratch dir on the host (where the ranks put it: node's os.tmpdir()) and its
 * memory dir (spec storage.memory, in /dev/shm), which the last rank to end removes itself unless it was
 * killed, by the sweep or by a signal it cannot handle.
 */
export function sweepScript(jobId: string): string {
  const needle = shellQuote(`${ENV.jobId}=${jobId}`);
  const scratch = `"\${TMPDIR:-\${TMP:-\${TEMP:-/tmp}}}"/twister2/${shellQuote(jobId)}`;
  const memory = shellQuote(memoryDirOf(jobId));
  const memoryLock = shellQuote(leaseLockOf(memoryDirOf(jobId)));
  return [
    'found=""',
    'for d in /proc/[0-9]*; do',
    '  p=${d#/proc/}',
    '  [ "$p" = "$$" ] && continue',
    `  if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF ${needle}; then found="$found $p"; fi`,
    'done',
    `if [ -n "$found" ]; then kill -KILL $found 2>/dev/null; else rm -rf -- ${scratch} ${scratch}.lease-lock ${memory} ${memoryLock}; fi`,
    'echo $found',
  ].join('\n');
}

/** The same sweep on this machine, without a shell. Returns the PIDs it killed. */
export function sweepLocal(jobId: string): number[] {
  const needle = Buffer.from(`${ENV.jobId}=${jobId}\0`);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`);
      if (environ.subarray(0, needle.length).equals(needle) || environ.includes(Buffer.concat([Buffer.from('\0'), needle]))) found.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  for (const pid of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (found.length === 0) {
    const scratch = workDirOf({ [ENV.jobId]: jobId }).workDir;
    rmSync(scratch, { recursive: true, force: true });
    rmSync(`${scratch}.lease-lock`, { force: true });
    rmSync(memoryDirOf(jobId), { recursive: true, force: true });
    rmSync(leaseLockOf(memoryDirOf(jobId)), { force: true });
  }
  return found;
}

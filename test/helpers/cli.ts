import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = path.join(ROOT, 'bin', 'twister2.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A fresh TWISTER2_HOME, so each test sees only its own jobs. */
export function tempHome(): string {
  return mkdtempSync(path.join(os.tmpdir(), 't2-home-'));
}

export type RunningCli = ChildProcess & { output: () => CliResult; closed: Promise<number | null> };

/** Starts the CLI; `closed` resolves with its exit code (whenever it exits, even before anyone waits). */
export function startCli(args: string[], home: string, env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env, TWISTER2_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return Object.assign(child, { output: () => ({ code: child.exitCode, stdout, stderr }), closed });
}

export async function runCli(args: string[], home: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = startCli(args, home, env);
  const code = await child.closed;
  return { ...child.output(), code };
}

/** True while a process exists and is not a zombie (a container's init may never reap orphans). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Running processes (but this one) whose command line contains `text` (a job directory, a job ID), described:
 * mpirun, orted and ssh name a job there, not in their environment.
 */
export function processesNaming(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(text) && isRunning(Number(entry))) found.push(`process ${entry}: ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      // Gone.
    }
  }
  return found;
}

/** Writes a job directory: a twister2.yaml (given as an object, written as JSON which is valid YAML) and files. */
export function makeJob(spec: unknown, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-job-'));
  if (spec !== undefined) writeFileSync(path.join(dir, 'twister2.yaml'), typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
    if (name.endsWith('.sh')) chmodSync(path.join(dir, name), 0o755);
  }
  return dir;
}

export function fixture(name: string): string {
  return readFileSync(path.join(ROOT, 'test', 'fixtures', name), 'utf8');
}

/**
 * PIDs of every process whose environment names this job, found by reading /proc rather than trusting
 * our own records: grandchildren of workers inherit the variable too.
 */
export function jobProcesses(jobId: string): number[] {
  const needle = Buffer.from(`TWISTER2_JOB_ID=${jobId}\0`);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(needle)) pids.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

export function jobIds(home: string): string[] {
  try {
    return readdirSync(path.join(home, 'jobs'));
  } catch {
    return [];
  }
}

/** Worker output lines of the form `T2TEST {json}` that the test fixtures print. */
export function testRecords<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .map((l) => /T2TEST (\{.*\})$/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined)
    .map((s) => JSON.parse(s) as T);
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The job's scratch work directory under the temp dir (test hosts in namespaces share this file system), if still there. */
export function scratchLeft(jobId: string): string[] {
  const dir = path.join(os.tmpdir(), 'twister2', jobId);
  return existsSync(dir) ? [`scratch dir ${dir}`] : [];
}

export function readLogs(home: string, jobId: string): string {
  const dir = path.join(home, 'jobs', jobId, 'logs');
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return '';
  }
  return names
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

/**
 * SIGKILLs a detached job master for good: first what would restart it (its supervisor, on clusters whose
 * job master recovers from a crash), then the job master itself. Returns the job master's PID.
 */
export function killJobMasterForGood(home: string, jobId: string): number {
  const { jobMaster } = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { pid: number; supervisorPid?: number } };
  if (jobMaster.supervisorPid) process.kill(jobMaster.supervisorPid, 'SIGKILL');
  process.kill(jobMaster.pid, 'SIGKILL');
  return jobMaster.pid;
}

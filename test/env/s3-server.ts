import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages } from './debian.js';
import { endChild, exited } from './processes.js';

/**
 * A real S3-compatible server for the integration tests: moto's S3 server, from PyPI, in a venv cached under
 * `$TWISTER2_TEST_CACHE` (default ~/.cache/twister2-test). The venv is built once; concurrent test processes
 * wait for each other through a lock directory. Each call starts its own server on a free loopback port.
 *
 * The returned credentials belong to an IAM user made at start-up. Like moto's default, the server starts
 * accepting any credentials; `setAuthEnforced(true)` switches on moto's IAM authentication, after which a wrong
 * key or secret gets the same refusal as from AWS. moto checks no presigned URL (with authentication on it even
 * answers them with a 500), so tests that download with one need it off.
 */

/** Pinned: bump deliberately, the venv is rebuilt when it changes. */
export const MOTO_VERSION = '5.2.5';

export interface S3Server {
  /** http://127.0.0.1:PORT; use path-style addressing. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The server's stdout and stderr. */
  logFile: string;
  /** Switches moto's request authentication on (signatures and IAM policies checked) or off (anything goes). */
  setAuthEnforced(on: boolean): Promise<void>;
  /** SIGTERM, then SIGKILL after 3 s. Idempotent. */
  stop(): Promise<void>;
}

export function testCacheDir(): string {
  return process.env.TWISTER2_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'twister2-test');
}

const venvDir = () => path.join(testCacheDir(), 'moto-venv');
const readyMarker = () => path.join(venvDir(), '.twister2-ready');

function venvReady(): boolean {
  try {
    return readFileSync(readyMarker(), 'utf8').trim() === MOTO_VERSION && existsSync(path.join(venvDir(), 'bin', 'moto_server'));
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A python3 with a working `-m venv` (pyenv builds have it; Debian's needs python3-venv). */
function venvCapablePython(): string {
  const works = (py: string) => spawnSync(py, ['-c', 'import venv, ensurepip'], { stdio: 'ignore' }).status === 0;
  if (works('python3')) return 'python3';
  ensureDebianPackages(['python3', 'python3-venv']);
  if (works('/usr/bin/python3')) return '/usr/bin/python3';
  throw new Error('no python3 with a working venv module, even after installing python3-venv');
}

function run(cmd: string, args: string[], log: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(log, 'a');
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
    closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}); see ${log}:\n${tail(log)}`));
    });
  });
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Builds the venv with moto[server] unless it is there. Safe when several processes race: the one that makes
 * the lock directory builds, the others wait for the ready marker; a lock left by a dead process is taken over.
 */
export async function ensureMotoVenv(): Promise<string> {
  if (venvReady()) return venvDir();
  const cache = testCacheDir();
  mkdirSync(cache, { recursive: true });
  const lock = `${venvDir()}.lock`;
  const deadline = Date.now() + 20 * 60_000;
  while (Date.now() < deadline) {
    if (venvReady()) return venvDir();
    try {
      mkdirSync(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        // The owner has not written its PID yet, or just released the lock.
      }
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue;
      }
      // A lock whose owner died (or that never got a PID within a minute) is stale.
      if ((Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) || (Number.isNaN(owner) && age > 60_000)) {
        const stale = `${lock}.stale-${process.pid}-${Date.now()}`;
        try {
          // rename is atomic: of two processes that saw the same stale lock, one wins.
          renameSync(lock, stale);
          rmSync(stale, { recursive: true, force: true });
        } catch {
          // Someone else took it over.
        }
        continue;
      }
      await sleep(500);
      continue;
    }
    try {
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      if (venvReady()) return venvDir();
      await buildVenv();
      return venvDir();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  throw new Error(`timed out waiting for another process to build ${venvDir()} (lock ${lock})`);
}

async function buildVenv(): Promise<void> {
  const dir = venvDir();
  const log = path.join(testCacheDir(), 'moto-venv-install.log');
  writeFileSync(log, `building ${dir} with moto[server]==${MOTO_VERSION}\n`);
  rmSync(dir, { recursive: true, force: true });
  const python = venvCapablePython();
  await run(python, ['-m', 'venv', dir], log, 120_000);
  await run(path.join(dir, 'bin', 'python'), ['-m', 'pip', 'install', '--no-input', `moto[server]==${MOTO_VERSION}`], log, 15 * 60_000);
  writeFileSync(readyMarker(), `${MOTO_VERSION}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Servers still running; killed when this process exits, whatever the tests did. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  await endChild(child, 3000, 5000);
  running.delete(child);
}

/** Makes an IAM user allowed everything and returns its access key. */
const BOOTSTRAP_IAM = `
import boto3, json, sys
iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='bootstrap', aws_secret_access_key='bootstrap')
iam.create_user(UserName='twister2-test')
iam.put_user_policy(UserName='twister2-test', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))
key = iam.create_access_key(UserName='twister2-test')['AccessKey']
print(json.dumps({'accessKeyId': key['AccessKeyId'], 'secretAccessKey': key['SecretAccessKey']}))
`;

async function waitHttp(url: string, child: ChildProcess, logFile: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (exited(child)) throw new Error(`moto_server exited (${child.signalCode ?? `code ${child.exitCode}`}) before answering; ${logFile}:\n${tail(logFile)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return;
    } catch {
      await sleep(150);
    }
  }
  throw new Error(`moto_server did not answer on ${url} within ${ms} ms; ${logFile}:\n${tail(logFile)}`);
}

/** Starts moto's S3 server on a free loopback port, with one all-powerful IAM user and authentication off. */
export async function startS3Server(): Promise<S3Server> {
  const venv = await ensureMotoVenv();
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'twister2-moto-'));
  installExitHook();
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const logFile = path.join(logDir, `moto-${port}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(path.join(venv, 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    closeSync(fd);
    child.on('error', () => undefined);
    child.unref();
    running.add(child);
    try {
      await waitHttp(`${endpoint}/moto-api/`, child, logFile, 90_000);
      const made = spawnSync(path.join(venv, 'bin', 'python'), ['-c', BOOTSTRAP_IAM, endpoint], { encoding: 'utf8', timeout: 120_000 });
      if (made.status !== 0) throw new Error(`creating the test IAM user failed: ${made.stderr}`);
      const creds = JSON.parse(made.stdout) as { accessKeyId: string; secretAccessKey: string };
      let stopped: Promise<void> | undefined;
      return {
        endpoint,
        region: 'us-east-1',
        accessKeyId: creds.accessKeyId,
        secretAccessKey: creds.secretAccessKey,
        logFile,
        setAuthEnforced: async (on) => {
          // moto authenticates every request after the first N; N = 0 means all of them, inf none.
          const res = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: on ? '0' : 'inf' });
          if (!res.ok) throw new Error(`switching moto authentication ${on ? 'on' : 'off'} failed: HTTP ${res.status} ${await res.text()}`);
        },
        stop: () => (stopped ??= stopChild(child)),
      };
    } catch (err) {
      lastError = err;
      await stopChild(child);
      // A port taken between probing and binding: try another one.
      if (!/Address already in use/i.test(tail(logFile))) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

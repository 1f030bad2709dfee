import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2, { type Client as SshClient, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import {
  HostAuthenticationError,
  HostChecksumError,
  HostKeyRejectedError,
  HostPermissionError,
  HostUnreachableError,
  SftpUploadAbortedError,
  SftpUploadError,
  Twister2Error,
} from '../../errors.js';
import type { PackageRef, PackageToUpload, UploadOptions, Uploader } from '../uploader.js';
import { checkHostKey, fingerprint, parseKnownHosts, type KnownHostLine } from './known-hosts.js';

/**
 * "Direct copy": puts the job package on every host over SSH (SFTP, via the `ssh2` package), at the same
 * path on each, so workers there read it as a `file` PackageRef.
 *
 * Per distinct host (host:port; duplicates in `hosts` are copied to once), at most `parallel` at a time:
 * connect, `mkdir -p <targetDir>/<jobId>`, SFTP-put to `package.tar.gz.partial-<random>`, check the
 * remote `sha256sum` against the package's, then rename to `package.tar.gz` — so a worker never sees a
 * partial file under the final name. The temporary name is unique per copy because "hosts" may share the
 * directory (NFS, or network namespaces on one machine): each rename then atomically puts a complete,
 * verified file in place. The first failing host stops the others; the error names it.
 *
 * Host keys: with `knownHostsFile` (OpenSSH format, hashed names supported) a host whose key is missing or
 * different is refused (HostKeyRejectedError). Without it, any host key is accepted (trust on every use,
 * like `StrictHostKeyChecking=no`) and its SHA256 fingerprint is passed to `debug`. Pass a known_hosts file
 * on networks you do not control.
 *
 * The private key is read from `identityFile` and only handed to ssh2; no message or log line contains it.
 */

export interface SftpHostSpec {
  host: string;
  /** Default 22. */
  port?: number;
  /** Default: the local user name, like ssh. */
  username?: string;
}

export interface SftpUploaderOptions {
  hosts: SftpHostSpec[];
  /** Path of the private key (OpenSSH or PEM; ed25519, ECDSA, RSA). */
  identityFile: string;
  /** For an encrypted identity file. */
  passphrase?: string;
  /** Absolute directory on the hosts; the package goes to `<targetDir>/<jobId>/package.tar.gz`. Default /tmp/twister2-packages. */
  targetDir?: string;
  /** Hosts copied to at once. Default 4. */
  parallel?: number;
  /** Limit for TCP connect plus SSH handshake and authentication, per host. Default 10 s. */
  connectTimeoutMs?: number;
  /** OpenSSH known_hosts file to check host keys against. Absent: accept any host key (see above). */
  knownHostsFile?: string;
  /** Debug log (host keys accepted, per-host steps). Never receives key material. */
  debug?: (message: string) => void;
}

interface Target {
  /** host:port, the dedupe key and the name in messages. */
  key: string;
  host: string;
  port: number;
  username: string;
}

interface Session {
  conn: Client;
  /** Rejects when the connection drops or the upload is aborted; every step races it. */
  broken: Promise<never>;
}

// ssh2 is CommonJS: Node's ESM loader only sees its default export.
const { Client, utils } = ssh2;
type Client = SshClient;

export const DEFAULT_TARGET_DIR = '/tmp/twister2-packages';
const PACKAGE_NAME = 'package.tar.gz';
const MAX_OUTPUT = 64 * 1024;

export class SftpUploader implements Uploader {
  private readonly targets: Target[];
  private readonly targetDir: string;
  private readonly parallel: number;
  private readonly connectTimeoutMs: number;
  private readonly counts: Record<string, number> = {};
  private readonly jobIds = new Set<string>();
  private readonly inFlight = new Set<{ controller: AbortController; done: Promise<unknown> }>();

  constructor(private readonly opts: SftpUploaderOptions) {
    if (opts.hosts.length === 0) throw new SftpUploadError('SftpUploader needs at least one host');
    const targetDir = opts.targetDir ?? DEFAULT_TARGET_DIR;
    if (!path.posix.isAbsolute(targetDir) || /[\0\n]/.test(targetDir)) {
      throw new SftpUploadError(`targetDir must be an absolute path on the hosts, got '${targetDir}'`);
    }
    this.targetDir = path.posix.normalize(targetDir);
    this.parallel = Math.max(1, Math.floor(opts.parallel ?? 4));
    this.connectTimeoutMs = Math.max(1, opts.connectTimeoutMs ?? 10_000);
    const defaultUser = safeUserName();
    const seen = new Map<string, Target>();
    for (const h of opts.hosts) {
      const port = h.port ?? 22;
      if (!h.host || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new SftpUploadError(`invalid SFTP host '${h.host}:${String(h.port)}'`);
      }
      const key = hostKey(h.host, port);
      if (!seen.has(key)) seen.set(key, { key, host: h.host, port, username: h.username ?? defaultUser });
    }
    this.targets = [...seen.values()];
    for (const t of this.targets) this.counts[t.key] = 0;
  }

  /** Successful copies per host (host:port), over all upload() calls. */
  copies(): Record<string, number> {
    return { ...this.counts };
  }

  /** The distinct hosts (host:port) this uploader copies to. */
  hosts(): string[] {
    return this.targets.map((t) => t.key);
  }

  async upload(pkg: PackageToUpload, uploadOpts: UploadOptions = {}): Promise<PackageRef> {
    const { signal, onProgress } = uploadOpts;
    if (signal?.aborted) throw aborted(pkg.jobId, signal.reason);
    checkJobId(pkg.jobId);
    const dir = path.posix.join(this.targetDir, pkg.jobId);
    const finalPath = path.posix.join(dir, PACKAGE_NAME);

    try {
      const st = await stat(pkg.file);
      if (!st.isFile()) throw new Error('not a regular file');
    } catch (err) {
      throw new SftpUploadError(`cannot read the package file ${pkg.file}: ${(err as Error).message}`, { cause: err });
    }
    const auth = await this.loadCredentials();
    if (signal?.aborted) throw aborted(pkg.jobId, signal.reason);

    // One controller for this upload: the caller's signal, the first failing host, or delete() trips it.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.jobIds.add(pkg.jobId);

    const total = pkg.size * this.targets.length;
    const sent = new Map<string, number>();
    const report = (t: Target, n: number) => {
      sent.set(t.key, n);
      if (onProgress) {
        let sum = 0;
        for (const v of sent.values()) sum += v;
        onProgress(sum, total);
      }
    };

    let firstError: unknown;
    const others: string[] = [];
    const copyTo = async (t: Target) => {
      // A name of its own per copy: on a shared file system (NFS) several "hosts" write the same directory.
      const partialPath = `${finalPath}.partial-${randomBytes(6).toString('hex')}`;
      try {
        await this.withSession(t, auth, controller.signal, async (s) => {
          await this.run(t, s, `mkdir -p -- ${q(dir)}`, (r) => writeError(t, `create ${dir}`, r));
          const sftp = await race(s, openSftp(s.conn));
          try {
            await race(s, put(sftp, pkg.file, partialPath, (n) => report(t, n)));
          } catch (err) {
            throw sftpError(t, partialPath, err);
          } finally {
            try {
              sftp.end();
            } catch {
              /* the connection is already gone */
            }
          }
          const out = await this.run(t, s, `sha256sum -- ${q(partialPath)}`, (r) => new SftpUploadError(`cannot compute sha256 of ${partialPath} on ${t.key}: ${r}`, { host: t.key }));
          const remoteSha = out.trim().split(/\s+/)[0] ?? '';
          if (remoteSha !== pkg.sha256) {
            await this.run(t, s, `rm -f -- ${q(partialPath)}`, () => undefined).catch(() => undefined);
            throw new HostChecksumError(`the copy on ${t.key} has sha256 ${remoteSha || '(none)'}, expected ${pkg.sha256} (${partialPath}, removed)`, { host: t.key });
          }
          await this.run(t, s, `mv -f -- ${q(partialPath)} ${q(finalPath)}`, (r) => writeError(t, `rename ${partialPath} to ${finalPath}`, r));
        });
        report(t, pkg.size);
        this.counts[t.key] = (this.counts[t.key] ?? 0) + 1;
        this.debug(`${t.key}: ${finalPath} written and verified`);
      } catch (err) {
        if (controller.signal.aborted && err instanceof SftpUploadAbortedError) return;
        if (firstError === undefined) {
          firstError = err;
          controller.abort(err);
        } else {
          others.push(`${t.key} (${(err as Error).message})`);
        }
      }
    };

    const done = runLimited(this.targets, this.parallel, controller.signal, copyTo);
    const entry = { controller, done };
    this.inFlight.add(entry);
    try {
      await done;
    } finally {
      this.inFlight.delete(entry);
      signal?.removeEventListener('abort', onAbort);
    }

    if (signal?.aborted) throw aborted(pkg.jobId, signal.reason);
    if (firstError !== undefined) {
      if (others.length > 0 && firstError instanceof Error) {
        firstError.message += `; ${others.length} other host${others.length === 1 ? '' : 's'} also failed: ${others.join('; ')}`;
      }
      throw firstError;
    }
    if (controller.signal.aborted) throw aborted(pkg.jobId, controller.signal.reason);
    return { kind: 'file', path: finalPath, sha256: pkg.sha256, size: pkg.size };
  }

  /**
   * Removes `<targetDir>/<jobId>` on every host for every job uploaded through this instance. Stops an
   * upload still running first. Best effort and idempotent: unreachable hosts are skipped (see `debug`).
   */
  async delete(): Promise<void> {
    for (const e of this.inFlight) e.controller.abort(new Error('deleted'));
    await Promise.allSettled([...this.inFlight].map((e) => e.done));
    if (this.jobIds.size === 0) return;
    const dirs = [...this.jobIds].map((id) => path.posix.join(this.targetDir, id));
    let auth: Awaited<ReturnType<SftpUploader['loadCredentials']>>;
    try {
      auth = await this.loadCredentials();
    } catch (err) {
      this.debug(`delete: ${(err as Error).message}`);
      return;
    }
    const never = new AbortController().signal;
    await runLimited(this.targets, this.parallel, never, async (t) => {
      try {
        await this.withSession(t, auth, never, (s) =>
          this.run(t, s, `rm -rf -- ${dirs.map(q).join(' ')}`, (r) => new SftpUploadError(`cannot remove ${dirs.join(', ')} on ${t.key}: ${r}`, { host: t.key })),
        );
        this.debug(`${t.key}: removed ${dirs.join(', ')}`);
      } catch (err) {
        this.debug(`${t.key}: delete skipped: ${(err as Error).message}`);
      }
    });
  }

  // ---------------------------------------------------------------------------------------------

  private debug(message: string): void {
    this.opts.debug?.(message);
  }

  private async loadCredentials(): Promise<{ privateKey: Buffer; knownHosts: KnownHostLine[] | undefined }> {
    const file = this.opts.identityFile;
    let privateKey: Buffer;
    try {
      privateKey = await readFile(file);
    } catch (err) {
      throw new HostAuthenticationError(`cannot read the SSH identity file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const parsed = utils.parseKey(privateKey, this.opts.passphrase);
    if (parsed instanceof Error) {
      // ssh2's parse messages describe the format problem, never the key's bytes.
      throw new HostAuthenticationError(`cannot use the SSH identity file ${file}: ${parsed.message}`);
    }
    let knownHosts: KnownHostLine[] | undefined;
    if (this.opts.knownHostsFile !== undefined) {
      try {
        knownHosts = parseKnownHosts(await readFile(this.opts.knownHostsFile, 'utf8'));
      } catch (err) {
        throw new HostKeyRejectedError(`cannot read the known_hosts file ${this.opts.knownHostsFile}: ${(err as Error).message}`, { cause: err });
      }
    }
    return { privateKey, knownHosts };
  }

  /** Connects, runs `fn`, and always closes the connection. Aborting `signal` closes it at once. */
  private async withSession<T>(
    t: Target,
    auth: { privateKey: Buffer; knownHosts: KnownHostLine[] | undefined },
    signal: AbortSignal,
    fn: (s: Session) => Promise<T>,
  ): Promise<T> {
    if (signal.aborted) throw new SftpUploadAbortedError(`copy to ${t.key} aborted`, { host: t.key, cause: signal.reason });
    const conn = new Client();
    let ready = false;
    let hostKeyProblem: Twister2Error | undefined;
    let lastError: (Error & { level?: string }) | undefined;
    let breakWith: (err: unknown) => void = () => undefined;
    const broken = new Promise<never>((_, reject) => (breakWith = reject));
    broken.catch(() => undefined);

    const onAbort = () => {
      breakWith(new SftpUploadAbortedError(`copy to ${t.key} aborted`, { host: t.key, cause: signal.reason }));
      conn.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    conn.on('error', (err: Error & { level?: string }) => {
      lastError = err;
      if (ready) breakWith(new SftpUploadError(`connection to ${t.key} failed: ${err.message}`, { host: t.key, cause: err }));
    });
    conn.on('close', () => {
      if (ready) breakWith(lastError ? new SftpUploadError(`connection to ${t.key} failed: ${lastError.message}`, { host: t.key, cause: lastError }) : new SftpUploadError(`connection to ${t.key} closed unexpectedly`, { host: t.key }));
    });

    const hostVerifier = (key: Buffer): boolean => {
      const fp = fingerprint(key);
      if (!auth.knownHosts) {
        this.debug(`${t.key}: accepting host key ${fp} (no known_hosts file configured)`);
        return true;
      }
      const verdict = checkHostKey(auth.knownHosts, t.host, t.port, key);
      if (verdict === 'ok') {
        this.debug(`${t.key}: host key ${fp} matches ${this.opts.knownHostsFile}`);
        return true;
      }
      const why = {
        unknown: `is not in the known_hosts file ${this.opts.knownHostsFile}`,
        mismatch: `has key ${fp}, which does not match its entry in ${this.opts.knownHostsFile} (host key changed, or someone is intercepting the connection)`,
        revoked: `presented the revoked key ${fp} (${this.opts.knownHostsFile})`,
      }[verdict];
      hostKeyProblem = new HostKeyRejectedError(`host ${t.key} ${why}`, { host: t.key });
      return false;
    };

    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.username,
      privateKey: auth.privateKey,
      passphrase: this.opts.passphrase,
      readyTimeout: this.connectTimeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier,
    };

    try {
      await new Promise<void>((resolve, reject) => {
        const fail = () => {
          clearTimeout(guard);
          reject(hostKeyProblem ?? this.connectError(t, lastError));
        };
        // ssh2's readyTimeout covers connect, handshake and authentication; this only backs it up.
        const guard = setTimeout(() => {
          lastError ??= Object.assign(new Error('timed out'), { level: 'client-timeout' });
          conn.destroy();
          fail();
        }, this.connectTimeoutMs + 2000);
        conn.once('ready', () => {
          ready = true;
          clearTimeout(guard);
          conn.removeListener('close', fail);
          resolve();
        });
        conn.once('close', fail);
        broken.catch((err: unknown) => {
          clearTimeout(guard);
          reject(err);
        });
        try {
          conn.connect(config);
        } catch (err) {
          reject(new SftpUploadError(`cannot connect to ${t.key}: ${(err as Error).message}`, { host: t.key, cause: err }));
        }
      });
      this.debug(`${t.key}: connected as ${t.username}`);
      return await fn({ conn, broken });
    } finally {
      signal.removeEventListener('abort', onAbort);
      conn.end();
      conn.destroy();
    }
  }

  private connectError(t: Target, err: (Error & { level?: string; code?: string }) | undefined): Twister2Error {
    if (!err) return new HostUnreachableError(`cannot reach ${t.key}: the connection closed before the SSH handshake completed`, { host: t.key });
    if (err.level === 'client-authentication') {
      return new HostAuthenticationError(`SSH authentication as ${t.username}@${t.key} failed with the key ${this.opts.identityFile}`, {
        host: t.key,
        cause: err,
        hint: `check that the matching public key (${this.opts.identityFile}.pub) is in ${t.username}'s authorized_keys on ${t.host}`,
      });
    }
    if (err.level === 'client-timeout') {
      return new HostUnreachableError(`cannot reach ${t.key}: no SSH handshake within ${this.connectTimeoutMs} ms`, { host: t.key, cause: err });
    }
    if (err.level === 'client-socket' || err.level === 'client-dns') {
      return new HostUnreachableError(`cannot reach ${t.key}: ${err.message}`, { host: t.key, cause: err });
    }
    return new SftpUploadError(`SSH connection to ${t.key} failed: ${err.message}`, { host: t.key, cause: err });
  }

  /** Runs a shell command on the host; returns stdout, or throws `onFail(stderr or exit status)`. */
  private async run(t: Target, s: Session, command: string, onFail: (detail: string) => Error | undefined): Promise<string> {
    this.debug(`${t.key}: ${command}`);
    const r = await race(s, execRemote(s.conn, command));
    if (r.code !== 0) {
      const detail = r.stderr.trim() || `exit status ${r.code ?? r.signal ?? '?'}`;
      throw onFail(detail) ?? new SftpUploadError(`'${command}' failed on ${t.key}: ${detail}`, { host: t.key });
    }
    return r.stdout;
  }
}

// -----------------------------------------------------------------------------------------------

function hostKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'root';
  }
}

function checkJobId(jobId: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(jobId) || jobId.length > 200) {
    throw new SftpUploadError(`job id '${jobId}' cannot be used as a directory name on the hosts`);
  }
}

function aborted(jobId: string, reason: unknown): SftpUploadAbortedError {
  return new SftpUploadAbortedError(`upload of job ${jobId} aborted`, { cause: reason });
}

/** Single-quotes for a POSIX shell. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const PERMISSION = /permission denied|operation not permitted|read-only file system/i;

function writeError(t: Target, what: string, detail: string): SftpUploadError {
  if (PERMISSION.test(detail)) {
    return new HostPermissionError(`no permission to ${what} on ${t.key}: ${detail}`, {
      host: t.key,
      hint: `choose a targetDir that ${t.username} can create and write on every host`,
    });
  }
  return new SftpUploadError(`cannot ${what} on ${t.key}: ${detail}`, { host: t.key });
}

function sftpError(t: Target, file: string, err: unknown): unknown {
  if (Twister2Error.is(err)) return err;
  const e = err as Error & { code?: unknown };
  // SFTP status 3 is SSH_FX_PERMISSION_DENIED.
  if (e.code === 3 || PERMISSION.test(e.message)) {
    return new HostPermissionError(`no permission to write ${file} on ${t.key}: ${e.message}`, { host: t.key, cause: err });
  }
  return new SftpUploadError(`copying to ${file} on ${t.key} failed: ${e.message}`, { host: t.key, cause: err });
}

function race<T>(s: Session, p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return Promise.race([p, s.broken]);
}

function openSftp(conn: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => conn.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

function put(sftp: SFTPWrapper, local: string, remote: string, step: (sent: number) => void): Promise<void> {
  return new Promise((resolve, reject) =>
    sftp.fastPut(local, remote, { step: (transferred) => step(transferred) }, (err) => (err ? reject(err) : resolve())),
  );
}

function execRemote(conn: Client, command: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    conn.exec(command, (err, stream: ClientChannel) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      stream.setEncoding('utf8');
      stream.stderr.setEncoding('utf8');
      stream.on('data', (d: string) => {
        if (stdout.length < MAX_OUTPUT) stdout += d;
      });
      stream.stderr.on('data', (d: string) => {
        if (stderr.length < MAX_OUTPUT) stderr += d;
      });
      stream.on('close', (code: number | null, signal: string | null) => resolve({ code: code ?? null, signal: signal ?? null, stdout, stderr }));
    });
  });
}

/** Runs `fn` over `items`, at most `limit` at once; stops starting new ones once `signal` aborts. */
async function runLimited<T>(items: T[], limit: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal.aborted) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

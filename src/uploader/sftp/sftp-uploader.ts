import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SftpUploadAbortedError, SftpUploadError } from '../../errors.js';
import type { PackageRef, PackageToUpload, UploadOptions, Uploader } from '../uploader.js';
import { copyAndVerify, removeDirs } from './remote-copy.js';
import { distinctTargets, type SftpHostSpec } from './sftp-hosts.js';
import { loadCredentials, type SshCredentials } from './ssh-credentials.js';
import { withSshSession, type SshConnectSettings, type SshTarget } from './ssh-session.js';

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

export type { SftpHostSpec } from './sftp-hosts.js';

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

export const DEFAULT_TARGET_DIR = '/tmp/twister2-packages';
const PACKAGE_NAME = 'package.tar.gz';

export class SftpUploader implements Uploader {
  private readonly targets: SshTarget[];
  private readonly targetDir: string;
  private readonly parallel: number;
  private readonly ssh: SshConnectSettings;
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
    this.ssh = {
      identityFile: opts.identityFile,
      passphrase: opts.passphrase,
      knownHostsFile: opts.knownHostsFile,
      connectTimeoutMs: Math.max(1, opts.connectTimeoutMs ?? 10_000),
      debug: (message) => this.debug(message),
    };
    this.targets = distinctTargets(opts.hosts);
    for (const t of this.targets) this.counts[t.name] = 0;
  }

  /** Successful copies per host (host:port), over all upload() calls. */
  copies(): Record<string, number> {
    return { ...this.counts };
  }

  /** The distinct hosts (host:port) this uploader copies to. */
  hosts(): string[] {
    return this.targets.map((t) => t.name);
  }

  async upload(pkg: PackageToUpload, uploadOpts: UploadOptions = {}): Promise<PackageRef> {
    const { signal, onProgress } = uploadOpts;
    if (signal?.aborted) throw aborted(pkg.jobId, signal.reason);
    checkJobId(pkg.jobId);
    const finalPath = path.posix.join(this.targetDir, pkg.jobId, PACKAGE_NAME);
    await checkPackageFile(pkg.file);
    const credentials = await loadCredentials(this.ssh);
    if (signal?.aborted) throw aborted(pkg.jobId, signal.reason);

    // One controller for this upload: the caller's signal, the first failing host, or delete() trips it.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.jobIds.add(pkg.jobId);

    // Progress is the sum over all hosts, each counting up to the package size.
    const total = pkg.size * this.targets.length;
    const sent = new Map<string, number>();
    const report = (t: SshTarget, n: number) => {
      sent.set(t.name, n);
      if (onProgress) {
        let sum = 0;
        for (const v of sent.values()) sum += v;
        onProgress(sum, total);
      }
    };

    let firstError: unknown;
    const others: string[] = [];
    /** Hosts a copy began on: where a failed upload may have left a partial file. */
    const touched: SshTarget[] = [];
    const copyTo = async (t: SshTarget) => {
      try {
        await withSshSession(t, credentials, this.ssh, controller.signal, (s) => {
          touched.push(t);
          return copyAndVerify(s, { file: pkg.file, sha256: pkg.sha256, finalPath, onProgress: (n) => report(t, n) });
        });
        report(t, pkg.size);
        this.counts[t.name] = (this.counts[t.name] ?? 0) + 1;
        this.debug(`${t.name}: ${finalPath} written and verified`);
      } catch (err) {
        // Hosts stopped because another one failed are not failures of their own.
        if (controller.signal.aborted && err instanceof SftpUploadAbortedError) return;
        if (firstError === undefined) {
          firstError = err;
          controller.abort(err);
        } else {
          others.push(`${t.name} (${(err as Error).message})`);
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
    // A copy cut short (an abort, another host failing) leaves its partial file: nothing of a failed upload stays.
    if (controller.signal.aborted) await this.removeFrom(touched, [path.posix.join(this.targetDir, pkg.jobId)], credentials);

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
    let credentials: SshCredentials;
    try {
      credentials = await loadCredentials(this.ssh);
    } catch (err) {
      this.debug(`delete: ${(err as Error).message}`);
      return;
    }
    await this.removeFrom(this.targets, dirs, credentials);
  }

  /** `rm -rf` the directories on the hosts. Best effort: a host that fails is skipped (see `debug`). */
  private async removeFrom(targets: SshTarget[], dirs: string[], credentials: SshCredentials): Promise<void> {
    const never = new AbortController().signal;
    await runLimited(targets, this.parallel, never, async (t) => {
      try {
        await withSshSession(t, credentials, this.ssh, never, (s) => removeDirs(s, dirs));
        this.debug(`${t.name}: removed ${dirs.join(', ')}`);
      } catch (err) {
        this.debug(`${t.name}: delete skipped: ${(err as Error).message}`);
      }
    });
  }

  private debug(message: string): void {
    this.opts.debug?.(message);
  }
}

function checkJobId(jobId: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(jobId) || jobId.length > 200) {
    throw new SftpUploadError(`job id '${jobId}' cannot be used as a directory name on the hosts`);
  }
}

async function checkPackageFile(file: string): Promise<void> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
  } catch (err) {
    throw new SftpUploadError(`cannot read the package file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function aborted(jobId: string, reason: unknown): SftpUploadAbortedError {
  return new SftpUploadAbortedError(`upload of job ${jobId} aborted`, { cause: reason });
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

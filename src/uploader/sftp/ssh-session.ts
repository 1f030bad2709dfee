import ssh2, { type Client as SshClient, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { HostAuthenticationError, HostUnreachableError, SftpUploadAbortedError, SftpUploadError, Twister2Error } from '../../errors.js';
import { rejectHostKey, type SshCredentials } from './ssh-credentials.js';

/**
 * One SSH connection to one host (via the `ssh2` package): connect within a time limit, map the ways that
 * fails to errors that say what to fix (unreachable, authentication, host key), and run commands whose
 * exit status decides success. Every error names the host.
 */

export interface SshTarget {
  /** host:port: the dedupe key and the name in messages. */
  name: string;
  host: string;
  port: number;
  username: string;
}

export interface SshConnectSettings {
  /** Only named in messages; the key itself comes in SshCredentials. */
  identityFile: string;
  passphrase?: string;
  /** Only named in messages; its lines come in SshCredentials. */
  knownHostsFile?: string;
  /** Limit for TCP connect plus SSH handshake and authentication. */
  connectTimeoutMs: number;
  debug: (message: string) => void;
}

// ssh2 is CommonJS: Node's ESM loader only sees its default export.
const { Client } = ssh2;

/** Output kept per stream of a remote command; the commands run here print a line at most. */
const MAX_OUTPUT = 64 * 1024;

export class SshSession {
  constructor(
    readonly target: SshTarget,
    private readonly conn: SshClient,
    /** Rejects when the connection drops or the work is aborted; every step races it. */
    private readonly broken: Promise<never>,
    private readonly debug: (message: string) => void,
  ) {}

  /** Settles like `work`, unless the connection breaks first: a dead peer must not leave a step hanging. */
  race<T>(work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    return Promise.race([work, this.broken]);
  }

  openSftp(): Promise<SFTPWrapper> {
    return this.race(new Promise((resolve, reject) => this.conn.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)))));
  }

  /** Runs a shell command on the host; returns stdout, or throws `onFail(stderr or exit status)`. */
  async run(command: string, onFail: (detail: string) => Error | undefined): Promise<string> {
    const t = this.target;
    this.debug(`${t.name}: ${command}`);
    const r = await this.race(execRemote(this.conn, command));
    if (r.code !== 0) {
      const detail = r.stderr.trim() || `exit status ${r.code ?? r.signal ?? '?'}`;
      throw onFail(detail) ?? new SftpUploadError(`'${command}' failed on ${t.name}: ${detail}`, { host: t.name });
    }
    return r.stdout;
  }
}

/** Connects, runs `fn`, and always closes the connection. Aborting `signal` closes it at once. */
export async function withSshSession<T>(
  t: SshTarget,
  credentials: SshCredentials,
  settings: SshConnectSettings,
  signal: AbortSignal,
  fn: (s: SshSession) => Promise<T>,
): Promise<T> {
  if (signal.aborted) throw new SftpUploadAbortedError(`copy to ${t.name} aborted`, { host: t.name, cause: signal.reason });
  const conn = new Client();
  let ready = false;
  let hostKeyProblem: Twister2Error | undefined;
  let lastError: (Error & { level?: string }) | undefined;
  let breakWith: (err: unknown) => void = () => undefined;
  const broken = new Promise<never>((_, reject) => (breakWith = reject));
  broken.catch(() => undefined);

  const onAbort = () => {
    breakWith(new SftpUploadAbortedError(`copy to ${t.name} aborted`, { host: t.name, cause: signal.reason }));
    conn.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  conn.on('error', (err: Error & { level?: string }) => {
    lastError = err;
    if (ready) breakWith(new SftpUploadError(`connection to ${t.name} failed: ${err.message}`, { host: t.name, cause: err }));
  });
  conn.on('close', () => {
    if (ready) breakWith(lastError ? new SftpUploadError(`connection to ${t.name} failed: ${lastError.message}`, { host: t.name, cause: lastError }) : new SftpUploadError(`connection to ${t.name} closed unexpectedly`, { host: t.name }));
  });

  const config: ConnectConfig = {
    host: t.host,
    port: t.port,
    username: t.username,
    privateKey: credentials.privateKey,
    passphrase: settings.passphrase,
    readyTimeout: settings.connectTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    hostVerifier: (key: Buffer): boolean => {
      const problem = rejectHostKey(t, key, credentials.knownHosts, settings.knownHostsFile, settings.debug);
      if (!problem) return true;
      hostKeyProblem = problem;
      return false;
    },
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const fail = () => {
        clearTimeout(guard);
        reject(hostKeyProblem ?? connectError(t, settings, lastError));
      };
      // ssh2's readyTimeout covers connect, handshake and authentication; this only backs it up.
      const guard = setTimeout(() => {
        lastError ??= Object.assign(new Error('timed out'), { level: 'client-timeout' });
        conn.destroy();
        fail();
      }, settings.connectTimeoutMs + 2000);
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
        reject(new SftpUploadError(`cannot connect to ${t.name}: ${(err as Error).message}`, { host: t.name, cause: err }));
      }
    });
    settings.debug(`${t.name}: connected as ${t.username}`);
    return await fn(new SshSession(t, conn, broken, settings.debug));
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn.end();
    conn.destroy();
  }
}

/** Why a connection never became ready, by ssh2's error level: the host, the key, or something else. */
function connectError(t: SshTarget, settings: SshConnectSettings, err: (Error & { level?: string; code?: string }) | undefined): Twister2Error {
  if (!err) return new HostUnreachableError(`cannot reach ${t.name} over SSH: the connection closed before the SSH handshake completed`, { host: t.name });
  if (err.level === 'client-authentication') {
    return new HostAuthenticationError(`SSH authentication as ${t.username}@${t.name} failed with the key ${settings.identityFile}`, {
      host: t.name,
      cause: err,
      hint: `check that the matching public key (${settings.identityFile}.pub) is in ${t.username}'s authorized_keys on ${t.host}`,
    });
  }
  if (err.level === 'client-timeout') {
    return new HostUnreachableError(`cannot reach ${t.name} over SSH: no SSH handshake within ${settings.connectTimeoutMs} ms`, { host: t.name, cause: err });
  }
  if (err.level === 'client-socket' || err.level === 'client-dns') {
    return new HostUnreachableError(`cannot reach ${t.name} over SSH: ${err.message}`, { host: t.name, cause: err });
  }
  return new SftpUploadError(`SSH connection to ${t.name} failed: ${err.message}`, { host: t.name, cause: err });
}

function execRemote(conn: SshClient, command: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
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

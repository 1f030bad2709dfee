import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { HostChecksumError, HostPermissionError, SftpUploadError, Twister2Error } from '../../errors.js';
import { shellQuote } from '../../shell-quote.js';
import type { SshSession } from './ssh-session.js';

/**
 * The file work on one host, over an open SSH session: put the package in place so a worker can only
 * ever see a complete, verified file under the final name, and remove job directories again.
 */

export interface PackageCopy {
  /** The local package file. */
  file: string;
  /** What the remote copy must hash to. */
  sha256: string;
  /** Where it goes on the host; its directory is created. */
  finalPath: string;
  /** Bytes sent so far. */
  onProgress: (sent: number) => void;
}

/**
 * `mkdir -p` the directory, SFTP-put to `<finalPath>.partial-<random>`, check the remote `sha256sum`, then
 * `mv` it to `finalPath`. A copy that hashes wrong is removed and reported as HostChecksumError.
 */
export async function copyAndVerify(s: SshSession, copy: PackageCopy): Promise<void> {
  const t = s.target;
  const dir = path.posix.dirname(copy.finalPath);
  // A name of its own per copy: on a shared file system (NFS) several "hosts" write the same directory,
  // and each rename then atomically puts a complete, verified file in place.
  const partialPath = `${copy.finalPath}.partial-${randomBytes(6).toString('hex')}`;
  await s.run(`mkdir -p -- ${shellQuote(dir)}`, (r) => writeError(s, `create ${dir}`, r));
  const sftp = await s.openSftp();
  try {
    await s.race(put(sftp, copy.file, partialPath, copy.onProgress));
  } catch (err) {
    throw sftpError(s, partialPath, err);
  } finally {
    try {
      sftp.end();
    } catch {
      /* the connection is already gone */
    }
  }
  const out = await s.run(`sha256sum -- ${shellQuote(partialPath)}`, (r) => new SftpUploadError(`cannot compute sha256 of ${partialPath} on ${t.name}: ${r}`, { host: t.name }));
  const remoteSha = out.trim().split(/\s+/)[0] ?? '';
  if (remoteSha !== copy.sha256) {
    await s.run(`rm -f -- ${shellQuote(partialPath)}`, () => undefined).catch(() => undefined);
    throw new HostChecksumError(`the copy on ${t.name} has sha256 ${remoteSha || '(none)'}, expected ${copy.sha256} (${partialPath}, removed)`, { host: t.name });
  }
  await s.run(`mv -f -- ${shellQuote(partialPath)} ${shellQuote(copy.finalPath)}`, (r) => writeError(s, `rename ${partialPath} to ${copy.finalPath}`, r));
}

/** `rm -rf` the directories on the host, in one command. */
export async function removeDirs(s: SshSession, dirs: string[]): Promise<void> {
  const t = s.target;
  await s.run(`rm -rf -- ${dirs.map(shellQuote).join(' ')}`, (r) => new SftpUploadError(`cannot remove ${dirs.join(', ')} on ${t.name}: ${r}`, { host: t.name }));
}

function put(sftp: SFTPWrapper, local: string, remote: string, step: (sent: number) => void): Promise<void> {
  return new Promise((resolve, reject) =>
    sftp.fastPut(local, remote, { step: (transferred) => step(transferred) }, (err) => (err ? reject(err) : resolve())),
  );
}

const PERMISSION = /permission denied|operation not permitted|read-only file system/i;

function writeError(s: SshSession, what: string, detail: string): SftpUploadError {
  const t = s.target;
  if (PERMISSION.test(detail)) {
    return new HostPermissionError(`no permission to ${what} on ${t.name}: ${detail}`, {
      host: t.name,
      hint: `choose a targetDir that ${t.username} can create and write on every host`,
    });
  }
  return new SftpUploadError(`cannot ${what} on ${t.name}: ${detail}`, { host: t.name });
}

function sftpError(s: SshSession, file: string, err: unknown): unknown {
  if (Twister2Error.is(err)) return err;
  const t = s.target;
  const e = err as Error & { code?: unknown };
  // SFTP status 3 is SSH_FX_PERMISSION_DENIED.
  if (e.code === 3 || PERMISSION.test(e.message)) {
    return new HostPermissionError(`no permission to write ${file} on ${t.name}: ${e.message}`, { host: t.name, cause: err });
  }
  return new SftpUploadError(`copying to ${file} on ${t.name} failed: ${e.message}`, { host: t.name, cause: err });
}

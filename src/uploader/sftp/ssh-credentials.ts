import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { HostAuthenticationError, HostKeyRejectedError } from '../../errors.js';
import { checkHostKey, fingerprint, parseKnownHosts, type KnownHostLine } from './known-hosts.js';
import type { SshConnectSettings, SshTarget } from './ssh-session.js';

/**
 * What an SSH connection authenticates with: our private key, and the host keys we trust.
 *
 * The private key is read from the identity file and only handed to ssh2; no message or log line
 * contains it.
 */

export interface SshCredentials {
  privateKey: Buffer;
  /** Absent: no known_hosts file configured, any host key is accepted. */
  knownHosts: KnownHostLine[] | undefined;
}

// ssh2 is CommonJS: Node's ESM loader only sees its default export.
const { utils } = ssh2;

/** Reads and checks the identity file (and the known_hosts file, if any) before any host is contacted. */
export async function loadCredentials(files: Pick<SshConnectSettings, 'identityFile' | 'passphrase' | 'knownHostsFile'>): Promise<SshCredentials> {
  const { identityFile, passphrase, knownHostsFile } = files;
  let privateKey: Buffer;
  try {
    privateKey = await readFile(identityFile);
  } catch (err) {
    throw new HostAuthenticationError(`cannot read the SSH identity file ${identityFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const parsed = utils.parseKey(privateKey, passphrase);
  if (parsed instanceof Error) {
    // ssh2's parse messages describe the format problem, never the key's bytes.
    throw new HostAuthenticationError(`cannot use the SSH identity file ${identityFile}: ${parsed.message}`);
  }
  let knownHosts: KnownHostLine[] | undefined;
  if (knownHostsFile !== undefined) {
    try {
      knownHosts = parseKnownHosts(await readFile(knownHostsFile, 'utf8'));
    } catch (err) {
      throw new HostKeyRejectedError(`cannot read the known_hosts file ${knownHostsFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { privateKey, knownHosts };
}

/**
 * Judges the key a host presented: undefined to accept it, or the error that explains the refusal.
 * Without a known_hosts file every key is accepted (trust on every use, like `StrictHostKeyChecking=no`)
 * and its fingerprint goes to `debug`, so a changed key can at least be spotted afterwards.
 */
export function rejectHostKey(
  target: SshTarget,
  key: Buffer,
  knownHosts: KnownHostLine[] | undefined,
  knownHostsFile: string | undefined,
  debug: (message: string) => void,
): HostKeyRejectedError | undefined {
  const fp = fingerprint(key);
  if (!knownHosts) {
    debug(`${target.name}: accepting host key ${fp} (no known_hosts file configured)`);
    return undefined;
  }
  const verdict = checkHostKey(knownHosts, target.host, target.port, key);
  if (verdict === 'ok') {
    debug(`${target.name}: host key ${fp} matches ${knownHostsFile}`);
    return undefined;
  }
  const why = {
    unknown: `is not in the known_hosts file ${knownHostsFile}`,
    mismatch: `has key ${fp}, which does not match its entry in ${knownHostsFile} (host key changed, or someone is intercepting the connection)`,
    revoked: `presented the revoked key ${fp} (${knownHostsFile})`,
  }[verdict];
  return new HostKeyRejectedError(`host ${target.name} ${why}`, { host: target.name });
}

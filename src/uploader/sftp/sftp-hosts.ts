import os from 'node:os';
import { SftpUploadError } from '../../errors.js';
import type { SshTarget } from './ssh-session.js';

/** The hosts an SftpUploader copies to, as given in its options and as it addresses them. */

export interface SftpHostSpec {
  host: string;
  /** Default 22. */
  port?: number;
  /** Default: the local user name, like ssh. */
  username?: string;
}

/** One target per host:port, in the order given; the user name defaults like ssh's. */
export function distinctTargets(hosts: SftpHostSpec[]): SshTarget[] {
  const defaultUser = safeUserName();
  const seen = new Map<string, SshTarget>();
  for (const h of hosts) {
    const port = h.port ?? 22;
    if (!h.host || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SftpUploadError(`invalid SFTP host '${h.host}:${String(h.port)}'`);
    }
    const name = hostPort(h.host, port);
    if (!seen.has(name)) seen.set(name, { name, host: h.host, port, username: h.username ?? defaultUser });
  }
  return [...seen.values()];
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'root';
  }
}

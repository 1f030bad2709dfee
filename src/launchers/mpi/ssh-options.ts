import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MpiSpec } from './section.js';
import { shellQuote } from '../../shell-quote.js';

/**
 * The ssh options the launcher uses everywhere: in the plm_rsh_agent wrapper mpirun runs, in the
 * pre-flight and in the clean-up sweep, so all three reach a host the same way.
 */
export function sshOptions(ssh: MpiSpec['ssh'], extra: string[] = []): string[] {
  return [
    ...(ssh.identityFile ? ['-i', ssh.identityFile] : []),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    ...extra,
    ...(ssh.port ? ['-p', String(ssh.port)] : []),
    ...(ssh.user ? ['-l', ssh.user] : []),
  ];
}

/** The wrapper script mpirun's plm_rsh_agent runs as `<wrapper> <host> <command...>`. */
export function renderSshWrapper(ssh: MpiSpec['ssh']): string {
  return `#!/bin/sh\n# twister2: how mpirun reaches the hosts of this job\nexec ssh ${sshOptions(ssh).map(shellQuote).join(' ')} "$@"\n`;
}

/** Writes `<jobDir>/mpi-ssh` (mode 0755) and returns its path. */
export async function writeSshWrapper(jobDir: string, ssh: MpiSpec['ssh']): Promise<string> {
  const file = path.join(jobDir, 'mpi-ssh');
  await writeFile(file, renderSshWrapper(ssh));
  await chmod(file, 0o755);
  return file;
}

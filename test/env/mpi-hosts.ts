import type { SshHosts } from './ssh-hosts.js';
import { jobProcesses, scratchLeft } from '../helpers/cli.js';

/** The spec fields of an mpi job on namespace hosts (the bridge address is this machine's side). */
export function mpiSpecFor(env: SshHosts, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const bridge = env.subnet.replace(/\.0\/24$/, '.1');
  return {
    cluster: 'mpi',
    jobMaster: { host: bridge },
    mpi: {
      hosts: env.hosts.map((h) => ({ host: h.address, slots: 2 })),
      ssh: { identityFile: env.keyFile, user: 'root' },
      interfaces: env.subnet,
      ...extra,
    },
  };
}

/** Processes of the job on every host, each checked inside its namespace, plus any on this machine. */
export function mpiLeftovers(env: SshHosts, jobId: string): string[] {
  const found: string[] = [];
  for (const h of env.hosts) {
    const script =
      `me=$(readlink /proc/$$/ns/net); for d in /proc/[0-9]*; do ` +
      `[ "$(readlink $d/ns/net 2>/dev/null)" = "$me" ] || continue; ` +
      `tr '\\0' '\\n' < $d/environ 2>/dev/null | grep -qxF TWISTER2_JOB_ID=${jobId} && echo \${d#/proc/}; done; true`;
    const r = env.exec(h.name, ['sh', '-c', script]);
    if (r.code !== 0) found.push(`${h.name}: cannot check (${r.stderr.trim()})`);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean)) found.push(`${h.name} process ${pid}`);
  }
  for (const pid of jobProcesses(jobId)) found.push(`process ${pid}`);
  found.push(...scratchLeft(jobId));
  return [...new Set(found)];
}

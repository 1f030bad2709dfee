import path from 'node:path';
import { files } from '../../job/job-store.js';
import { LauncherError, UsageError } from '../../errors.js';
import { isLoopbackHost } from '../../net/loopback.js';
import type { JobSpec } from '../../spec/schema.js';
import { loadHosts, mpiSection } from './host-plan.js';
import { isThisMachine, sshRun } from './remote-hosts.js';
import { shellQuote } from '../../shell-quote.js';
import { sshOptions } from './ssh-options.js';
import type { JobMasterCommand } from '../launcher.js';

/** True when the job master of this job runs on the first MPI host (`cluster: mpi` + `jobMaster.placement: cluster`). */
export function onFirstMpiHost(spec: JobSpec): boolean {
  return spec.cluster === 'mpi' && spec.jobMaster.placement === 'cluster';
}

/**
 * The spec as the job master process runs it. With the job master on the first MPI host it listens on
 * that host's address (hosts[0]), whatever jobMaster.host says: that is where the workers reach it, and
 * the address it records is what `twister2 status/kill/logs` talk to from the client.
 */
export async function jobMasterProcessSpec(spec: JobSpec): Promise<JobSpec> {
  if (!onFirstMpiHost(spec)) return spec;
  const [first] = await loadHosts(mpiSection(spec));
  return { ...spec, jobMaster: { ...spec.jobMaster, host: first!.host } };
}

/**
 * How the client starts the detached job master (`twister2 jobmaster --job-dir D`). For an mpi job with
 * the `cluster` placement that is on the first MPI host over ssh, with the launcher's ssh options.
 *
 * The job directory (under TWISTER2_HOME), this Node and this twister2 checkout must be at the same paths
 * on a file system the hosts share (NFS or the like): the job master reads the spec, package and token
 * from the job directory and writes its record, logs and final status there, which is how the client's
 * `status`, `kill` and `logs` keep working. A host that cannot see them is an error before anything starts.
 */
export async function jobMasterCommand(spec: JobSpec, jobDir: string, node: string, cli: string): Promise<JobMasterCommand> {
  const local = { program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] };
  if (!onFirstMpiHost(spec)) return local;
  const mpi = mpiSection(spec);
  const hosts = await loadHosts(mpi);
  const host = hosts[0]!.host;
  const farHost = hosts.find((h) => !isThisMachine(h.host));
  if (isLoopbackHost(host) && farHost) {
    throw new UsageError(
      `jobMaster.placement "cluster" runs the job master on the first mpi host and it listens there, but "${host}" cannot be reached from mpi host "${farHost.host}"; list a host by an address the others reach first`,
    );
  }
  if (isThisMachine(host)) return local;
  const check = await sshRun(
    mpi.ssh,
    host,
    `test -r ${shellQuote(path.join(jobDir, files.spec))} && test -x ${shellQuote(node)} && test -r ${shellQuote(cli)}`,
    20_000,
  );
  if (check.code !== 0) {
    throw new LauncherError(
      check.code === 1
        ? `jobMaster.placement "cluster" runs the job master on the first mpi host "${host}", but that host cannot see the job directory ${jobDir}, ${node} or ${cli}; ` +
            'put TWISTER2_HOME and twister2 on a file system every host shares (e.g. NFS), at the same paths, or use jobMaster.placement "client"'
        : `cannot start the job master on mpi host "${host}" over ssh (${check.code === null ? 'no answer' : `ssh exit ${check.code}`}): ${check.stderr.trim() || 'no message'}`,
    );
  }
  const remote = ['exec', node, cli, 'jobmaster', '--job-dir', jobDir].map(shellQuote).join(' ');
  return { program: 'ssh', args: [...sshOptions(mpi.ssh), host, '--', remote], host };
}

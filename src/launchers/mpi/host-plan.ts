import { readFile } from 'node:fs/promises';
import { UsageError } from '../../errors.js';
import { isLoopbackHost } from '../../net/loopback.js';
import type { JobSpec } from '../../spec/schema.js';
import type { MpiSpec } from './section.js';
import { parseHostfile, totalSlots, type HostSlots } from './hostfile.js';
import { isThisMachine } from './remote-hosts.js';

/** The mpi section, or a UsageError when the spec has none (the spec check normally catches this first). */
export function mpiSection(spec: JobSpec): MpiSpec {
  if (!spec.mpi) throw new UsageError('cluster "mpi" needs an mpi section: set mpi.hosts (a list of { host, slots }) or mpi.hostfile');
  return spec.mpi;
}

/** The hosts of the job, from mpi.hosts or read from mpi.hostfile. */
export async function loadHosts(mpi: MpiSpec): Promise<HostSlots[]> {
  if (mpi.hosts) return mpi.hosts.map((h) => ({ host: h.host, slots: h.slots }));
  const file = mpi.hostfile!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`mpi.hostfile "${file}" cannot be read: ${(err as Error).message}`);
  }
  try {
    return parseHostfile(text, `mpi.hostfile "${file}"`);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The checks that need the whole spec and the hosts (a hostfile is only read here); throws a UsageError. */
export function checkHostPlan(spec: JobSpec, hosts: HostSlots[], thisMachine: (host: string) => boolean = isThisMachine): void {
  const mpi = mpiSection(spec);
  const field = mpi.hosts ? 'mpi.hosts' : `mpi.hostfile "${mpi.hostfile}"`;
  const slots = totalSlots(hosts);
  if (slots !== undefined && slots < spec.workers && !mpi.oversubscribe) {
    throw new UsageError(
      `${field} gives ${slots} slots in total but workers is ${spec.workers}; add hosts or slots, lower workers, or set mpi.oversubscribe: true`,
    );
  }
  const remote = hosts.find((h) => !thisMachine(h.host));
  if (remote && isLoopbackHost(spec.jobMaster.host) && spec.jobMaster.placement !== 'none') {
    throw new UsageError(
      `jobMaster.host is "${spec.jobMaster.host}", which mpi host "${remote.host}" cannot reach; set jobMaster.host to an address of this machine that the hosts can reach`,
    );
  }
}

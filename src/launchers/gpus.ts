import { lookup } from 'node:dns/promises';
import os from 'node:os';
import { WorkerEnvironmentError } from '../errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import { CUDA_VISIBLE_DEVICES } from '../job/worker-environment.js';

/**
 * How a configured list of GPU indexes is divided among workers (local: `local.gpus` among all workers; MPI:
 * `mpi.hosts[].gpus` among the ranks on that host). Worker in slot s (its worker ID on the local cluster, its
 * local rank on an MPI host) asking for g GPUs gets the list's entries s*g .. s*g+g-1: distinct for distinct
 * slots, the same after a restart, and a worker added by scaling (the next ID) gets ones nobody holds. Loaded by
 * the worker runtime: no zod, no spec schema.
 */
export { CUDA_VISIBLE_DEVICES };

/** The GPUs of the worker in `slot`, or undefined when the list has too few for it. */
export function gpusOfSlot(list: readonly number[], perWorker: number, slot: number): number[] | undefined {
  if (perWorker <= 0) return [];
  const from = slot * perWorker;
  return from + perWorker <= list.length ? list.slice(from, from + perWorker) : undefined;
}

/** How many workers (slots) a list can serve at `perWorker` GPUs each. */
export function slotsOf(list: readonly number[], perWorker: number): number {
  return perWorker <= 0 ? Number.POSITIVE_INFINITY : Math.floor(list.length / perWorker);
}

/**
 * What CUDA_VISIBLE_DEVICES says for these GPUs. A worker on a machine with a GPU list that asked for none
 * gets "" (no GPU visible), so it cannot take one given to another worker.
 */
export function cudaVisibleDevices(gpus: readonly number[]): string {
  return gpus.join(',');
}

export function listText(list: readonly number[]): string {
  return `[${list.join(', ')}]`;
}

/**
 * What the MPI launcher hands every rank (ENV.gpuPlan, as JSON): each host's GPU list, in the order of
 * mpi.hosts. A rank finds its host and its local rank on it, and takes its slice.
 */
export interface GpuPlan {
  perWorker: number;
  hosts: { host: string; gpus: number[] | null }[];
}

/** The names and addresses this machine answers to (its host name, short host name, interface addresses). */
export interface MachineNames {
  hostnames: string[];
  addresses: string[];
}

export function thisMachine(): MachineNames {
  const full = os.hostname().toLowerCase();
  const addresses = Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.toLowerCase().replace(/%.*$/, '')));
  return { hostnames: [...new Set([full, full.split('.')[0]!])], addresses };
}

/**
 * Which of `hosts` (mpi.hosts[].host, by index) is this machine. A name or address of its own wins over a
 * loopback entry ("localhost", "127.0.0.1"), which every machine answers to. Several matching entries is an
 * error: the ranks on one machine would count their local ranks against one list but could take another's.
 */
export function matchHost(hosts: readonly string[], me: MachineNames): number[] {
  const own = (h: string) => {
    const x = h.toLowerCase();
    return me.hostnames.includes(x) || me.hostnames.includes(x.split('.')[0]!) || me.addresses.includes(x);
  };
  const exact = hosts.flatMap((h, i) => (!isLoopbackHost(h) && own(h) ? [i] : []));
  if (exact.length > 0) return exact;
  return hosts.flatMap((h, i) => (isLoopbackHost(h) ? [i] : []));
}

/** matchHost, then, when no entry matched by name, the entries' DNS addresses against this machine's. */
async function findHost(hosts: readonly string[], me: MachineNames): Promise<number[]> {
  const found = matchHost(hosts, me);
  if (found.length > 0) return found;
  const resolved = await Promise.all(
    hosts.map(async (h, i) => {
      const addrs = await lookup(h, { all: true }).catch(() => []);
      return addrs.some((a) => me.addresses.includes(a.address.toLowerCase())) ? [i] : [];
    }),
  );
  return resolved.flat();
}

/**
 * For an MPI rank: its CUDA_VISIBLE_DEVICES from the launcher's plan (ENV.gpuPlan) and OpenMPI's local rank,
 * or undefined when the job has no GPU plan. Errors name the host and what to change.
 */
export async function mpiRankGpus(env: NodeJS.ProcessEnv, planVariable: string, me: MachineNames = thisMachine()): Promise<string | undefined> {
  const raw = env[planVariable];
  if (!raw) return undefined;
  let plan: GpuPlan;
  try {
    plan = JSON.parse(raw) as GpuPlan;
  } catch {
    throw new WorkerEnvironmentError(`${planVariable} is not JSON; the worker runtime is meant to be started by a twister2 launcher`);
  }
  const localRank = Number(env.OMPI_COMM_WORLD_LOCAL_RANK ?? env.MPI_LOCALRANKID ?? env.PMIX_LOCAL_RANK);
  if (!Number.isInteger(localRank) || localRank < 0) {
    throw new WorkerEnvironmentError(`GPUs are divided among the ranks of a host by their local rank, but OMPI_COMM_WORLD_LOCAL_RANK is not set; start the job with OpenMPI's mpirun`);
  }
  const names = plan.hosts.map((h) => h.host);
  const found = await findHost(names, me);
  const where = `this machine (${me.hostnames[0]}, ${me.addresses.filter((a) => !isLoopbackHost(a)).join(', ') || 'no other address'})`;
  if (found.length === 0) {
    throw new WorkerEnvironmentError(`${where} is none of mpi.hosts (${names.join(', ')}), so it cannot tell which GPU list is its own; name the hosts in mpi.hosts as they name themselves`);
  }
  if (found.length > 1) {
    throw new WorkerEnvironmentError(`${where} is several of mpi.hosts (${found.map((i) => `"${names[i]}"`).join(', ')}); list each machine once when the hosts have GPUs`);
  }
  const i = found[0]!;
  const { host, gpus } = plan.hosts[i]!;
  if (plan.perWorker <= 0) return gpus ? '' : undefined;
  const mine = gpus ? gpusOfSlot(gpus, plan.perWorker, localRank) : undefined;
  if (!mine) {
    throw new WorkerEnvironmentError(
      `mpi host "${host}" runs at least ${localRank + 1} ranks asking ${plan.perWorker} GPU(s) each (resources.gpus), ${(localRank + 1) * plan.perWorker} in all, ` +
        `but mpi.hosts[${i}].gpus lists ${gpus ? `${gpus.length} ${listText(gpus)}` : 'none'}; list more GPUs, give the host fewer slots, or lower resources.gpus`,
    );
  }
  return cudaVisibleDevices(mine);
}

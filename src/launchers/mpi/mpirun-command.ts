import type { MpiSpec } from './section.js';

export interface MpirunPlan {
  mpi: MpiSpec;
  np: number;
  /** Undefined where OpenMPI reads the hosts from a resource manager (inside a Slurm allocation). */
  hostfile?: string;
  /** The plm_rsh_agent wrapper script; undefined where mpirun does not start its daemons over ssh. */
  sshWrapper?: string;
  /** Names of the variables mpirun forwards to every rank (`-x NAME`); their values stay in mpirun's environment. */
  envNames: string[];
  /** The uid mpirun runs as: `--allow-run-as-root` only for 0. */
  uid: number;
  /** The program every rank runs, e.g. [node, dist/worker/main.js]. */
  program: string[];
}

/**
 * The mpirun command line (without the mpirun program itself). Pure, so the whole matrix of specs is
 * unit-tested. No secret ever goes here: values of the worker environment are forwarded with `-x NAME`
 * from mpirun's own environment, so the job token never shows up in `ps`.
 */
export function mpirunArgs(plan: MpirunPlan): string[] {
  const { mpi } = plan;
  const mca = new Map<string, string>(plan.sshWrapper ? [['plm_rsh_agent', plan.sshWrapper]] : []);
  if (mpi.interfaces) {
    mca.set('btl_tcp_if_include', mpi.interfaces);
    mca.set('oob_tcp_if_include', mpi.interfaces);
  }
  // The user's own MCA parameters win over ours.
  for (const [k, v] of Object.entries(mpi.mca).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) mca.set(k, v);
  return [
    '-np',
    String(plan.np),
    ...(plan.hostfile ? ['--hostfile', plan.hostfile] : []),
    ...(mpi.mapBy ? ['--map-by', mpi.mapBy] : []),
    // A twister2 worker is a Node runtime plus the user's program: pinning it to one core by OpenMPI's
    // default would make them share it, so binding is off unless asked for.
    '--bind-to',
    mpi.bindToCore ? 'core' : 'none',
    ...(mpi.oversubscribe ? ['--oversubscribe'] : []),
    ...(plan.uid === 0 ? ['--allow-run-as-root'] : []),
    // Every output line prefixed with [jobid,rank]<stdout|stderr>: so the launcher can split it by worker.
    '--tag-output',
    ...[...mca].flatMap(([k, v]) => ['--mca', k, v]),
    ...[...plan.envNames].sort().flatMap((n) => ['-x', n]),
    ...plan.program,
  ];
}

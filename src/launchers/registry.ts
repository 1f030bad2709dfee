import { UnknownClusterError } from '../errors.js';
import type { ClusterKind } from '../spec/schema.js';
import type { JobMasterPlacement, Launcher, LauncherFactory } from './launcher.js';
import { LazyLauncher } from './lazy-launcher.js';
import { LocalLauncher } from './local/local-launcher.js';
import { MpiLauncher } from './mpi/mpi-launcher.js';
import * as mpiPlacement from './mpi/placement.js';
import { NomadLauncher } from './nomad/nomad-launcher.js';
import * as nomadPlacement from './nomad/placement.js';
import * as slurmPlacement from './slurm/placement.js';
import { SlurmLauncher } from './slurm/slurm-launcher.js';

/** One line per cluster. A cluster missing here is named in the error, not silently replaced. */
const launchers: Partial<Record<ClusterKind, LauncherFactory>> = {
  local: () => new LocalLauncher(),
  mpi: () => new MpiLauncher(),
  slurm: () => new SlurmLauncher(),
  nomad: () => new NomadLauncher(),
  // @kubernetes/client-node takes a while to load: only jobs that use it pay for it.
  kubernetes: () => new LazyLauncher(async () => new (await import('./k8s/k8s-launcher.js')).KubernetesLauncher()),
};

export function createLauncher(kind: ClusterKind): Launcher {
  return launcherFactory(kind)();
}

/** Checks that a cluster can be used before anything is created for a job. */
export function launcherFactory(kind: ClusterKind): LauncherFactory {
  const factory = launchers[kind];
  if (!factory) {
    const available = Object.keys(launchers).join(', ');
    throw new UnknownClusterError(`cluster '${kind}' has no launcher in this version of twister2 (available: ${available})`);
  }
  return factory;
}

/** Clusters that run a `cluster`-placement job master on one of their own hosts; the rest run it here. */
const placements: Partial<Record<ClusterKind, JobMasterPlacement>> = {
  kubernetes: lazyPlacement(() => import('./k8s/placement.js')),
  mpi: mpiPlacement,
  slurm: slurmPlacement,
  nomad: nomadPlacement,
};

const onThisMachine: JobMasterPlacement = {
  jobMasterCommand: async (_spec, jobDir, node, cli) => ({ program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] }),
  jobMasterProcessSpec: async (spec) => spec,
};

/** A placement whose module is loaded when first used (Kubernetes: @kubernetes/client-node is heavy). */
function lazyPlacement(load: () => Promise<Required<JobMasterPlacement>>): Required<JobMasterPlacement> {
  return {
    jobMasterCommand: async (...a) => (await load()).jobMasterCommand(...a),
    jobMasterProcessSpec: async (...a) => (await load()).jobMasterProcessSpec(...a),
    queueJobMaster: async (...a) => (await load()).queueJobMaster(...a),
  };
}

export function jobMasterPlacement(kind: ClusterKind): JobMasterPlacement {
  return placements[kind] ?? onThisMachine;
}

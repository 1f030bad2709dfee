import { UnknownClusterError } from '../errors.js';
import type { ClusterKind } from '../spec/schema.js';
import type { Launcher, LauncherFactory } from './launcher.js';
import { LocalLauncher } from './local/local-launcher.js';
import { MpiLauncher } from './mpi/mpi-launcher.js';

/** One line per cluster. A cluster missing here is named in the error, not silently replaced. */
const launchers: Partial<Record<ClusterKind, LauncherFactory>> = {
  local: () => new LocalLauncher(),
  mpi: () => new MpiLauncher(),
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

import { LauncherError } from '../../errors.js';
import type { NomadNode } from './nomad-api.js';

/**
 * storage.persistent.hostVolume: its path on each client node declaring it writable (node ID → path). The
 * raw_exec driver cannot mount a volume into a task (Nomad refuses `volume_mount` for it), so the job's
 * `volume` block only places the workers on those nodes, and each worker is told the path on its own node
 * (TWISTER2_HOST_VOLUME_PATHS, read against its `${node.unique.id}`). A node added later is not in the map:
 * its worker fails its set-up saying so.
 */
export function hostVolumePaths(nodes: NomadNode[], volume: string): Record<string, string> {
  const paths: Record<string, string> = {};
  const readOnly: string[] = [];
  for (const n of nodes) {
    const v = n.HostVolumes?.[volume];
    if (!v || n.Status === 'down') continue;
    if (v.ReadOnly) readOnly.push(n.Name);
    else paths[n.ID] = v.Path;
  }
  if (Object.keys(paths).length > 0) return paths;
  const why = readOnly.length > 0 ? `it is read_only on ${readOnly.join(', ')}` : `no client node of the ${nodes.length} the cluster lists declares it`;
  throw new LauncherError(
    `storage.persistent.hostVolume "${volume}" cannot hold the job's files: ${why}; declare it writable in the client config of the nodes to run the job (client { host_volume "${volume}" { path = "/srv/results" } }), or name another host volume`,
  );
}

import { SpecError, UnknownClusterError } from '../errors.js';
import type { ClusterKind, JobSpec } from '../spec/schema.js';
import { ALL_UPLOADERS, anyScale, capabilityProblems, fixedSize, localGpuProblems, localStorageProblems, nomadStorageProblems, persistentFormProblems, type ClusterCapabilities } from './capabilities.js';
import type { JobMasterPlacement, Launcher, LauncherFactory } from './launcher.js';
import { LazyLauncher } from './lazy-launcher.js';
import { LocalLauncher } from './local/local-launcher.js';
import { isMpiLaunch, mpiLaunchName } from './slurm/section.js';
import { kubernetesStorageProblems } from './k8s/storage-problems.js';

/**
 * One entry per cluster: what it can do (checked before anything changes, see capabilities.ts), its
 * launcher, and where a `cluster`-placement job master runs (default: a process on this machine).
 */
interface Backend {
  capabilities: ClusterCapabilities;
  launcher: LauncherFactory;
  placement?: JobMasterPlacement;
}

// Each cluster's launcher and placement but the local one are loaded when a job uses them: with their clients
// (got, @kubernetes/client-node) they take long to load, and a local job needs none of them.
const backends: Record<ClusterKind, Backend> = {
  local: {
    capabilities: {
      scale: anyScale,
      restartOneWorker: { by: 'launcher' },
      jobMasterRecovery: true,
      placements: { client: ALL_UPLOADERS, cluster: ALL_UPLOADERS },
      gpus: { summary: '`local.gpus` divided by worker ID (`CUDA_VISIBLE_DEVICES`)', problems: localGpuProblems },
      storage: { summary: 'memory in `/dev/shm`, scratch in the work dir, `persistent.dir`; sizes checked by the client', problems: localStorageProblems },
    },
    launcher: () => new LocalLauncher(),
  },
  mpi: {
    capabilities: {
      scale: fixedSize('an MPI job has a fixed number of ranks'),
      restartOneWorker: { by: 'none' }, // OpenMPI aborts the whole job when a rank fails
      // On the first host: its journal is in the job directory, which the hosts share; mpirun is detached.
      jobMasterRecovery: true,
      placements: { client: ALL_UPLOADERS, cluster: ALL_UPLOADERS, none: ALL_UPLOADERS },
      // Checked per host with the mpi section (refineMpiSpec): a host's list against the ranks placed on it.
      gpus: { summary: '`mpi.hosts[].gpus` divided by local rank (`CUDA_VISIBLE_DEVICES`)' },
      storage: {
        summary: 'memory in each host\'s `/dev/shm`, scratch under its temp dir, a shared `persistent.dir`; sizes checked by the first rank on each host',
        problems: persistentFormProblems,
      },
    },
    launcher: () => new LazyLauncher(async () => new (await import('./mpi/mpi-launcher.js')).MpiLauncher(), ['resume']),
    placement: lazyPlacement(() => import('./mpi/placement.js'), false),
  },
  slurm: {
    capabilities: {
      scale: fixedSize('a Slurm allocation has a fixed size; submit a job with more workers instead'),
      restartOneWorker: {
        by: 'launcher',
        // A rank started again on its own would be a world of one, not a member of the job's MPI world.
        refusal: (spec) => (spec.slurm && isMpiLaunch(spec.slurm) ? `an MPI job (${mpiLaunchName(spec.slurm)}) does not restart ranks one by one` : undefined),
        except: 'not with slurm.launch: mpirun or slurm.mpi',
      },
      // In the allocation: its journal is in the job directory on the shared file system, its sruns are detached.
      jobMasterRecovery: true,
      // In the allocation, the http and s3 uploaders' credentials cannot be handed over safely.
      placements: { client: ALL_UPLOADERS, cluster: ['local', 'shared', 'sftp'] },
      gpus: {
        summary: '`--gpus-per-task` (not with `slurm.launch: mpirun`)',
        // mpirun's ranks are not Slurm tasks: Slurm would show each of them all the node's GPUs.
        problems: (spec) =>
          spec.resources.gpus > 0 && spec.slurm?.launch === 'mpirun'
            ? [{ path: 'slurm.launch', message: `resources.gpus is ${spec.resources.gpus}, but the ranks mpirun starts (slurm.launch "mpirun") are not Slurm tasks, so Slurm cannot give each its own GPUs; use slurm.launch "srun", or resources.gpus 0` }]
            : [],
      },
      storage: {
        summary: 'memory in each node\'s `/dev/shm`, scratch under `/tmp/twister2/<job>`, a shared `persistent.dir`; sizes checked by the first worker on each node',
        problems: persistentFormProblems,
      },
    },
    launcher: () => new LazyLauncher(async () => new (await import('./slurm/slurm-launcher.js')).SlurmLauncher(), ['restartWorker', 'resume']),
    placement: lazyPlacement(() => import('./slurm/placement.js'), true),
  },
  nomad: {
    capabilities: {
      scale: anyScale,
      restartOneWorker: { by: 'cluster' },
      // Its journal is in Nomad Variables (variables-journal.ts): it outlives the allocation and its node.
      jobMasterRecovery: true,
      // The job master's allocation runs from the job directory, as the workers do.
      placements: { client: ALL_UPLOADERS, cluster: ['local'] },
      gpus: { summary: 'a device request (`nomad.gpuDevice`)' },
      // The paths are on the client nodes: sizes are checked by the first worker on each, a post-stop task per allocation cleans up.
      storage: {
        summary:
          'memory in each client node\'s `/dev/shm`, scratch under `/tmp/twister2/<job>`, `persistent.hostVolume` (a host volume of the nodes); driver `raw_exec`; sizes checked by the first worker on each node, a post-stop task removes what a killed worker left',
        problems: nomadStorageProblems,
      },
    },
    launcher: () => new LazyLauncher(async () => new (await import('./nomad/nomad-launcher.js')).NomadLauncher(), ['addWorkers', 'removeWorkers', 'resume']),
    placement: lazyPlacement(() => import('./nomad/placement.js'), true, true),
  },
  kubernetes: {
    capabilities: {
      scale: {
        summary: 'in whole pods (a multiple of kubernetes.workersPerPod); not with kubernetes.openmpi',
        refusal: (spec, to) => {
          const k8s = spec.kubernetes;
          if (k8s?.openmpi) return 'an OpenMPI job (kubernetes.openmpi) has a fixed number of ranks';
          const wpp = k8s?.workersPerPod ?? 1;
          if (to % wpp === 0) return undefined;
          const lower = Math.floor(to / wpp) * wpp;
          return `it scales by whole pods of ${wpp} workers (kubernetes.workersPerPod) and ${to} is not a multiple of ${wpp}; use ${[lower, lower + wpp].filter((n) => n >= 1).join(' or ')}`;
        },
      },
      restartOneWorker: {
        by: 'cluster',
        refusal: (spec) => (spec.kubernetes?.openmpi ? 'an OpenMPI job (kubernetes.openmpi) does not restart ranks one by one' : undefined),
        except: 'not with kubernetes.openmpi',
      },
      // A job master in a pod cannot read hosts or directories of this machine's view.
      // In its pod: its journal is in the pod's emptyDir, which outlives a restart of its container.
      jobMasterRecovery: true,
      placements: { client: ALL_UPLOADERS, cluster: ['local', 'http', 's3'] },
      gpus: { summary: 'an extended resource (`kubernetes.gpuResource`)' },
      storage: {
        summary: 'pod volumes: memory an `emptyDir` of medium Memory, scratch a disk `emptyDir` (sizes enforced by the kubelet), `persistent.nfs` or `.pvc`',
        problems: kubernetesStorageProblems,
      },
    },
    launcher: () => new LazyLauncher(async () => new (await import('./k8s/k8s-launcher.js')).KubernetesLauncher(), ['addWorkers', 'removeWorkers', 'resume']),
    placement: lazyPlacement(() => import('./k8s/placement.js'), true),
  },
};

export function createLauncher(kind: ClusterKind): Launcher {
  return launcherFactory(kind)();
}

/** Checks that a cluster can be used before anything is created for a job. */
export function launcherFactory(kind: ClusterKind): LauncherFactory {
  return backendOf(kind).launcher;
}

export function capabilitiesOf(kind: ClusterKind): ClusterCapabilities {
  return backendOf(kind).capabilities;
}

/** The clusters, in the registry's order (the README's capability table follows it). */
export function clusterKinds(): ClusterKind[] {
  return Object.keys(backends) as ClusterKind[];
}

/** The README's capability table, made from the entries above (a unit test holds the README to it). */
export function capabilityTable(): string {
  const restart = { launcher: 'yes, by twister2', cluster: "yes, by the cluster's own restart policy", none: 'no' };
  const rows = clusterKinds().map((kind) => {
    const caps = capabilitiesOf(kind);
    const placements = Object.entries(caps.placements)
      .map(([p, kinds]) => `\`${p}\`: ${kinds.length === ALL_UPLOADERS.length ? 'all' : kinds.map((k) => `\`${k}\``).join(', ')}`)
      .join('; ');
    const restartNote = caps.restartOneWorker.except ? ` (${caps.restartOneWorker.except})` : '';
    const recovery = caps.jobMasterRecovery ? 'restarted, the job carries on (`cluster` placement)' : 'the job ends';
    return `| \`${kind}\` | ${caps.scale.summary} | ${restart[caps.restartOneWorker.by]}${restartNote} | ${recovery} | ${placements} | ${caps.gpus.summary} | ${caps.storage.summary} |`;
  });
  return ['| cluster | scale | restart one worker | job master crash | job master placements: uploaders | GPUs (`resources.gpus`) | storage (`storage`) |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** Throws the spec's placement, uploader and restart problems on its cluster as a SpecError (exit 2). */
export function checkCapabilities(spec: JobSpec, source?: string): void {
  const problems = capabilityProblems(capabilitiesOf(spec.cluster), spec);
  if (problems.length > 0) throw new SpecError(problems, source);
}

/** A cluster missing here (a spec from a newer twister2) is named in the error, not silently replaced. */
function backendOf(kind: ClusterKind): Backend {
  const backend = (backends as Partial<Record<string, Backend>>)[kind];
  if (!backend) {
    const available = Object.keys(backends).join(', ');
    throw new UnknownClusterError(`cluster '${kind}' has no launcher in this version of twister2 (available: ${available})`);
  }
  return backend;
}

const onThisMachine: JobMasterPlacement = {
  jobMasterCommand: async (_spec, jobDir, node, cli) => ({ program: node, args: [cli, 'jobmaster', '--job-dir', jobDir] }),
  jobMasterProcessSpec: async (spec) => spec,
};

/** A placement whose module is loaded when first used; with queueJobMaster and journalStore only if it has them (callers tell by that). */
function lazyPlacement(load: () => Promise<JobMasterPlacement>, queues: boolean, journals = false): JobMasterPlacement {
  return {
    jobMasterCommand: async (...a) => (await load()).jobMasterCommand(...a),
    jobMasterProcessSpec: async (...a) => (await load()).jobMasterProcessSpec(...a),
    ...(queues ? { queueJobMaster: async (...a: Parameters<NonNullable<JobMasterPlacement['queueJobMaster']>>) => (await load()).queueJobMaster!(...a) } : {}),
    ...(journals ? { journalStore: async (...a: Parameters<NonNullable<JobMasterPlacement['journalStore']>>) => (await load()).journalStore!(...a) } : {}),
  };
}

export function jobMasterPlacement(kind: ClusterKind): JobMasterPlacement {
  return backendOf(kind).placement ?? onThisMachine;
}

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { specProblems } from '../../helpers/spec-problems.js';
import { scaleRefusal } from '../../../src/launchers/capabilities.js';
import { capabilitiesOf, capabilityTable, clusterKinds, createLauncher, jobMasterPlacement } from '../../../src/launchers/registry.js';
import { parseSpec } from '../../../src/spec/validate.js';

const ok = { name: 'job', workers: 2, worker: { command: 'true' } };
const mpi = { cluster: 'mpi', mpi: { hosts: [{ host: 'localhost', slots: 2 }] } };
const k8s = { cluster: 'kubernetes' };

const problems = specProblems;

describe('capabilities in spec validation', () => {
  it('refuses a job master placement the cluster does not have', () => {
    expect(problems({ ...ok, jobMaster: { placement: 'none' } })).toMatch(/jobMaster.placement: cluster "local" has no job master placement "none" \("none", no job master, is for plain MPI programs\); it has "client", "cluster"/);
    expect(problems({ ...ok, ...mpi, jobMaster: { placement: 'none' } })).toBe('');
  });

  it('refuses an uploader the placement does not take, naming what it takes', () => {
    const http = { kind: 'http', http: { url: 'http://10.0.0.1:8080' } };
    expect(problems({ ...ok, cluster: 'slurm', jobMaster: { placement: 'cluster' }, uploader: http })).toMatch(
      /uploader.kind: cluster "slurm" with jobMaster.placement "cluster" does not take uploader "http"; use "local", "shared", "sftp", or jobMaster.placement "client"/,
    );
    expect(problems({ ...ok, cluster: 'slurm', uploader: http })).toBe('');
    const shared = { kind: 'shared', shared: { dir: '/nfs' } };
    expect(problems({ ...ok, cluster: 'kubernetes', uploader: shared })).toMatch(/cluster "kubernetes" with jobMaster.placement "cluster" does not take uploader "shared"; use "local", "http", "s3"/);
    expect(problems({ ...ok, cluster: 'nomad', jobMaster: { placement: 'cluster' }, uploader: shared })).toMatch(/does not take uploader "shared"; use "local", or jobMaster.placement "client"/);
  });

  it('refuses restarts where a worker cannot be restarted alone', () => {
    expect(problems({ ...ok, ...mpi, restart: { maxRestarts: 1 } })).toMatch(/restart.maxRestarts: cluster "mpi" cannot restart one worker, so restart.maxRestarts must be 0 \(got 1\)/);
    expect(problems({ ...ok, cluster: 'kubernetes', kubernetes: { openmpi: true }, restart: { maxRestarts: 2 } })).toMatch(/OpenMPI job .* does not restart ranks one by one/);
    expect(problems({ ...ok, cluster: 'kubernetes', restart: { maxRestarts: 2 } })).toBe('');
    expect(problems({ ...ok, cluster: 'slurm', slurm: { mpi: 'pmix' }, restart: { maxRestarts: 1 } })).toMatch(
      /restart.maxRestarts: an MPI job \(slurm.mpi: pmix\) does not restart ranks one by one, so restart.maxRestarts must be 0 \(got 1\)/,
    );
    expect(problems({ ...ok, cluster: 'slurm', slurm: { launch: 'mpirun' }, restart: { maxRestarts: 1 } })).toMatch(/an MPI job \(slurm.launch: mpirun\) does not restart ranks/);
    expect(problems({ ...ok, cluster: 'slurm', restart: { maxRestarts: 1 } })).toBe('');
  });
});

describe('scale capability', () => {
  it('names the cluster and what it can do', () => {
    const spec = (raw: Record<string, unknown>) => parseSpec({ ...ok, ...raw });
    expect(scaleRefusal(capabilitiesOf('local'), spec({}), 2, 5)).toBeUndefined();
    expect(scaleRefusal(capabilitiesOf('nomad'), spec({ cluster: 'nomad' }), 2, 1)).toBeUndefined();
    expect(scaleRefusal(capabilitiesOf('kubernetes'), spec({ cluster: 'kubernetes', kubernetes: { workersPerPod: 2 } }), 2, 6)).toBeUndefined();
    expect(scaleRefusal(capabilitiesOf('kubernetes'), spec({ cluster: 'kubernetes', kubernetes: { workersPerPod: 2 } }), 2, 5)).toMatch(/use 4 or 6/);
    expect(scaleRefusal(capabilitiesOf('mpi'), spec(mpi), 2, 3)).toMatch(/^cluster "mpi" cannot scale this job from 2 to 3 workers/);
  });
});

describe('the registry', () => {
  it('declares what each launcher implements: scaling where scale is allowed, restartWorker where twister2 restarts', () => {
    for (const kind of clusterKinds()) {
      const caps = capabilitiesOf(kind);
      const launcher = createLauncher(kind);
      expect([kind, typeof launcher.addWorkers, typeof launcher.removeWorkers]).toEqual([kind, ...Array(2).fill(caps.scale.fixed ? 'undefined' : 'function')]);
      expect([kind, typeof launcher.restartWorker]).toEqual([kind, caps.restartOneWorker.by === 'launcher' ? 'function' : 'undefined']);
    }
  });

  it('stands for each lazily loaded placement with the functions the module has (submit tells a queued job master by queueJobMaster)', async () => {
    const modules = { mpi: import('../../../src/launchers/mpi/placement.js'), slurm: import('../../../src/launchers/slurm/placement.js'), nomad: import('../../../src/launchers/nomad/placement.js'), kubernetes: import('../../../src/launchers/k8s/placement.js') };
    for (const [kind, mod] of Object.entries(modules)) {
      const placement = jobMasterPlacement(kind as keyof typeof modules);
      const real = (await mod) as Record<string, unknown>;
      expect([kind, typeof placement.queueJobMaster, typeof placement.jobMasterCommand, typeof placement.jobMasterProcessSpec]).toEqual([kind, typeof real.queueJobMaster, typeof real.jobMasterCommand, typeof real.jobMasterProcessSpec]);
    }
    expect(jobMasterPlacement('local').queueJobMaster).toBeUndefined();
  });

  it('is what the README\'s capability table says', () => {
    expect(readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')).toContain(capabilityTable());
  });
});

describe('storage by cluster', () => {
  it('local: the client checks the sizes against this machine; a size that fits passes', () => {
    expect(problems({ ...ok, storage: { memory: { size: '1Mi' }, scratch: { size: '1Mi' } } })).toBe('');
    expect(problems({ ...ok, storage: { memory: { size: '100Ti' } } })).toMatch(/storage\.memory\.size: storage\.memory\.size is 100Ti, but \/dev\/shm on host .* \(this machine\) has .* free; ask for less in storage\.memory\.size/);
    expect(problems({ ...ok, storage: { scratch: { size: '100Ti' } } })).toMatch(/storage\.scratch\.size: storage\.scratch\.size is 100Ti, but .* free; ask for less in storage\.scratch\.size, or free disk there \(local\.workDir sets where\)/);
  });

  it('MPI, Slurm and Nomad leave the sizes to the first worker on each host', () => {
    expect(problems({ ...ok, ...mpi, storage: { memory: { size: '100Ti' } } })).toBe('');
    expect(problems({ ...ok, cluster: 'slurm', storage: { memory: { size: '100Ti' } } })).toBe('');
    expect(problems({ ...ok, cluster: 'nomad', storage: { memory: { size: '100Ti' }, scratch: {}, persistent: { hostVolume: 'results', logs: true } } })).toBe('');
  });

  it('storage.persistent: dir on local, MPI and Slurm; nfs or pvc on Kubernetes; any other is refused naming the field, its value and the fix', () => {
    const nfs = { persistent: { nfs: { server: 'nfs1', path: '/exports/r' } } };
    const pvc = { persistent: { pvc: { storageClass: 'rwx', size: '1Gi' } } };
    for (const cluster of [{}, mpi, { cluster: 'slurm' }]) {
      expect(problems({ ...ok, ...cluster, storage: nfs })).toMatch(/storage\.persistent\.nfs: storage\.persistent\.nfs \{"server":"nfs1","path":"\/exports\/r"\} is for cluster "kubernetes", not "(local|mpi|slurm)"; use storage\.persistent\.dir \(a directory every worker's host mounts, e\.g\. \/nfs\/results\)$/);
      expect(problems({ ...ok, ...cluster, storage: pvc })).toMatch(/storage\.persistent\.pvc: storage\.persistent\.pvc \{.*"storageClass":"rwx".*\} is for cluster "kubernetes", not "(local|mpi|slurm)"; use storage\.persistent\.dir/);
      expect(problems({ ...ok, ...cluster, storage: { persistent: { dir: '/nfs/r' } } })).toBe('');
    }
    expect(problems({ ...ok, ...k8s, storage: { persistent: { dir: '/nfs/r' } } })).toBe(
      'invalid job spec:\n  - storage.persistent.dir: storage.persistent.dir "/nfs/r" is for cluster "local", "mpi", "slurm", not "kubernetes"; use storage.persistent.nfs ({ server, path }: an NFS export mounted in every worker pod) or storage.persistent.pvc ({ storageClass, size }: a ReadWriteMany claim the job creates)',
    );
    expect(problems({ ...ok, ...k8s, storage: { memory: { size: '1Gi' }, scratch: {}, ...nfs } })).toBe('');
    expect(problems({ ...ok, ...k8s, storage: pvc })).toBe('');
  });

  it('Kubernetes: a part of storage also asked for in kubernetes.volumes is refused naming both', () => {
    const both = {
      storage: { memory: { size: '1Gi' }, scratch: {}, persistent: { pvc: { storageClass: 'rwx', size: '1Gi' } } },
      kubernetes: { volumes: { memory: {}, disk: { sizeLimit: '1Gi' }, persistent: { nfs: { server: 'nfs1', path: '/e' } } } },
    };
    const message = problems({ ...ok, cluster: 'kubernetes', ...both });
    expect(message).toMatch(/storage\.memory: storage\.memory and kubernetes\.volumes\.memory both ask for a memory-backed volume; keep one: storage\.memory \(the same meaning on every cluster, TWISTER2_MEMORY_DIR\) or kubernetes\.volumes\.memory/);
    expect(message).toMatch(/storage\.scratch: storage\.scratch and kubernetes\.volumes\.disk both ask for a disk emptyDir/);
    expect(message).toMatch(/storage\.persistent: storage\.persistent and kubernetes\.volumes\.persistent both ask for a kept NFS or PVC volume/);
    // Different parts from each side go together, unless a mountPath of kubernetes.volumes is where a part of storage goes.
    expect(problems({ ...ok, cluster: 'kubernetes', storage: { memory: { size: '1Gi' } }, kubernetes: { volumes: { disk: { sizeLimit: '1Gi' } } } })).toBe('');
    expect(problems({ ...ok, cluster: 'kubernetes', storage: { memory: { size: '1Gi' } }, kubernetes: { volumes: { disk: { sizeLimit: '1Gi', mountPath: '/twister2/memory/x' } } } })).toBe(
      'invalid job spec:\n  - kubernetes.volumes.disk.mountPath: "/twister2/memory/x" overlaps where storage.memory is mounted (/twister2/memory); choose another mountPath',
    );
  });

  it('Kubernetes: persistent.logs needs the job master in its pod, which mounts the volume', () => {
    const storage = { persistent: { nfs: { server: 'nfs1', path: '/e' }, logs: true } };
    expect(problems({ ...ok, ...k8s, storage })).toBe('');
    expect(problems({ ...ok, ...k8s, jobMaster: { placement: 'client' }, storage })).toMatch(
      /storage\.persistent\.logs: storage\.persistent\.logs is true, but the job master runs in the client \(jobMaster\.placement "client"\), which does not mount storage\.persistent\.nfs; use jobMaster\.placement "cluster"/,
    );
  });

  it('each form of storage.persistent only on its clusters, naming the field, the value and the form to use', () => {
    expect(problems({ ...ok, cluster: 'nomad', storage: { persistent: { dir: '/nfs/results' } } })).toMatch(
      /storage\.persistent\.dir: storage\.persistent\.dir "\/nfs\/results" is for cluster "local", "mpi", "slurm", not "nomad"; use storage\.persistent\.hostVolume \(the name of a host volume the Nomad client nodes declare/,
    );
    for (const cluster of [{}, mpi, { cluster: 'slurm' }]) {
      expect(problems({ ...ok, ...cluster, storage: { persistent: { hostVolume: 'results' } } })).toMatch(
        /storage\.persistent\.hostVolume: storage\.persistent\.hostVolume "results" is for cluster "nomad", not "(local|mpi|slurm)"; use storage\.persistent\.dir \(a directory every worker's host mounts/,
      );
    }
    expect(problems({ ...ok, storage: { persistent: { dir: '/nfs/results' } } })).toBe('');
  });

  it('Nomad gives storage with driver raw_exec only: the others give each task its own /dev/shm and /tmp', () => {
    expect(problems({ ...ok, cluster: 'nomad', nomad: { driver: 'exec' }, storage: { scratch: {} } })).toMatch(
      /nomad\.driver: storage on nomad is each client node's \/dev\/shm and \/tmp, shared by the job's workers there, which driver "exec" does not give \(each task has its own\); use nomad\.driver "raw_exec", or remove storage/,
    );
    expect(problems({ ...ok, cluster: 'nomad', nomad: { driver: 'exec' } })).toBe('');
  });
});

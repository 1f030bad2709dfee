import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { specProblems } from '../../helpers/spec-problems.js';
import { WorkerEnvironmentError } from '../../../src/errors.js';
import { scaleRefusal } from '../../../src/launchers/capabilities.js';
import { visibleGpus } from '../../../src/job/worker-environment.js';
import { cudaVisibleDevices, gpusOfSlot, matchHost, mpiRankGpus, type GpuPlan, type MachineNames } from '../../../src/launchers/gpus.js';
import { mpiGpuPlan, ranksPerHost } from '../../../src/launchers/mpi/section.js';
import { capabilitiesOf } from '../../../src/launchers/registry.js';
import { parseSpec } from '../../../src/spec/validate.js';

const ok = { name: 'job', workers: 4, worker: { command: 'true' } };

const problems = specProblems;

describe('dividing a GPU list', () => {
  it('gives each slot its own GPUs, the same ones every time, and none beyond the list', () => {
    const list = [0, 1, 2, 3];
    expect([0, 1, 2, 3].map((s) => gpusOfSlot(list, 1, s))).toEqual([[0], [1], [2], [3]]);
    expect(gpusOfSlot(list, 1, 4)).toBeUndefined();
    expect([0, 1].map((s) => gpusOfSlot([7, 5, 3, 1], 2, s))).toEqual([[7, 5], [3, 1]]);
    expect(gpusOfSlot([7, 5, 3], 2, 1)).toBeUndefined(); // half a share is no share
    expect(gpusOfSlot(list, 0, 9)).toEqual([]);
    expect(cudaVisibleDevices([3, 1])).toBe('3,1');
    expect(cudaVisibleDevices([])).toBe('');
    expect(visibleGpus({ CUDA_VISIBLE_DEVICES: '3,1' })).toEqual(['3', '1']);
    expect(visibleGpus({ CUDA_VISIBLE_DEVICES: '' })).toEqual([]);
    expect(visibleGpus({ CUDA_VISIBLE_DEVICES: 'GPU-8f2c' })).toEqual(['GPU-8f2c']);
    expect(visibleGpus({})).toBeUndefined();
  });

  it('no two slots share a GPU, for any list and share size', () => {
    for (let n = 0; n <= 9; n++) {
      const list = Array.from({ length: n }, (_, i) => 10 + i);
      for (let g = 1; g <= 4; g++) {
        const given = Array.from({ length: 12 }, (_, s) => gpusOfSlot(list, g, s)).filter((x) => x !== undefined);
        expect(given).toHaveLength(Math.floor(n / g));
        const all = given.flat();
        expect(new Set(all).size).toBe(all.length);
      }
    }
  });
});

describe('local.gpus', () => {
  it('takes a list of distinct indexes, and refuses anything else by the field', () => {
    expect(parseSpec({ ...ok, local: { gpus: [0, 1, 2, 3] } }).local.gpus).toEqual([0, 1, 2, 3]);
    expect(problems({ ...ok, local: { gpus: [0, 1, 1] } })).toMatch(/local.gpus: GPU 1 is listed twice; list each GPU once/);
    expect(problems({ ...ok, local: { gpus: [-1] } })).toMatch(/local\.gpus\[0\]: expected a GPU index from 0 \(got -1\)/);
    expect(problems({ ...ok, local: { gpus: '0,1' } })).toMatch(/local.gpus: expected a list of GPU indexes such as \[0, 1, 2, 3\] \(got "0,1"\)/);
    expect(problems({ ...ok, local: { gpus: [0.5] } })).toMatch(/local\.gpus\[0\]: expected a whole GPU index/);
  });

  it('4 workers × 1 GPU of [0, 1, 2, 3] fit; a fifth worker, or GPUs without a list, are refused naming the numbers and the fix', () => {
    expect(problems({ ...ok, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] } })).toBe('');
    expect(problems({ ...ok, workers: 5, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] } })).toMatch(
      new RegExp(`resources.gpus: 5 workers × 1 GPU\\(s\\) each \\(resources.gpus\\) need 5 GPUs, but local.gpus lists 4 on this machine \\(${os.hostname()}\\) \\[0, 1, 2, 3\\], and workers never share one; use at most 4 worker\\(s\\), or list more GPUs in local.gpus`),
    );
    expect(problems({ ...ok, workers: 2, resources: { gpus: 3 }, local: { gpus: [0, 1, 2, 3] } })).toMatch(/need 6 GPUs.*use at most 1 worker\(s\), fewer GPUs per worker/);
    expect(problems({ ...ok, resources: { gpus: 1 } })).toMatch(/resources.gpus: each worker asks for 1 GPU\(s\) but local.gpus does not list the GPUs of this machine .*; set local.gpus to their indexes \(e.g. \[0, 1, 2, 3\]\), or resources.gpus to 0/);
    // A list with no request is fine (the workers then see no GPU).
    expect(problems({ ...ok, local: { gpus: [0] } })).toBe('');
    // Sharing is not on offer: a CUDA_VISIBLE_DEVICES of the spec's own would undo the division.
    expect(problems({ ...ok, resources: { gpus: 1 }, local: { gpus: [0, 1, 2, 3] }, worker: { command: 'true', env: { CUDA_VISIBLE_DEVICES: '0' } } })).toMatch(
      /worker.env.CUDA_VISIBLE_DEVICES: each worker's CUDA_VISIBLE_DEVICES is set from resources.gpus .*; remove it from worker.env/,
    );
    expect(problems({ ...ok, worker: { command: 'true', env: { CUDA_VISIBLE_DEVICES: '0' } } })).toBe('');
  });

  it('a scale past the list is refused, one within it is not', () => {
    const spec = parseSpec({ ...ok, workers: 2, resources: { gpus: 1 }, local: { gpus: [0, 1, 2] } });
    const caps = capabilitiesOf('local');
    expect(scaleRefusal(caps, spec, 2, 3)).toBeUndefined();
    expect(scaleRefusal(caps, spec, 2, 4)).toMatch(/^cluster "local" cannot scale this job from 2 to 4 workers: 4 workers × 1 GPU\(s\) each .* need 4 GPUs, but local.gpus lists 3 .*; the job keeps running with 2$/);
  });
});

describe('GPUs on MPI hosts', () => {
  const mpi = (hosts: unknown[], extra: Record<string, unknown> = {}) => ({ cluster: 'mpi', jobMaster: { host: '10.0.0.1' }, mpi: { hosts, ...extra } });

  it('places ranks as OpenMPI fills slots in order; with mapBy any host may get its slots', () => {
    expect(ranksPerHost(3, [{ slots: 2 }, { slots: 2 }], undefined)).toEqual([2, 1]);
    expect(ranksPerHost(2, [{ slots: 2 }, { slots: 2 }], undefined)).toEqual([2, 0]);
    expect(ranksPerHost(2, [{ slots: 4 }, { slots: 1 }], 'node')).toEqual([2, 1]);
  });

  it('checks each host\'s list against the ranks it runs, naming the host', () => {
    const two = [{ host: 'n1', slots: 2, gpus: [0, 1] }, { host: 'n2', slots: 2, gpus: [0, 1] }];
    expect(problems({ ...ok, resources: { gpus: 1 }, ...mpi(two) })).toBe('');
    expect(problems({ ...ok, resources: { gpus: 2 }, ...mpi(two) })).toMatch(
      /mpi\.hosts\[0\]\.gpus: mpi host "n1" runs 2 ranks × 2 GPU\(s\) \(resources.gpus\) = 4 GPUs, but its gpus list has 2 \[0, 1\]; list the host's GPU indexes in mpi.hosts\[0\].gpus, give it fewer slots, or lower resources.gpus/,
    );
    expect(problems({ ...ok, resources: { gpus: 1 }, ...mpi([{ host: 'n1', slots: 2, gpus: [0, 1] }, { host: 'n2', slots: 2 }]) })).toMatch(/mpi\.hosts\[1\]\.gpus: mpi host "n2" runs 2 ranks .* but it has no gpus list/);
    // 2 ranks fill n1's slots: n2 runs none and needs no list.
    expect(problems({ ...ok, workers: 2, resources: { gpus: 1 }, ...mpi([{ host: 'n1', slots: 2, gpus: [0, 1] }, { host: 'n2', slots: 2 }]) })).toBe('');
    expect(problems({ ...ok, workers: 2, resources: { gpus: 1 }, ...mpi([{ host: 'n1', slots: 2, gpus: [0, 1] }, { host: 'n2', slots: 2 }], { mapBy: 'node' }) })).toMatch(/mpi host "n2" may run up to 2 \(its slots, with mpi.mapBy\) ranks/);
    expect(problems({ ...ok, workers: 6, resources: { gpus: 1 }, ...mpi(two, { oversubscribe: true }) })).toMatch(/mpi.oversubscribe: with more ranks \(6\) than slots \(4\) OpenMPI decides/);
    expect(problems({ ...ok, resources: { gpus: 1 }, cluster: 'mpi', mpi: { hostfile: '/etc/hosts.mpi' } })).toMatch(/mpi.hostfile: resources.gpus is 1, and GPUs are divided per host from mpi.hosts\[\].gpus/);
    expect(problems({ ...ok, ...mpi([{ host: 'n1', slots: 4, gpus: [2, 2] }]) })).toMatch(/mpi\.hosts\[0\]\.gpus: GPU 2 is listed twice/);
  });

  it('hands the ranks a plan only when GPUs are asked for or listed', () => {
    const spec = parseSpec({ ...ok, resources: { gpus: 1 }, ...mpi([{ host: 'n1', slots: 2, gpus: [0, 1] }, { host: 'n2', slots: 2, gpus: [2, 3] }]) });
    expect(mpiGpuPlan(spec.mpi!, 1)).toEqual({ perWorker: 1, hosts: [{ host: 'n1', gpus: [0, 1] }, { host: 'n2', gpus: [2, 3] }] });
    expect(mpiGpuPlan(parseSpec({ ...ok, ...mpi([{ host: 'n1', slots: 4 }]) }).mpi!, 0)).toBeUndefined();
  });
});

describe('an MPI rank taking its GPUs', () => {
  const me: MachineNames = { hostnames: ['node2.example', 'node2'], addresses: ['127.0.0.1', '10.0.0.12', '::1'] };
  const plan: GpuPlan = { perWorker: 1, hosts: [{ host: '10.0.0.11', gpus: [0, 1] }, { host: '10.0.0.12', gpus: [4, 5] }] };
  const env = (localRank: number, p: GpuPlan = plan) => ({ T2_PLAN: JSON.stringify(p), OMPI_COMM_WORLD_LOCAL_RANK: String(localRank) });

  it('finds its host by name or address, preferring either to a loopback entry', () => {
    expect(matchHost(['10.0.0.11', '10.0.0.12'], me)).toEqual([1]);
    expect(matchHost(['node1', 'node2'], me)).toEqual([1]);
    expect(matchHost(['node2.example'], me)).toEqual([0]);
    expect(matchHost(['localhost', 'node2'], me)).toEqual([1]);
    expect(matchHost(['localhost', 'node1'], me)).toEqual([0]);
  });

  it('takes its local rank\'s share of its host\'s list', async () => {
    expect(await mpiRankGpus(env(0), 'T2_PLAN', me)).toBe('4');
    expect(await mpiRankGpus(env(1), 'T2_PLAN', me)).toBe('5');
    expect(await mpiRankGpus({}, 'T2_PLAN', me)).toBeUndefined();
    expect(await mpiRankGpus(env(1, { ...plan, perWorker: 0 }), 'T2_PLAN', me)).toBe('');
  });

  it('fails naming the host when its list is short, or when it cannot tell which host it is', async () => {
    await expect(mpiRankGpus(env(2), 'T2_PLAN', me)).rejects.toThrow(/mpi host "10.0.0.12" runs at least 3 ranks asking 1 GPU\(s\) each \(resources.gpus\), 3 in all, but mpi.hosts\[1\].gpus lists 2 \[4, 5\]/);
    await expect(mpiRankGpus(env(0, { perWorker: 1, hosts: [{ host: '10.9.9.9', gpus: [0] }] }), 'T2_PLAN', me)).rejects.toThrow(WorkerEnvironmentError);
    await expect(mpiRankGpus(env(0, { perWorker: 1, hosts: [{ host: 'node2', gpus: [0] }, { host: '10.0.0.12', gpus: [1] }] }), 'T2_PLAN', me)).rejects.toThrow(/is several of mpi.hosts \("node2", "10.0.0.12"\)/);
    await expect(mpiRankGpus({ T2_PLAN: JSON.stringify(plan) }, 'T2_PLAN', me)).rejects.toThrow(/OMPI_COMM_WORLD_LOCAL_RANK is not set/);
  });
});

describe('GPUs on Slurm', () => {
  it('refuses GPUs for ranks mpirun starts in the allocation', () => {
    expect(problems({ ...ok, cluster: 'slurm', resources: { gpus: 1 }, slurm: { launch: 'mpirun' } })).toMatch(/slurm.launch: resources.gpus is 1, but the ranks mpirun starts .* are not Slurm tasks/);
    expect(problems({ ...ok, cluster: 'slurm', resources: { gpus: 1 } })).toBe('');
  });
});

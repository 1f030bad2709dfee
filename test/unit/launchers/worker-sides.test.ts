import { describe, expect, it } from 'vitest';
import { WorkerIdError } from '../../../src/errors.js';
import { resolveWorkerId } from '../../../src/launchers/worker-sides.js';

describe('worker IDs, per cluster', () => {
  it.each([
    [{ TWISTER2_CLUSTER: 'local', TWISTER2_WORKER_ID: '3' }, 3, 'TWISTER2_WORKER_ID'],
    [{ TWISTER2_CLUSTER: 'mpi', OMPI_COMM_WORLD_RANK: '2', PMIX_RANK: '9' }, 2, 'OMPI_COMM_WORLD_RANK'],
    [{ TWISTER2_CLUSTER: 'mpi', PMI_RANK: '4' }, 4, 'PMI_RANK'],
    [{ TWISTER2_CLUSTER: 'slurm', SLURM_PROCID: '5' }, 5, 'SLURM_PROCID'],
    // launch: mpirun inside the allocation: the rank, not the batch step's proc ID.
    [{ TWISTER2_CLUSTER: 'slurm', SLURM_PROCID: '0', OMPI_COMM_WORLD_RANK: '6' }, 6, 'OMPI_COMM_WORLD_RANK'],
    // A restarted Slurm worker is given its ID.
    [{ TWISTER2_CLUSTER: 'slurm', SLURM_PROCID: '0', TWISTER2_WORKER_ID: '7' }, 7, 'TWISTER2_WORKER_ID'],
    [{ TWISTER2_CLUSTER: 'nomad', NOMAD_ALLOC_INDEX: '1' }, 1, 'NOMAD_ALLOC_INDEX'],
    [{ TWISTER2_CLUSTER: 'kubernetes', TWISTER2_POD_NAME: 'j-w0-3', TWISTER2_CONTAINER_INDEX: '1', TWISTER2_WORKERS_PER_POD: '2', TWISTER2_WORKER_ID_OFFSET: '0' }, 7, 'TWISTER2_POD_NAME'],
    [{ TWISTER2_CLUSTER: 'kubernetes', TWISTER2_POD_NAME: 'j-w0-3', TWISTER2_CONTAINER_INDEX: '0', OMPI_COMM_WORLD_RANK: '5' }, 5, 'OMPI_COMM_WORLD_RANK'],
  ])('%o → %i', async (env, workerId, source) => {
    expect(await resolveWorkerId(env)).toEqual({ workerId, source });
  });

  it('reads only its own cluster\'s sources, and says which it looked for', async () => {
    await expect(resolveWorkerId({ TWISTER2_CLUSTER: 'nomad', SLURM_PROCID: '1' })).rejects.toThrow(/none of TWISTER2_WORKER_ID, NOMAD_ALLOC_INDEX is set/);
    await expect(resolveWorkerId({ TWISTER2_CLUSTER: 'mpi', OMPI_COMM_WORLD_RANK: 'x' })).rejects.toThrow(/OMPI_COMM_WORLD_RANK="x" is not a worker ID/);
    await expect(resolveWorkerId({ SLURM_PROCID: '1' })).rejects.toThrow(WorkerIdError);
    await expect(resolveWorkerId({ TWISTER2_CLUSTER: 'moon' })).rejects.toThrow(/TWISTER2_CLUSTER is "moon", not a cluster of this twister2/);
  });
});

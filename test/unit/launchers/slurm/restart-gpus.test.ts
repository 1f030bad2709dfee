import { describe, expect, it } from 'vitest';
import { WorkerEnvironmentError } from '../../../../src/errors.js';
import { indexList, jobGpusByNodeGroup } from '../../../../src/launchers/slurm/job-gpus.js';
import { keepPredecessorGpus } from '../../../../src/launchers/slurm/kept-gpus.js';
import { heldGpuIds, takeGpus } from '../../../../src/launchers/worker-sides.js';

describe('a restarted Slurm worker keeps its predecessor\'s GPUs', () => {
  it('narrows the step\'s GPUs to the kept ones, position by position, in every device list', () => {
    const env: NodeJS.ProcessEnv = { TWISTER2_SLURM_KEPT_GPUS: '3', SLURM_STEP_GPUS: '1,3', CUDA_VISIBLE_DEVICES: '1,3', GPU_DEVICE_ORDINAL: '1,3' };
    keepPredecessorGpus(env);
    expect(env).toMatchObject({ SLURM_STEP_GPUS: '3', CUDA_VISIBLE_DEVICES: '3', GPU_DEVICE_ORDINAL: '3' });
  });

  it('under ConstrainDevices (CUDA_VISIBLE_DEVICES numbered 0..n-1) keeps the same GPU by its step-local name', () => {
    const env: NodeJS.ProcessEnv = { TWISTER2_SLURM_KEPT_GPUS: '5,7', SLURM_STEP_GPUS: '4,5,6,7', CUDA_VISIBLE_DEVICES: '0,1,2,3' };
    keepPredecessorGpus(env);
    expect(env).toMatchObject({ SLURM_STEP_GPUS: '5,7', CUDA_VISIBLE_DEVICES: '1,3' });
    expect(env.GPU_DEVICE_ORDINAL).toBeUndefined();
  });

  it('refuses a step that lacks a kept GPU, naming both lists and the fix', () => {
    const env: NodeJS.ProcessEnv = { TWISTER2_SLURM_KEPT_GPUS: '1', SLURM_STEP_GPUS: '0', CUDA_VISIBLE_DEVICES: '0', SLURMD_NODENAME: 'n7' };
    expect(() => keepPredecessorGpus(env)).toThrow(WorkerEnvironmentError);
    expect(() => keepPredecessorGpus(env)).toThrow(/keep its predecessor's GPUs 1 \(TWISTER2_SLURM_KEPT_GPUS\), but Slurm gave its step GPUs 0 \(SLURM_STEP_GPUS\) on node n7; the restart must run on the predecessor's node/);
    expect(env.CUDA_VISIBLE_DEVICES).toBe('0');
  });

  it('refuses device lists that do not match the step\'s', () => {
    expect(() => keepPredecessorGpus({ TWISTER2_SLURM_KEPT_GPUS: '1', SLURM_STEP_GPUS: '0,1', CUDA_VISIBLE_DEVICES: '0' })).toThrow(/CUDA_VISIBLE_DEVICES=0 lists 1 GPUs but SLURM_STEP_GPUS=0,1 lists 2/);
  });

  it('the worker runtime narrows before the program starts, and registers the kept GPUs; a first run registers its own', async () => {
    const restarted: NodeJS.ProcessEnv = { TWISTER2_CLUSTER: 'slurm', TWISTER2_SLURM_KEPT_GPUS: '1', SLURM_STEP_GPUS: '0,1', CUDA_VISIBLE_DEVICES: '0,1' };
    await takeGpus(restarted);
    expect(restarted.CUDA_VISIBLE_DEVICES).toBe('1');
    expect(await heldGpuIds(restarted)).toEqual(['1']);
    const first: NodeJS.ProcessEnv = { TWISTER2_CLUSTER: 'slurm', SLURM_STEP_GPUS: '0', CUDA_VISIBLE_DEVICES: '0' };
    await takeGpus(first);
    expect(first.CUDA_VISIBLE_DEVICES).toBe('0');
    expect(await heldGpuIds(first)).toEqual(['0']);
    expect(await heldGpuIds({ TWISTER2_CLUSTER: 'slurm' })).toBeUndefined();
    expect(await heldGpuIds({ TWISTER2_CLUSTER: 'local', CUDA_VISIBLE_DEVICES: '0' })).toBeUndefined();
  });
});

describe('the GPUs a Slurm job holds per node (scontrol -d show job --oneliner)', () => {
  it('reads each node group\'s GPU indexes, typed or not, and ignores other gres', () => {
    const out =
      'JobId=1001 JobName=j NodeList=t2n0a,t2n0b NumNodes=2 JOB_GRES=gpu:4   Nodes=t2n0a,t2n0b CPU_IDs=0-1 Mem=1000 GRES=gpu:2(IDX:0-1) MinCPUsNode=2 ' +
      '  Nodes=gpu[01-02] CPU_IDs=0-3 Mem=0 GRES=gpu:a100:1(IDX:3),gpu:a100:1(IDX:5),nic:1(IDX:0) MinTmpDiskNode=0 ' +
      '  Nodes=cpu7 CPU_IDs=0 Mem=0 GRES= Features=(null)';
    expect(jobGpusByNodeGroup(out)).toEqual([
      { nodes: 't2n0a,t2n0b', gpus: [0, 1] },
      { nodes: 'gpu[01-02]', gpus: [3, 5] },
      { nodes: 'cpu7', gpus: [] },
    ]);
  });

  it('expands index lists', () => {
    expect(indexList('0-2,5,7-8')).toEqual([0, 1, 2, 5, 7, 8]);
    expect(indexList('N/A')).toEqual([]);
  });
});

import os from 'node:os';
import { WorkerEnvironmentError } from '../../errors.js';
import { CUDA_VISIBLE_DEVICES, ENV } from '../../job/worker-environment.js';

/** What Slurm sets for a step's GPUs, position by position: the node's indexes, and the names CUDA and ROCm use. */
const STEP_GPUS = 'SLURM_STEP_GPUS';
const DEVICE_LISTS = [CUDA_VISIBLE_DEVICES, 'GPU_DEVICE_ORDINAL', 'ROCR_VISIBLE_DEVICES'];

/**
 * A restarted Slurm worker runs as an --overlap step given all of its job's GPUs on its predecessor's node
 * (slurm-launcher.ts): of them it keeps its predecessor's (ENV.slurmKeptGpus, the node's indexes), so it
 * gets the same GPUs and shares none with a running worker. SLURM_STEP_GPUS lists the step's GPUs by the
 * node's indexes, CUDA_VISIBLE_DEVICES (and GPU_DEVICE_ORDINAL, ROCR_VISIBLE_DEVICES) the same GPUs in the
 * same order by the names the step sees (the same indexes, or 0..n-1 under ConstrainDevices): each list
 * is narrowed to the kept positions. Loaded by the worker runtime: no zod.
 */
export function keepPredecessorGpus(env: NodeJS.ProcessEnv): void {
  const kept = split(env[ENV.slurmKeptGpus]);
  const step = split(env[STEP_GPUS]);
  const positions = kept.map((id) => step.indexOf(id));
  if (kept.length === 0 || positions.includes(-1)) {
    throw new WorkerEnvironmentError(
      `this restarted worker is to keep its predecessor's GPUs ${kept.join(',') || '(none listed)'} (${ENV.slurmKeptGpus}), but Slurm gave its step ` +
        `${step.length ? `GPUs ${step.join(',')}` : 'no GPUs'} (${STEP_GPUS}) on node ${env.SLURMD_NODENAME ?? os.hostname()}; ` +
        `the restart must run on the predecessor's node with all of the job's GPUs there (srun --nodelist, --gres=gpu:N)`,
    );
  }
  for (const name of DEVICE_LISTS) {
    const names = split(env[name]);
    if (names.length === 0) continue;
    if (names.length !== step.length) {
      throw new WorkerEnvironmentError(`${name}=${env[name]} lists ${names.length} GPUs but ${STEP_GPUS}=${env[STEP_GPUS]} lists ${step.length}, so this restarted worker cannot tell which are its predecessor's`);
    }
    env[name] = positions.map((p) => names[p]!).join(',');
  }
  env[STEP_GPUS] = kept.join(',');
}

function split(list: string | undefined): string[] {
  return (list ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

import { z } from 'zod';

/**
 * A list of GPU indexes of one machine (`local.gpus`, `mpi.hosts[].gpus`): the numbers CUDA_VISIBLE_DEVICES
 * takes (nvidia-smi's index column). Each index once: twister2 divides the list among the workers, and a
 * GPU listed twice would be given to two of them.
 */
const GPU_LIST_RULE = 'expected a list of GPU indexes such as [0, 1, 2, 3]';

export const gpuIndexesSchema = z
  .array(z.number({ error: 'expected a GPU index: a whole number from 0' }).int('expected a whole GPU index').min(0, 'expected a GPU index from 0').max(1023, 'expected a GPU index below 1024'), {
    error: GPU_LIST_RULE,
  })
  .max(1024, 'expected at most 1024 GPUs')
  .superRefine((list, ctx) => {
    const dup = list.find((g, i) => list.indexOf(g) !== i);
    if (dup !== undefined) {
      ctx.addIssue({ code: 'custom', input: list, message: `GPU ${dup} is listed twice; list each GPU once (workers never share one)` });
    }
  });

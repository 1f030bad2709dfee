import path from 'node:path';
import { UsageError } from '../../errors.js';
import { runJobMasterProcess } from '../../jobmaster/main.js';
import { runWorkerProcess } from '../../worker/runtime.js';

/**
 * Hidden: the job master as its own process, started by `submit --detach` and by cluster launchers
 * (`--job-dir D`), or in its Kubernetes pod (`--in-cluster`, the job from the pod's environment).
 */
export async function jobMasterCommand(jobDir: string | undefined, inCluster: boolean): Promise<number> {
  if (inCluster) return (await import('../../launchers/k8s/in-cluster-jobmaster.js')).runInClusterJobMaster();
  if (!jobDir) throw new UsageError('give --job-dir <dir>, or --in-cluster in a job master pod');
  return runJobMasterProcess(path.resolve(jobDir));
}

/** Hidden: the worker runtime, for launchers that start `twister2 worker` rather than its script. */
export function workerCommand(): Promise<number> {
  return runWorkerProcess();
}

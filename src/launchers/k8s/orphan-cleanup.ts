import { KubeAccount } from './kube-account.js';
import { ENV } from '../../job/worker-environment.js';

/**
 * A worker whose job master is gone (the client was killed) deletes the job's root ConfigMap
 * (TWISTER2_K8S_ROOT) with the pod's service account, whose Role allows exactly that; the garbage collector
 * removes everything else. Otherwise the StatefulSet would keep restarting the workers.
 */
export async function deleteOrphanedRoot(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  if (!env[ENV.k8sRoot] || !env.KUBERNETES_SERVICE_HOST) return;
  const status = await deleteKubernetesRoot(env);
  log(status < 300 || status === 404 ? `deleted the job's root ConfigMap ${env[ENV.k8sRoot]}: its job master is gone` : `could not delete the job's root ConfigMap (HTTP ${status})`);
}

async function deleteKubernetesRoot(env: NodeJS.ProcessEnv): Promise<number> {
  const account = new KubeAccount(env);
  const root = encodeURIComponent(env[ENV.k8sRoot]!);
  return (await account.request('DELETE', `/api/v1/namespaces/${encodeURIComponent(account.namespace)}/configmaps/${root}?propagationPolicy=Background`)).status;
}

import { KubeAccount } from './kube-account.js';
import { ENV } from '../job/worker-environment.js';

/**
 * A worker whose job master is gone (the client was killed) ends its job on clusters that would otherwise
 * keep it running: there a worker that exits is restarted and the job stays registered.
 * - Nomad: stop and purge the job through the URL its launcher gave (TWISTER2_NOMAD_PURGE_URL), with the
 *   task's workload identity (NOMAD_TOKEN), which a cluster with ACLs must allow to purge twister2's jobs.
 * - Kubernetes: delete the job's root ConfigMap (TWISTER2_K8S_ROOT) with the pod's service account, whose
 *   Role allows exactly that; the garbage collector removes everything else.
 */
export async function endOrphanedJob(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  try {
    const purgeUrl = env[ENV.nomadPurgeUrl];
    const root = env[ENV.k8sRoot];
    if (purgeUrl) {
      const res = await fetch(purgeUrl, { method: 'DELETE', headers: env.NOMAD_TOKEN ? { 'X-Nomad-Token': env.NOMAD_TOKEN } : {}, signal: AbortSignal.timeout(10_000) });
      log(res.ok ? 'purged the Nomad job: its job master is gone' : `could not purge the Nomad job (HTTP ${res.status})`);
    }
    if (root && env.KUBERNETES_SERVICE_HOST) {
      const status = await deleteKubernetesRoot(env, root);
      log(status < 300 || status === 404 ? `deleted the job's root ConfigMap ${root}: its job master is gone` : `could not delete the job's root ConfigMap (HTTP ${status})`);
    }
  } catch (err) {
    log(`could not end the orphaned job: ${(err as Error).message}`);
  }
}

async function deleteKubernetesRoot(env: NodeJS.ProcessEnv, root: string): Promise<number> {
  const account = new KubeAccount(env);
  return (await account.request('DELETE', `/api/v1/namespaces/${encodeURIComponent(account.namespace)}/configmaps/${encodeURIComponent(root)}?propagationPolicy=Background`)).status;
}

import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

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
    if (env.TWISTER2_NOMAD_PURGE_URL) {
      const res = await fetch(env.TWISTER2_NOMAD_PURGE_URL, { method: 'DELETE', headers: env.NOMAD_TOKEN ? { 'X-Nomad-Token': env.NOMAD_TOKEN } : {}, signal: AbortSignal.timeout(10_000) });
      log(res.ok ? 'purged the Nomad job: its job master is gone' : `could not purge the Nomad job (HTTP ${res.status})`);
    }
    if (env.TWISTER2_K8S_ROOT && env.KUBERNETES_SERVICE_HOST) {
      const status = await deleteKubernetesRoot(env);
      log(status < 300 || status === 404 ? `deleted the job's root ConfigMap ${env.TWISTER2_K8S_ROOT}: its job master is gone` : `could not delete the job's root ConfigMap (HTTP ${status})`);
    }
  } catch (err) {
    log(`could not end the orphaned job: ${(err as Error).message}`);
  }
}

function deleteKubernetesRoot(env: NodeJS.ProcessEnv): Promise<number> {
  const dir = env.TWISTER2_K8S_ACCOUNT_DIR ?? '/var/run/secrets/kubernetes.io/serviceaccount';
  const token = readFileSync(path.join(dir, 'token'), 'utf8').trim();
  const namespace = env.TWISTER2_NAMESPACE ?? readFileSync(path.join(dir, 'namespace'), 'utf8').trim();
  const host = env.KUBERNETES_SERVICE_HOST!;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port: Number(env.KUBERNETES_SERVICE_PORT ?? 443),
        method: 'DELETE',
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(env.TWISTER2_K8S_ROOT!)}?propagationPolicy=Background`,
        headers: { Authorization: `Bearer ${token}` },
        ca: readFileSync(path.join(dir, 'ca.crt')),
        ...(net.isIP(host) ? {} : { servername: host }),
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

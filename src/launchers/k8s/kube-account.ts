import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { ENV } from '../../job/worker-environment.js';

/**
 * API server calls from inside a pod with the pod's service account: its token, CA and namespace from the
 * mounted account directory (TWISTER2_K8S_ACCOUNT_DIR, default the standard mount), the API server from
 * KUBERNETES_SERVICE_HOST/PORT, as the kubelet sets them. Node's https only: workers load no client library.
 */
export class KubeAccount {
  readonly namespace: string;
  private readonly dir: string;

  constructor(private readonly env: NodeJS.ProcessEnv) {
    if (!env.KUBERNETES_SERVICE_HOST) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod');
    this.dir = env[ENV.k8sAccountDir] ?? '/var/run/secrets/kubernetes.io/serviceaccount';
    this.namespace = env[ENV.namespace] ?? readFileSync(path.join(this.dir, 'namespace'), 'utf8').trim();
  }

  /** One call; the body parsed as JSON when it is JSON. */
  request(method: string, apiPath: string): Promise<{ status: number; body: unknown }> {
    const host = this.env.KUBERNETES_SERVICE_HOST!;
    // Read at each call: the kubelet rotates the projected token.
    const token = readFileSync(path.join(this.dir, 'token'), 'utf8').trim();
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host,
          port: Number(this.env.KUBERNETES_SERVICE_PORT ?? 443),
          method,
          path: apiPath,
          headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
          ca: readFileSync(path.join(this.dir, 'ca.crt')),
          ...(net.isIP(host) ? {} : { servername: host }),
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = JSON.parse(text);
            } catch {
              // Not JSON.
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  }
}

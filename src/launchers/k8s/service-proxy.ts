import https from 'node:https';
import type { KubeApi } from './kube-api.js';
import { loadKubeConfig, type KubeConfigOptions } from './kube-api.js';

/**
 * The client reaches an in-cluster job master through the API server's service proxy
 * (`/api/v1/namespaces/<ns>/services/<service>:<port>/proxy/...`): nothing but the API server needs to be
 * reachable from the client, and only who may proxy to the Service in that namespace gets through. The API
 * server takes Authorization for itself, so the job secret travels in a header of its own.
 */
export function serviceProxyUrl(api: Pick<KubeApi, 'server' | 'namespace'>, service: string, portName: string): string {
  return `${api.server.replace(/\/+$/, '')}/api/v1/namespaces/${encodeURIComponent(api.namespace)}/services/${encodeURIComponent(`${service}:${portName}`)}/proxy`;
}

/** The kubeconfig's TLS material and credentials as an https agent and headers, for a JobMasterClient. */
export async function serviceProxyTransport(opts: KubeConfigOptions): Promise<{ agent: https.Agent; headers: Record<string, string> }> {
  const kc = loadKubeConfig(opts);
  const o: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(o);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
  const agent = new https.Agent({
    keepAlive: true,
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.cert ? { cert: o.cert } : {}),
    ...(o.key ? { key: o.key } : {}),
    ...(o.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    ...(o.servername ? { servername: o.servername } : {}),
  });
  return { agent, headers };
}

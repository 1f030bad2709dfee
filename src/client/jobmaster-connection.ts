import { JobMasterClient } from '../protocol/jobmaster-client.js';
import type { JobRecord } from '../job/job-store.js';

/**
 * The wire client of a job's recorded job master: direct, or, for a job master in a Kubernetes pod,
 * through the API server's service proxy with the kubeconfig's credentials.
 */
export async function connectJobMaster(record: JobRecord, token: string | undefined): Promise<JobMasterClient | undefined> {
  const jm = record.jobMaster;
  if (!jm || !token) return undefined;
  if (!jm.kubernetes) return new JobMasterClient({ url: jm.url, token });
  // @kubernetes/client-node is heavy: only Kubernetes jobs load it.
  const { serviceProxyTransport } = await import('../launchers/k8s/service-proxy.js');
  const { kubeconfig, context } = jm.kubernetes;
  return new JobMasterClient({ url: jm.url, token, proxy: await serviceProxyTransport({ kubeconfig, context }) });
}

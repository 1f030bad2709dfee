import { rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderHostfile } from '../mpi/hostfile.js';
import { podOrdinal } from './names.js';
import type { KubeAccount } from './kube-account.js';

interface PodItem {
  metadata?: { name?: string; deletionTimestamp?: string };
  status?: { phase?: string; podIP?: string; conditions?: Array<{ type: string; status: string }> };
}

/**
 * The OpenMPI hostfile of a worker StatefulSet from the pods the API server lists: pod ordinal order,
 * `<pod IP> slots=<workers per pod>`, or the ordinals still missing while any of the first `pods` is not
 * Running and Ready (Ready: its sshd answers the readiness probe) with an IP.
 */
export function hostfileFromPods(items: PodItem[], pods: number, slots: number): { lines: string[] } | { missing: number[] } {
  const ips = new Map<number, string>();
  for (const p of items) {
    const ordinal = podOrdinal(p.metadata?.name ?? '') ?? NaN;
    const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    if (ordinal < pods && p.status?.phase === 'Running' && p.status.podIP && ready && !p.metadata?.deletionTimestamp) ips.set(ordinal, p.status.podIP);
  }
  const missing = Array.from({ length: pods }, (_, i) => i).filter((i) => !ips.has(i));
  return missing.length ? { missing } : { lines: renderHostfile(Array.from({ length: pods }, (_, i) => ({ host: ips.get(i)!, slots }))).trimEnd().split('\n') };
}

/** Waits until every pod of the selector is Running and Ready, then writes the hostfile (renamed into place). */
export async function writeKubeHostfile(
  account: KubeAccount,
  opts: { out: string; selector: string; pods: number; slots: number; log: (line: string) => void; pollMs?: number },
): Promise<string[]> {
  const url = `/api/v1/namespaces/${encodeURIComponent(account.namespace)}/pods?labelSelector=${encodeURIComponent(opts.selector)}`;
  let lastNote = 0;
  for (;;) {
    const r = await account.request('GET', url).catch((err: Error) => ({ status: 0, body: err.message }));
    if (r.status === 401 || r.status === 403) {
      throw new Error(`the pod's service account may not list the job's pods (HTTP ${r.status}): ${(r.body as { message?: string }).message ?? ''}`);
    }
    const found = r.status === 200 ? hostfileFromPods((r.body as { items: PodItem[] }).items, opts.pods, opts.slots) : undefined;
    if (found && 'lines' in found) {
      await writeFile(`${opts.out}.tmp`, found.lines.join('\n') + '\n');
      await rename(`${opts.out}.tmp`, opts.out);
      return found.lines;
    }
    if (Date.now() - lastNote > 30_000) {
      lastNote = Date.now();
      opts.log(found ? `waiting for pods ${found.missing.join(', ')} to be Running and Ready` : `listing the job's pods failed (${r.status || String(r.body)}); trying again`);
    }
    await sleep(opts.pollMs ?? 1000);
  }
}

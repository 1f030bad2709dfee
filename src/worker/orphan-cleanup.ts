/**
 * A worker whose job master is gone (the client was killed) ends its job on clusters that would otherwise
 * keep it: on Nomad, a task that exits is restarted and the job stays registered, so the worker stops and
 * purges the job through the URL its launcher gave it (TWISTER2_NOMAD_PURGE_URL). The token is the task's
 * workload identity (NOMAD_TOKEN), which a cluster with ACLs must allow to purge twister2's jobs.
 */
export async function endOrphanedJob(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  const url = env.TWISTER2_NOMAD_PURGE_URL;
  if (!url) return;
  try {
    const res = await fetch(url, { method: 'DELETE', headers: env.NOMAD_TOKEN ? { 'X-Nomad-Token': env.NOMAD_TOKEN } : {}, signal: AbortSignal.timeout(10_000) });
    log(res.ok ? 'purged the Nomad job: its job master is gone' : `could not purge the Nomad job (HTTP ${res.status})`);
  } catch (err) {
    log(`could not purge the Nomad job: ${(err as Error).message}`);
  }
}

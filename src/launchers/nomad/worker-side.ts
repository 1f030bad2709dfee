import { idFrom, type WorkerSide } from '../worker-side.js';
import { jobMasterUrl } from './job-master-discovery.js';
import { ENV } from '../../job/worker-environment.js';

/**
 * Nomad numbers a task group's allocations (NOMAD_ALLOC_INDEX); a job master in an allocation of its own is
 * found through Nomad's service discovery; a worker whose job master is gone stops and purges the job through
 * the URL its launcher gave (TWISTER2_NOMAD_PURGE_URL), after deleting the job's variable (the worker token,
 * TWISTER2_NOMAD_VARIABLE_URL), with the task's workload identity (NOMAD_TOKEN), which a cluster with ACLs must
 * allow to do both for twister2's jobs. Otherwise Nomad would restart the workers, and the variable would stay.
 */
export const workerSide: WorkerSide = {
  idSources: ['NOMAD_ALLOC_INDEX'],
  workerId: (env) => idFrom(env, 'NOMAD_ALLOC_INDEX'),
  findJobMaster: jobMasterUrl,
  async endOrphanedJob(env, log) {
    const purgeUrl = env[ENV.nomadPurgeUrl];
    if (!purgeUrl) return;
    const headers: Record<string, string> = env.NOMAD_TOKEN ? { 'X-Nomad-Token': env.NOMAD_TOKEN } : {};
    // The job's variable first: the purge ends this worker too. Nothing else would delete it.
    const variableUrl = env[ENV.nomadVariableUrl];
    if (variableUrl) {
      const v = await fetch(variableUrl, { method: 'DELETE', headers, signal: AbortSignal.timeout(10_000) }).catch((err: Error) => ({ ok: false, status: err.message }));
      if (!v.ok) log(`could not delete the job's Nomad variable (${v.status})`);
    }
    const res = await fetch(purgeUrl, { method: 'DELETE', headers, signal: AbortSignal.timeout(10_000) });
    log(res.ok ? 'purged the Nomad job: its job master is gone' : `could not purge the Nomad job (HTTP ${res.status})`);
  },
};

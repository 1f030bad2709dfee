import { LauncherError, UsageError } from '../../errors.js';
import type { NomadSpec } from './section.js';
import { STORAGE_CLEANUP_TASK, tokenVariablePath, WORKER_GROUP } from './job-builder.js';
import type { NomadAllocation, NomadApi } from './nomad-api.js';
import { describePlacementFailures, deviceShortage } from './placement-failures.js';

/** Nomad's multi-error messages ("2 errors occurred:\n\t* ...") on one line. */
export const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/**
 * Validates and registers a job, with the worker token stored first as the job's Nomad Variable. Resolves with
 * Nomad's placement failure in words when the job's evaluation could not place every allocation and the
 * spec asks to wait for resources; without that wish such a failure is an error.
 */
export async function registerNomadJob(api: NomadApi, nomad: NomadSpec, job: { ID: string }, workerToken: string, onStoring?: () => void): Promise<{ unplaced?: string }> {
  const { errors } = await api.validate(job);
  if (errors.length > 0) throw new UsageError(`Nomad refused the job as invalid: ${errors.map(oneLine).join('; ')}`);
  onStoring?.(); // from here on something of the job may be in Nomad
  await api.putVariable(tokenVariablePath(job.ID), { token: workerToken });
  const { EvalID } = await api.register(job);
  const deadline = Date.now() + 15_000;
  let ev = await api.evaluation(EvalID);
  while (ev.Status === 'pending' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    ev = await api.evaluation(EvalID);
  }
  const described = describePlacementFailures(ev.FailedTGAllocs);
  if (!described) return {};
  const gpus = deviceShortage(ev.FailedTGAllocs, workerDevice(job));
  const reasons = gpus ? `${described}: ${gpus}` : described;
  if (!nomad.waitForResources) throw new LauncherError(`Nomad could not place the job's allocations: ${reasons} (set nomad.waitForResources: true to wait for resources instead)`);
  return { unplaced: reasons };
}

/** The device request of the workers' task (resources.gpus), if any. */
function workerDevice(job: { ID: string }): { name: string; count: number } | undefined {
  const groups = (job as { TaskGroups?: { Name: string; Tasks?: { Resources?: { Devices?: { Name: string; Count: number }[] } }[] }[] }).TaskGroups ?? [];
  const d = groups.find((g) => g.Name === WORKER_GROUP)?.Tasks?.[0]?.Resources?.Devices?.[0];
  return d ? { name: d.Name, count: d.Count } : undefined;
}

/** Stops the job, waits until the allocations of `groups` (all, by default) are terminal and their storage clean-up ran, purges it, deletes its variable. */
export async function removeNomadJob(api: NomadApi, jobId: string, opts: { groups?: string[]; afterStop?: () => Promise<void> } = {}): Promise<void> {
  if (await api.job(jobId)) {
    await api.stop(jobId, false);
    await waitAllocationsTerminal(api, jobId, opts.groups, 30_000);
    await opts.afterStop?.();
    await api.deleteVariable(tokenVariablePath(jobId));
    await api.stop(jobId, true);
    const deadline = Date.now() + 15_000;
    while (await api.job(jobId)) {
      if (Date.now() > deadline) throw new LauncherError(`Nomad still lists job ${jobId} 15s after it was purged`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await api.deleteVariable(tokenVariablePath(jobId));
}

const TERMINAL_ALLOC = new Set(['complete', 'failed', 'lost']);

/**
 * A terminal allocation whose storage clean-up (its post-stop task) has yet to run or is running: Nomad calls an
 * allocation failed as soon as a task failed, before its post-stop task ran. A lost one runs nothing more.
 */
function cleaning(a: NomadAllocation): boolean {
  const cleanup = a.TaskStates?.[STORAGE_CLEANUP_TASK];
  return a.ClientStatus !== 'lost' && cleanup !== undefined && cleanup.State !== 'dead';
}

async function waitAllocationsTerminal(api: NomadApi, jobId: string, groups: string[] | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const allocs = (await api.allocations(jobId)).filter((a) => !groups || groups.includes(a.TaskGroup));
    const live = allocs.filter((a) => !TERMINAL_ALLOC.has(a.ClientStatus));
    // A clean-up that never started (its allocation's set-up failed) holds the job no longer than the deadline.
    if (live.length === 0 && (!allocs.some(cleaning) || Date.now() > deadline)) return;
    if (Date.now() > deadline) {
      throw new LauncherError(`Nomad allocations ${live.map((a) => `${a.Name} (${a.ClientStatus})`).join(', ')} were still not stopped ${timeoutMs / 1000}s after job ${jobId} was stopped`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

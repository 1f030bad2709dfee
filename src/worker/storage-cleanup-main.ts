import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { memoryDirOf, persistentLogsDirOf } from '../job/storage.js';
import { ENV, hostVolumePathOf, workDirOf } from '../job/worker-environment.js';
import { removeUnlessHeld } from './work-dir-lease.js';

/**
 * Nomad's post-stop task of a worker allocation with spec `storage` (launchers/nomad/job-builder.ts): Nomad
 * runs it on the worker's client node once the worker task has ended, however it ended (success, failure,
 * `nomad job stop`, a purge, a kill after the kill timeout). It removes the job's memory and work (scratch)
 * directories of the node unless a live worker still holds them: a worker that exited released its holds
 * itself, this removes what a SIGKILLed one left. With `storage.persistent.logs` it copies the worker's log,
 * Nomad's files of its task in the allocation (stdout, then stderr), into
 * `<host volume>/logs/<job>/worker-<alloc index>.log`, where the job master, away from the nodes, cannot write.
 */
function cleanUp(env: NodeJS.ProcessEnv): number {
  const jobId = env[ENV.jobId];
  if (!jobId) {
    console.error(`${ENV.jobId} is not set: nothing to clean`);
    return 2;
  }
  let code = 0;
  const { workDir } = workDirOf(env);
  for (const dir of [memoryDirOf(jobId), workDir]) {
    if (!removeUnlessHeld(dir)) console.error(`${dir} is still held by a live worker on this node: it removes it when it ends`);
  }
  const task = env[ENV.copyLogs];
  if (task) {
    try {
      copyTaskLog(env, jobId, task);
    } catch (err) {
      console.error(`could not copy the worker's log into storage.persistent.hostVolume: ${(err as Error).message}`);
      code = 1;
    }
  }
  return code;
}

function copyTaskLog(env: NodeJS.ProcessEnv, jobId: string, task: string): void {
  const persistent = hostVolumePathOf(env);
  const allocDir = env.NOMAD_ALLOC_DIR;
  if (!persistent || !allocDir) throw new Error(`${persistent ? 'NOMAD_ALLOC_DIR' : ENV.hostVolumePaths} is not set`);
  const logs = path.join(allocDir, 'logs');
  const to = path.join(persistentLogsDirOf(persistent, jobId), `worker-${env.NOMAD_ALLOC_INDEX ?? 'unknown'}.log`);
  mkdirSync(path.dirname(to), { recursive: true });
  writeFileSync(to, '');
  // Nomad rotates each stream into <task>.stdout.0, .1, ...: in order, stdout's then stderr's.
  const names = readdirSync(logs);
  for (const stream of ['stdout', 'stderr']) {
    const files = names
      .filter((n) => n.startsWith(`${task}.${stream}.`) && /^\d+$/.test(n.slice(`${task}.${stream}.`.length)))
      .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
    for (const f of files) appendFileSync(to, readFileSync(path.join(logs, f)));
  }
}

process.exitCode = cleanUp(process.env);

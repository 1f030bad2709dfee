import { Twister2Error } from '../errors.js';
import { fetchPackage } from './fetch/package-fetch.js';
import { endTreeOnStopSignals, ProgramTree, untilExit } from './process-tree.js';
import { runCommand } from './program-runner.js';
import { specOfPackage } from './spec-view.js';
import { resolveWorkerId, takeGpus } from '../launchers/worker-sides.js';
import { ENV, readPackageRef, storageVariables, workDirOf } from '../job/worker-environment.js';
import { prepareStorage } from './storage.js';
import { mountedStorageOf } from '../job/storage.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';

// Whatever the command starts ends with this rank, however it ends.
const tree = ProgramTree.mark(process.env);
process.once('exit', () => tree.killNow());
// mpirun SIGTERMs every rank once one fails, also a rank still fetching the package.
const stop = endTreeOnStopSignals(tree, 1000);

/**
 * What each rank runs for a job without a job master (`jobMaster.placement: none`): a plain MPI program
 * that needs only its rank. Gets the package (once per host), then runs the command in it with the rank's
 * MPI environment, and exits with the command's outcome. No registration, no heartbeats.
 */
async function main(): Promise<number> {
  const env = process.env;
  const { workerId } = await resolveWorkerId(env);
  await takeGpus(env);
  const ref = readPackageRef(env);
  const { workDir, scratch } = workDirOf(env);
  if (scratch) releaseAtExit(WorkDirLease.take(workDir));
  const fetched = await fetchPackage(ref, workDir, {
    deadlineMs: Number(env[ENV.registrationTimeoutMs] || 600_000),
    log: (line) => console.error(`[twister2 rank ${workerId}] ${line}`),
  });
  const spec = await specOfPackage(fetched.manifest);
  const storage = prepareStorage(env[ENV.jobId] ?? 'job', workDir, spec, mountedStorageOf(env));
  const run = runCommand(spec.worker, fetched.dir, {
    ...env,
    ...spec.worker.env,
    [ENV.workerId]: String(workerId),
    [ENV.numWorkers]: String(spec.workers),
    [ENV.packageDir]: fetched.dir,
    ...storageVariables(storage),
  });
  await run.done;
  await tree.end(1000); // what it left running
  return 0;
}

main().then(
  (code) => (stop.stopping() ? untilExit() : process.exit(code)),
  (err: unknown) => {
    if (stop.stopping()) return untilExit();
    console.error(`[twister2 rank] ${err instanceof Twister2Error ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

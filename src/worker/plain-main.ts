import { Twister2Error } from '../errors.js';
import { parseSpec } from '../spec/validate.js';
import { fetchPackage } from './fetch/package-fetch.js';
import { runCommand } from './program-runner.js';
import { resolveWorkerId } from '../launchers/worker-sides.js';
import { ENV, readPackageRef, workDirOf } from '../job/worker-environment.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';

/**
 * What each rank runs for a job without a job master (`jobMaster.placement: none`): a plain MPI program
 * that needs only its rank. Gets the package (once per host), then runs the command in it with the rank's
 * MPI environment, and exits with the command's outcome. No registration, no heartbeats.
 */
async function main(): Promise<number> {
  const env = process.env;
  const { workerId } = await resolveWorkerId(env);
  const ref = readPackageRef(env);
  const { workDir, scratch } = workDirOf(env);
  if (scratch) releaseAtExit(WorkDirLease.take(workDir));
  const fetched = await fetchPackage(ref, workDir, {
    deadlineMs: Number(env[ENV.registrationTimeoutMs] || 600_000),
    log: (line) => console.error(`[twister2 rank ${workerId}] ${line}`),
  });
  const spec = parseSpec(fetched.manifest.spec, 'the job package');
  const run = runCommand(spec.worker, fetched.dir, {
    ...env,
    ...spec.worker.env,
    [ENV.workerId]: String(workerId),
    [ENV.numWorkers]: String(spec.workers),
    [ENV.packageDir]: fetched.dir,
  });
  process.once('SIGTERM', () => {
    run.stop();
    process.exit(143);
  });
  process.once('exit', run.stop);
  await run.done;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`[twister2 rank] ${err instanceof Twister2Error ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

import { Twister2Error } from '../errors.js';
import { parseSpec } from '../spec/validate.js';
import { PackageRefSchema } from '../uploader/uploader.js';
import { fetchPackage } from './fetch/package-fetch.js';
import { ProgramTree } from './process-tree.js';
import { runCommand } from './program-runner.js';
import { resolveWorkerId } from './worker-id.js';
import { workDirOf } from './worker-env.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';

/**
 * What each rank runs for a job without a job master (`jobMaster.placement: none`): a plain MPI program
 * that needs only its rank. Gets the package (once per host), then runs the command in it with the rank's
 * MPI environment, and exits with the command's outcome. No registration, no heartbeats.
 */
async function main(): Promise<number> {
  const env = process.env;
  // Whatever the command starts ends with this rank, however it ends.
  const tree = ProgramTree.mark(env);
  process.once('exit', () => tree.killNow());
  const { workerId } = resolveWorkerId(env);
  const ref = PackageRefSchema.parse(JSON.parse(env.TWISTER2_PACKAGE_REF ?? 'null'));
  const { workDir, scratch } = workDirOf(env);
  if (scratch) releaseAtExit(WorkDirLease.take(workDir));
  const fetched = await fetchPackage(ref, workDir, {
    deadlineMs: Number(env.TWISTER2_REGISTRATION_TIMEOUT_MS ?? 600_000),
    log: (line) => console.error(`[twister2 rank ${workerId}] ${line}`),
  });
  const spec = parseSpec(fetched.manifest.spec, 'the job package');
  const run = runCommand(spec.worker, fetched.dir, {
    ...env,
    ...spec.worker.env,
    TWISTER2_WORKER_ID: String(workerId),
    TWISTER2_NUM_WORKERS: String(spec.workers),
    TWISTER2_PACKAGE_DIR: fetched.dir,
  });
  process.once('SIGTERM', () => void tree.end(1000).finally(() => process.exit(143)));
  await run.done;
  await tree.end(1000); // what it left running
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`[twister2 rank] ${err instanceof Twister2Error ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

import { attachJob, jobMasterAlive } from '../../client/job-handle.js';
import { jobDirOf, listJobIds, readFinalStatus, readRecord } from '../../job/job-store.js';
import { ExitCode, JobStateError, Twister2Error } from '../../errors.js';
import { workersFlag } from '../flags.js';
import { exitCodeOf, formatStatus, printLines } from '../output.js';

export async function statusCommand(a: { job: string; json: boolean }): Promise<number> {
  const handle = await attachJob(a.job);
  const status = await handle.status();
  console.log(a.json ? JSON.stringify(status, null, 2) : formatStatus(status));
  return ExitCode.succeeded;
}

/** Lists jobs from their records; a job whose job master is gone without a final status shows as LOST. */
export async function listCommand(a: { json: boolean }): Promise<number> {
  const rows = [];
  for (const id of await listJobIds()) {
    const dir = jobDirOf(id);
    let record, final;
    try {
      record = await readRecord(dir);
      final = await readFinalStatus(dir);
    } catch (err) {
      // One broken directory must not hide the others: say what is wrong with it, and go on.
      if (!Twister2Error.is(err, 'T2_JOB_DIR_INVALID')) throw err;
      console.error(`twister2: skipping ${id}: ${(err as Error).message}`);
      continue;
    }
    let state: string = final?.state ?? 'STARTING';
    if (!final) {
      const handle = await attachJob(id);
      const alive = await jobMasterAlive(record, handle.client);
      // A job master that ran in a pod may have left how the job ended in an Event (job-end-event.ts).
      const asked = alive || record.jobMaster?.kubernetes ? await handle.status().catch(() => undefined) : undefined;
      state = asked?.state ?? (alive ? 'UNREACHABLE' : 'LOST');
    }
    rows.push({ jobId: id, name: record.name, cluster: record.cluster, workers: record.workers, state, createdAt: record.createdAt });
  }
  if (a.json) console.log(JSON.stringify(rows, null, 2));
  else {
    console.log('JOB'.padEnd(44) + 'STATE'.padEnd(12) + 'CLUSTER'.padEnd(12) + 'WORKERS  CREATED');
    for (const r of rows) console.log(r.jobId.padEnd(44) + r.state.padEnd(12) + r.cluster.padEnd(12) + String(r.workers).padEnd(9) + r.createdAt);
  }
  return ExitCode.succeeded;
}

export async function logsCommand(a: { job: string; follow: boolean }): Promise<number> {
  const handle = await attachJob(a.job);
  const follow = a.follow && !(await readFinalStatus(handle.jobDir));
  await printLines(handle.logs({ follow }), process.stdout);
  return ExitCode.succeeded;
}

export async function killCommand(a: { job: string; json: boolean }): Promise<number> {
  const handle = await attachJob(a.job);
  const done = await readFinalStatus(handle.jobDir);
  if (done) throw new JobStateError(`job ${handle.jobId} already ended (${done.state}); nothing to kill`);
  const status = await handle.kill('killed with `twister2 kill`');
  console.log(a.json ? JSON.stringify(status) : `job ${handle.jobId} ${status.state}: ${status.message ?? ''}`);
  return status.state === 'KILLED' ? ExitCode.succeeded : exitCodeOf(status);
}

export async function scaleCommand(a: { job: string; workers: string; json: boolean }): Promise<number> {
  const workers = workersFlag('the number of workers', a.workers, `twister2 scale ${a.job} 4`);
  const handle = await attachJob(a.job);
  const status = await handle.scale(workers);
  console.log(a.json ? JSON.stringify(status) : `job ${handle.jobId} scaled to ${status.numWorkers} workers`);
  return ExitCode.succeeded;
}

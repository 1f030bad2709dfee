import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { files, readRecord } from '../job/job-store.js';
import type { JobSecrets } from '../job/secrets.js';

/** Set in the environment of the job master a supervisor runs (so that it does not supervise in turn). */
export const SUPERVISED_VAR = 'TWISTER2_JOB_MASTER_SUPERVISOR';
/** Exit code of a job master that crashed (an internal error): restarted like one that was killed. */
const CRASHED = 4;
/** Job masters in a row that died before they were up, after which the job master is given up (a crash loop). */
const MAX_EARLY_DEATHS = 5;

/**
 * Runs the job master as a child process and restarts it when it dies without having ended the job
 * (SIGKILL, OOM, an internal error), as a kubelet restarts a container; workers wait for it up to
 * `timeouts.jobMasterRecovery`. The restarted job master carries on from the journal in the job
 * directory. SIGTERM and SIGINT are passed on: they end the job. Returns the exit code of the last job
 * master.
 */
export async function superviseJobMaster(jobDir: string, secrets: JobSecrets, log: (line: string) => void): Promise<number> {
  let child: ReturnType<typeof spawn> | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      stopSignal = signal;
      child?.kill(signal);
    });
  }
  let earlyDeaths = 0;
  for (;;) {
    child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      env: { ...process.env, [SUPERVISED_VAR]: String(process.pid) },
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    // Credentials go through a pipe, as they came to the supervisor.
    child.stdin!.end(JSON.stringify(secrets));
    // Restarted while being stopped: the new one is told too, once it can take it (its handlers are set).
    if (stopSignal) void tellOnceUp(jobDir, child, stopSignal);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    const crashed = signal !== null || code === CRASHED;
    // Also while stopping: a job master killed during the job's clean-up (its cluster stopping it, say)
    // leaves the job without its final status; the next one finishes the clean-up from the journal.
    if (!crashed || existsSync(path.join(jobDir, files.status))) return code ?? 128 + 9;
    // One that was up (it recorded itself) was killed or failed at work: always worth a restart. One that
    // died before it was up, again and again, would only do so forever.
    const wasUp = (await readRecord(jobDir).catch(() => undefined))?.jobMaster?.pid === child.pid;
    earlyDeaths = wasUp ? 0 : earlyDeaths + 1;
    if (earlyDeaths >= MAX_EARLY_DEATHS) {
      log(`the job master died ${earlyDeaths} times in a row before it was up; not restarting it again (its workers stop once they miss it)`);
      return CRASHED;
    }
    log(`the job master (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `crashed (exit ${code})`}; restarting it`);
  }
}

/** Sends `signal` to a job master once it is up (it recorded itself in job.json), unless it exited first. */
async function tellOnceUp(jobDir: string, child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  while (child.exitCode === null && child.signalCode === null) {
    if ((await readRecord(jobDir).catch(() => undefined))?.jobMaster?.pid === child.pid) {
      child.kill(signal);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

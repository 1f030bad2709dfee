import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LauncherError } from '../../errors.js';
import type { LaunchContext, Launcher, LauncherListener, ResumedWorker } from '../launcher.js';
import { inheritedEnv, killGroup, processAlive, workerProcesses } from '../process-group.js';
import { workerEnvironment } from '../../job/worker-environment.js';
import { leaseLockOf, memoryDirOf, scratchDirOf } from '../../job/storage.js';
import { CUDA_VISIBLE_DEVICES, cudaVisibleDevices, gpusOfSlot, listText } from '../gpus.js';

const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.js', import.meta.url));
const KILL_GRACE_MS = 3000;
/** How often workers taken over from a crashed job master (not our children: no exit event) are looked at. */
const ADOPTED_POLL_MS = 200;
/**
 * Workers spawned per turn of the event loop. node's spawn is synchronous (fork and exec, slower the more
 * the started workers load the CPU): spawning 64 at once held the caller, and the job master in the same
 * process, for seconds. In batches, `submit()` returns and the first workers are answered meanwhile.
 */
const SPAWN_BATCH = 4;

interface Running {
  pid: number | undefined;
  exited: Promise<void>;
  /** Set when we stop it on purpose, so its exit is not reported as a failure. */
  expected: boolean;
}


/**
 * Runs each worker as a local process in its own process group, so that stopping a worker also stops
 * whatever its program started. Output goes straight to `<jobDir>/logs/worker-<id>.log` (no pipes: a
 * worker must not die of EPIPE when the client goes away; it notices the lost job master instead).
 */
export class LocalLauncher implements Launcher {
  private ctx: LaunchContext | undefined;
  private listener: LauncherListener | undefined;
  private readonly running = new Map<number, Running>();
  private releasing = false;
  private readonly onExit = () => {
    this.killAllNow();
    this.removeStorage();
  };
  private adoptedPoll: NodeJS.Timeout | undefined;

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    this.ctx = ctx;
    this.listener = listener;
    mkdirSync(path.join(ctx.jobDir, 'logs'), { recursive: true });
    // A job master restarted before its predecessor's launch was journaled starts afresh: whatever that
    // one had started already goes first, or two workers would hold one ID.
    for (const pid of workerProcesses(ctx.jobId, WORKER_MAIN).values()) killGroup(pid, 'SIGKILL');
    // If this process dies with an exception, its workers must not outlive it.
    process.on('exit', this.onExit);
    this.spawnInBatches(Array.from({ length: ctx.spec.workers }, (_, id) => id));
  }

  async addWorkers(ids: number[]): Promise<void> {
    this.spawnInBatches(ids);
  }

  /** The first batch now (an error there is the caller's), the rest on later turns of the event loop. */
  private spawnInBatches(ids: number[]): void {
    ids.slice(0, SPAWN_BATCH).forEach((id) => this.spawnWorker(id, 0));
    let next = SPAWN_BATCH;
    const more = () => {
      if (this.releasing) return;
      for (const id of ids.slice(next, next + SPAWN_BATCH)) this.spawnOrReport(id);
      next += SPAWN_BATCH;
      if (next < ids.length) setImmediate(more);
    };
    if (next < ids.length) setImmediate(more);
  }

  /** A worker that cannot even be spawned (out of processes, say) failed: the job master hears of it as of any exit. */
  private spawnOrReport(id: number, restartCount = 0): void {
    try {
      this.spawnWorker(id, restartCount);
    } catch (err) {
      this.log(id, `--- twister2: could not start worker ${id}: ${(err as Error).message} ---`);
      this.listener?.workerExited({ workerId: id, code: null, signal: null });
    }
  }

  /**
   * After a crash of the job master: the workers it started run on (re-parented to init), each in its own
   * process group. They are found by their environment (a PID the old job master had not yet written down
   * would otherwise be missed) and watched by PID from now on. A worker that should be running but is
   * gone died while the job master was away: reported as an exit, so it counts as a failure. One that was
   * starting (or about to be restarted) and has no process is started; one that should not run is stopped.
   */
  async resume(ctx: LaunchContext, listener: LauncherListener, workers: ResumedWorker[]): Promise<void> {
    this.ctx = ctx;
    this.listener = listener;
    mkdirSync(path.join(ctx.jobDir, 'logs'), { recursive: true });
    process.on('exit', this.onExit);
    const found = workerProcesses(ctx.jobId, WORKER_MAIN);
    const wanted = new Map(workers.map((w) => [w.workerId, w]));
    for (const [id, pid] of found) {
      const w = wanted.get(id);
      if (!w || w.state === 'REMOVED' || w.state === 'STOPPED') killGroup(pid, 'SIGKILL');
      else this.adopt(id, pid);
    }
    this.adoptedPoll = setInterval(() => {
      for (const entry of [...this.adopted.keys()]) if (!processAlive(entry.pid!)) this.adoptedGone(entry);
    }, ADOPTED_POLL_MS);
    this.adoptedPoll.unref();
    for (const w of workers) {
      if (found.has(w.workerId)) continue;
      if (w.state === 'RUNNING') listener.workerExited({ workerId: w.workerId, code: null, signal: null });
      else if (w.state === 'STARTING' || w.state === 'FAILED') this.spawnOrReport(w.workerId, w.restarts);
    }
  }

  private readonly adopted = new Map<Running, () => void>();

  private adopt(id: number, pid: number): void {
    let gone!: () => void;
    const entry: Running = { pid, exited: new Promise((r) => (gone = r)), expected: false };
    this.running.set(id, entry);
    this.adopted.set(entry, () => {
      killGroup(pid, 'SIGKILL'); // anything its program left behind
      if (this.running.get(id) === entry) this.running.delete(id);
      // Its exit status went to init: a worker that ended well reported so before it exited.
      if (!entry.expected && !this.releasing) this.listener?.workerExited({ workerId: id, code: null, signal: null });
      gone();
    });
  }

  private adoptedGone(entry: Running): void {
    const done = this.adopted.get(entry);
    this.adopted.delete(entry);
    done?.();
  }

  abandon(): void {
    this.releasing = true;
    process.off('exit', this.onExit);
    clearInterval(this.adoptedPoll);
  }

  async removeWorkers(ids: number[]): Promise<void> {
    await Promise.all(ids.map((id) => this.stop(id)));
  }

  async restartWorker(id: number, restartCount: number): Promise<void> {
    await this.stop(id);
    if (this.releasing) return;
    this.log(id, `--- twister2: restarting worker ${id} (restart ${restartCount}) ---`);
    this.spawnWorker(id, restartCount);
  }

  async release(): Promise<void> {
    this.releasing = true;
    await Promise.all([...this.running.keys()].map((id) => this.stop(id)));
    clearInterval(this.adoptedPoll);
    process.off('exit', this.onExit);
    // The last worker to end removes them; one SIGKILLed (past the grace, or adopted and gone) could not.
    this.removeStorage();
  }

  /** The job's scratch and memory dirs (spec `storage`), once no worker of the job runs. */
  private removeStorage(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    for (const dir of [scratchDirOf(this.workDir(ctx)), memoryDirOf(ctx.jobId)]) {
      rmSync(dir, { recursive: true, force: true });
      rmSync(leaseLockOf(dir), { force: true });
    }
  }

  private workDir(ctx: LaunchContext): string {
    return ctx.spec.local.workDir ? path.resolve(ctx.spec.local.workDir, ctx.jobId) : path.join(ctx.jobDir, 'work');
  }

  /** Worker PIDs now running, for status and tests. */
  pids(): Map<number, number> {
    return new Map([...this.running].flatMap(([id, r]) => (r.pid ? [[id, r.pid] as [number, number]] : [])));
  }


  private spawnWorker(id: number, restartCount: number): void {
    const ctx = this.ctx;
    if (!ctx) throw new LauncherError('the local launcher was not started');
    if (this.releasing) return;
    const logFile = path.join(ctx.jobDir, 'logs', `worker-${id}.log`);
    const fd = openSync(logFile, 'a');
    const workDir = this.workDir(ctx);
    const env = {
      ...inheritedEnv(),
      ...workerEnvironment(ctx, { secret: { kind: 'env' }, workerId: id, restartCount, workDir: { path: workDir, scratch: false }, extra: gpuVariables(ctx, id) }),
    };
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [WORKER_MAIN], { env, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        killGroup(child.pid, 'SIGKILL'); // anything the worker's program left behind
        if (this.running.get(id) === entry) this.running.delete(id);
        if (!entry.expected && !this.releasing) this.listener?.workerExited({ workerId: id, code, signal });
        resolve();
      });
      child.once('error', (err) => {
        this.log(id, `--- twister2: could not start worker ${id}: ${err.message} ---`);
      });
    });
    const entry: Running = { pid: child.pid, exited, expected: false };
    this.running.set(id, entry);
  }

  private async stop(id: number): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.expected = true;
    killGroup(r.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(r.pid, 'SIGKILL'), KILL_GRACE_MS);
    await r.exited;
    clearTimeout(timer);
  }

  private killAllNow(): void {
    for (const r of this.running.values()) killGroup(r.pid, 'SIGKILL');
  }

  private log(id: number, line: string): void {
    if (this.ctx) appendFileSync(path.join(this.ctx.jobDir, 'logs', `worker-${id}.log`), `${line}\n`);
  }
}

/**
 * With local.gpus, worker `id` sees its own share of the list (CUDA_VISIBLE_DEVICES; none when it asked for
 * none). The spec and scale checks refuse a job the list cannot serve, so a shortfall here is a bug's.
 */
function gpuVariables(ctx: LaunchContext, id: number): Record<string, string> {
  const list = ctx.spec.local.gpus;
  if (!list) return {};
  const mine = gpusOfSlot(list, ctx.spec.resources.gpus, id);
  if (!mine) {
    throw new LauncherError(`worker ${id} would need GPUs ${id * ctx.spec.resources.gpus}..${(id + 1) * ctx.spec.resources.gpus - 1} of local.gpus ${listText(list)}, which lists ${list.length}`);
  }
  return { [CUDA_VISIBLE_DEVICES]: cudaVisibleDevices(mine) };
}

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LauncherError, UsageError } from '../../errors.js';
import { mpiGpuPlan, type MpiSpec } from './section.js';
import type { JobEnding, LaunchContext, Launcher, LauncherListener, ResumedWorker } from '../launcher.js';
import { DetachedCommand, type CommandFiles, type CommandFollower, type OutputStream } from '../detached-command.js';
import { findProgram } from '../find-program.js';
import { inheritedEnv } from '../process-group.js';
import { ENV, workerEnvironment } from '../../job/worker-environment.js';
import { checkHostPlan, loadHosts, mpiSection } from './host-plan.js';
import { writeHostfile } from './hostfile.js';
import { mpirunArgs } from './mpirun-command.js';
import { isThisMachine, sshRun, sweepLocal, sweepScript, unreachableHosts } from './remote-hosts.js';
import { writeSshWrapper } from './ssh-options.js';
import { TaggedOutputSplitter } from './tagged-output.js';

const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.js', import.meta.url));
/** For `jobMaster.placement: none`: unpack and run the plain program, nothing else. */
const PLAIN_MAIN = fileURLToPath(new URL('../../worker/plain-main.js', import.meta.url));
const KILL_GRACE_MS = 5000;
/**
 * A job whose ranks all completed gives mpirun this long to end on its own: stopping it sooner cuts the
 * ranks' last lines still on their way from the hosts, and so their logs. Not a failed job: its ranks may
 * still run (cut off, say), and must be stopped at once rather than go on against an ended job.
 */
const NATURAL_END_MS = 5000;
const SWEEP_ROUNDS = 3;
/** Key of LauncherListener.remember for mpirun: a job master restarted after a crash takes it over. */
const MPIRUN_KEY = 'mpirun';

/** What a job master remembers of its mpirun: its process group, how far its output was read, and the ranks' log lengths then. */
interface RememberedMpirun {
  pgid: number;
  from?: Partial<Record<OutputStream, number>>;
  lengths?: Record<string, number>;
}

/**
 * Runs the job as one `mpirun`: OpenMPI starts the ranks over ssh and numbers them, and the rank is
 * the worker ID (the worker runtime reads OMPI_COMM_WORLD_RANK). Consequences of MPI's model:
 * - no restarts: OpenMPI aborts the whole job when a rank fails, so there is no `restartWorker` and
 *   every rank's exit is reported when mpirun ends (the job master ignores ranks that completed);
 * - no scaling: MPI_COMM_WORLD has a fixed size.
 * Clean-up does not trust mpirun alone: after it ended, every host is swept over ssh for processes whose
 * environment names this job, and those are killed by PID.
 */
export class MpiLauncher implements Launcher {
  private ctx: LaunchContext | undefined;
  private mpi: MpiSpec | undefined;
  private hosts: string[] = [];
  private mpirun: DetachedCommand | undefined;
  private output: TaggedOutputSplitter | undefined;
  private listener: LauncherListener | undefined;
  private releasing = false;
  private released: Promise<void> | undefined;
  private readonly onExit = () => this.mpirun?.kill();

  constructor(private readonly uid: number = process.getuid?.() ?? -1) {}

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    this.ctx = ctx;
    const mpi = (this.mpi = mpiSection(ctx.spec));
    const hostSlots = await loadHosts(mpi);
    checkHostPlan(ctx.spec, hostSlots);
    this.hosts = [...new Set(hostSlots.map((h) => h.host))];
    const mpirun = findProgram(mpi.mpirun);
    if (!mpirun) {
      throw new UsageError(
        `the mpi launcher needs OpenMPI's mpirun, but "${mpi.mpirun}" (mpi.mpirun) was not found${mpi.mpirun.includes('/') ? '' : ' on PATH'}; install OpenMPI (Debian: apt-get install openmpi-bin) or set mpi.mpirun to its full path`,
      );
    }
    const problems = await unreachableHosts(mpi.ssh, this.hosts);
    if (problems.length > 0) throw new LauncherError(problems.join('; '));
    if (this.releasing) return;

    const logsDir = path.join(ctx.jobDir, 'logs');
    mkdirSync(logsDir, { recursive: true });
    const hostfile = await writeHostfile(ctx.jobDir, hostSlots);
    const sshWrapper = await writeSshWrapper(ctx.jobDir, mpi.ssh);
    const plain = ctx.spec.jobMaster.placement === 'none';
    // The worker token travels in mpirun's environment (`-x NAME`), never on its command line. Ranks of a
    // plain MPI program talk to no job master: they get neither its address nor a token.
    // GPUs: every rank gets each host's list and takes its share by its local rank there (launchers/gpus.ts).
    const plan = mpiGpuPlan(mpi, ctx.spec.resources.gpus);
    const extra: Record<string, string> = plan ? { [ENV.gpuPlan]: JSON.stringify(plan) } : {};
    const workerEnv = workerEnvironment(ctx, plain ? { secret: { kind: 'none' }, jobMaster: 'none', extra } : { secret: { kind: 'env' }, extra });
    const args = mpirunArgs({
      mpi,
      np: ctx.spec.workers,
      hostfile,
      sshWrapper,
      envNames: Object.keys(workerEnv),
      uid: this.uid,
      program: [process.execPath, plain ? PLAIN_MAIN : WORKER_MAIN],
    });
    const output = (this.output = new TaggedOutputSplitter(logsDir));
    output.note(`${mpirun} ${args.join(' ')}`);
    this.listener = listener;
    process.on('exit', this.onExit);
    // Detached, its output in files: mpirun and its ranks outlive a job master that crashes (the next one
    // takes them over). Values reach the ranks through `-x NAME` from this environment, never the command line.
    this.follow((follower) => DetachedCommand.start(mpirun, args, { cwd: ctx.jobDir, env: { ...inheritedEnv(), ...workerEnv }, files: this.mpirunFiles(), ...follower }));
  }

  /**
   * A job master restarted on the first host (jobMaster.placement: cluster) takes over the mpirun its
   * predecessor started: its output from where that one had read it (the ranks' logs cut back to what
   * went with it, so no line is written twice), and its end.
   */
  async resume(ctx: LaunchContext, listener: LauncherListener, _workers: ResumedWorker[], remembered: Record<string, unknown>): Promise<void> {
    this.ctx = ctx;
    this.listener = listener;
    const mpi = (this.mpi = mpiSection(ctx.spec));
    this.hosts = [...new Set((await loadHosts(mpi)).map((h) => h.host))];
    const saved = remembered[MPIRUN_KEY] as RememberedMpirun | undefined;
    const files = this.mpirunFiles();
    // One that crashed before it recorded its mpirun: the mpirun it started, found by its files; none: start it.
    const pgid = saved?.pgid ?? DetachedCommand.find(files) ?? (DetachedCommand.ended(files) ? 0 : undefined);
    if (pgid === undefined) return this.start(ctx, listener);
    // Without lengths kept, mpirun's output is read again from its start: the ranks' logs are written anew.
    const keep = saved?.lengths ?? Object.fromEntries(Array.from({ length: ctx.spec.workers }, (_, rank) => [rank, 0]));
    this.output = new TaggedOutputSplitter(path.join(ctx.jobDir, 'logs'), undefined, keep);
    this.output.note(`a restarted job master took over mpirun (process group ${pgid})`);
    process.on('exit', this.onExit);
    this.follow((follower) => DetachedCommand.attach(pgid, files, follower), saved?.from ? { from: saved.from, lengths: keep } : {});
  }

  /** Splits mpirun's output by rank, remembers how far it got, and reports every rank's exit when mpirun ends. */
  private follow(run: (f: CommandFollower) => DetachedCommand, resumed: { from?: Partial<Record<OutputStream, number>>; lengths?: Record<string, number> } = {}): void {
    const output = this.output!;
    const from: Partial<Record<OutputStream, number>> = { ...resumed.from };
    const remember = this.listener!.remember?.bind(this.listener);
    this.mpirun = run({
      ...(resumed.from ? { from: resumed.from } : {}),
      onLine: (line) => output.push(line),
      afterChunk: () => output.settle(),
      onProgress: (stream, offset) => {
        from[stream] = offset;
        if (!remember) return;
        const at = { ...from };
        // Kept once the lines are in the files: a restart cuts the logs back to these lengths and reads on from `at`.
        void output.written().then((lengths) => remember(MPIRUN_KEY, { pgid: this.mpirun!.pgid, from: at, lengths } satisfies RememberedMpirun));
      },
      onExit: ({ code, signal }) => {
        this.mpirun?.kill(); // anything mpirun left in its group
        output.note(`mpirun ended (${signal ?? `exit code ${code}`})`);
        if (this.releasing) return;
        for (let id = 0; id < this.ctx!.spec.workers; id++) this.listener!.workerExited({ workerId: id, code, signal });
      },
    });
    // Until it read more, what it started from (a restart right away must not read the output again).
    remember?.(MPIRUN_KEY, { pgid: this.mpirun.pgid, ...resumed } satisfies RememberedMpirun);
  }

  private mpirunFiles(): CommandFiles {
    const dir = path.join(this.ctx!.jobDir, 'mpi');
    mkdirSync(dir, { recursive: true });
    return { stdout: path.join(dir, 'mpirun.stdout'), stderr: path.join(dir, 'mpirun.stderr'), exit: path.join(dir, 'mpirun.exit') };
  }

  /** This job master was fenced off by a newer one: leave mpirun to it. */
  abandon(): void {
    this.releasing = true;
    process.off('exit', this.onExit);
    this.mpirun = undefined;
  }

  release(ending: JobEnding = 'failed'): Promise<void> {
    this.releasing = true;
    this.released ??= this.doRelease(ending);
    return this.released;
  }

  private async doRelease(ending: JobEnding): Promise<void> {
    const run = this.mpirun;
    if (run) {
      const deadline = Date.now() + (ending === 'succeeded' ? NATURAL_END_MS : 0);
      while (run.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await run.stop(KILL_GRACE_MS);
      process.off('exit', this.onExit);
      try {
        await this.sweep();
      } finally {
        await this.output?.close();
      }
    }
  }

  /** Kills what is left of the job on every host, by PID, until nothing is found. */
  private async sweep(): Promise<void> {
    const ctx = this.ctx!;
    const mpi = this.mpi!;
    let left: string[] = [];
    for (let round = 0; round < SWEEP_ROUNDS; round++) {
      left = [];
      const hosts = [...new Set([...this.hosts.map((h) => (isThisMachine(h) ? 'localhost' : h))])];
      await Promise.all(
        hosts.map(async (host) => {
          if (host === 'localhost') {
            const pids = sweepLocal(ctx.jobId);
            if (pids.length) left.push(`this machine: ${pids.join(' ')}`);
            return;
          }
          const r = await sshRun(mpi.ssh, host, sweepScript(ctx.jobId));
          if (r.code !== 0) {
            this.output?.note(`could not check ${host} for leftover processes: ${r.stderr.trim() || `ssh exit ${r.code}`}`);
            return;
          }
          const pids = r.stdout.trim();
          if (pids) left.push(`${host}: ${pids}`);
        }),
      );
      if (left.length === 0) return;
      this.output?.note(`killed leftover processes of the job: ${left.join('; ')}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new LauncherError(`processes of job ${ctx.jobId} were still running after ${SWEEP_ROUNDS} rounds of clean-up: ${left.join('; ')}`);
  }
}

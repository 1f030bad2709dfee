import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LauncherError, UsageError } from '../../errors.js';
import type { MpiSpec } from './section.js';
import type { LaunchContext, Launcher, LauncherListener } from '../launcher.js';
import { findProgram } from '../find-program.js';
import { inheritedEnv, killGroup } from '../process-group.js';
import { workerEnvironment } from '../../job/worker-environment.js';
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
const SWEEP_ROUNDS = 3;

interface Mpirun {
  child: ChildProcess;
  exited: Promise<void>;
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
  private mpirun: Mpirun | undefined;
  private output: TaggedOutputSplitter | undefined;
  private releasing = false;
  private released: Promise<void> | undefined;
  private readonly onExit = () => killGroup(this.mpirun?.child.pid, 'SIGKILL');

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
    const workerEnv = workerEnvironment(ctx, plain ? { secret: { kind: 'none' }, jobMaster: 'none' } : { secret: { kind: 'env' } });
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
    // Values reach the ranks through `-x NAME` from this environment, never through the command line.
    const child = spawn(mpirun, args, { cwd: ctx.jobDir, env: { ...inheritedEnv(), ...workerEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    process.on('exit', this.onExit);
    const streams = Promise.all([output.follow(child.stdout!), output.follow(child.stderr!)]);
    const exited = new Promise<void>((resolve) => {
      let settled = false;
      const done = async (code: number | null, signal: NodeJS.Signals | null, note: string) => {
        if (settled) return;
        settled = true;
        killGroup(child.pid, 'SIGKILL'); // anything mpirun left in its group
        await streams;
        output.note(note);
        if (!this.releasing) {
          for (let id = 0; id < ctx.spec.workers; id++) listener.workerExited({ workerId: id, code, signal });
        }
        resolve();
      };
      child.once('exit', (code, signal) => void done(code, signal, `mpirun ended (${signal ?? `exit code ${code}`})`));
      child.once('error', (err) => void done(127, null, `could not start mpirun: ${err.message}`));
    });
    this.mpirun = { child, exited };
  }

  release(): Promise<void> {
    this.releasing = true;
    this.released ??= this.doRelease();
    return this.released;
  }

  private async doRelease(): Promise<void> {
    const run = this.mpirun;
    if (run) {
      killGroup(run.child.pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(run.child.pid, 'SIGKILL'), KILL_GRACE_MS);
      await run.exited;
      clearTimeout(timer);
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

import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { files } from '../../job/job-store.js';
import { LauncherError } from '../../errors.js';
import { SlurmSpecSchema, type SlurmSpec } from './section.js';
import type { JobSpec } from '../../spec/schema.js';
import type { WorkerInfo } from '../../protocol/messages.js';
import { FileTail } from '../file-tail.js';
import type { JobEnding, LaunchContext, Launcher, LauncherListener, ResumedWorker } from '../launcher.js';
import { DetachedCommand, type CommandFollower } from '../detached-command.js';
import { ENV, workerEnvironment, writeWorkerTokenFile } from '../../job/worker-environment.js';
import { batchScript, nodeLeftovers, srunMpiEnv, srunWorkersArgs } from './batch-script.js';
import { describeReason, slurmPhase, UNSATISFIABLE_REASONS } from './job-states.js';
import { SlurmCommands } from './slurm-commands.js';
import { RankLines } from '../mpi/tagged-output.js';
import { parseTaskExit } from './task-exits.js';

const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.js', import.meta.url));
const POLL_MS = 1000;
/** A job whose workers all completed is given this long to end by itself (so Slurm records COMPLETED). */
const NATURAL_END_MS = 20_000;
const GONE_TIMEOUT_MS = 90_000;
/** Set in the batch script of a job whose job master runs inside the allocation. */
export const IN_ALLOCATION_ENV = ENV.slurmInAllocation;
/** Key prefix of LauncherListener.remember for each srun this launcher runs: a restarted job master takes them over. */
const STEP_KEY = 'slurm-step:';
/** The workers' step inside an allocation (task N = worker N); restarted workers' steps are named after them. */
const WORKERS_STEP = 'workers';

/** What a job master remembers of an srun it runs, to follow it after a restart. */
interface RememberedStep {
  pgid: number;
  /** The worker a one-task step runs (a restart); none for the workers' step. */
  workerId?: number;
  /** How far its stderr was read. */
  from?: number;
  ended?: true;
}

export function slurmSection(spec: JobSpec): SlurmSpec {
  return spec.slurm ?? SlurmSpecSchema.parse({});
}

/**
 * Runs the job as a Slurm batch job. With the job master in the client, the client submits a batch
 * script whose srun starts the workers (task N = worker N = SLURM_PROCID), then follows the job through
 * squeue (queued with Slurm's reason, allocated, ended) and srun's task-exit lines in the batch output.
 * With the job master inside the allocation (jobMaster.placement: cluster), the batch script runs the job
 * master, and this launcher, running there, starts the workers' srun itself.
 *
 * A failed worker is restarted as a new one-task step in the same allocation (srun --overlap) with the same
 * ID. Clean-up is scancel, then waiting until Slurm no longer lists the job: Slurm itself kills every
 * process of every step on every node.
 */
export class SlurmLauncher implements Launcher {
  private ctx: LaunchContext | undefined;
  private slurm: SlurmSpec | undefined;
  private commands: SlurmCommands | undefined;
  private listener: LauncherListener | undefined;
  /** The Slurm job ID: of the batch job this launcher submitted, or of the allocation it runs in. */
  slurmJobId: string | undefined;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private tail: FileTail | undefined;
  private readonly rankLines = new RankLines();
  private ended = false;
  private releasing = false;
  private released: Promise<void> | undefined;
  /**
   * srun processes this launcher runs itself, by step name: the workers' step (in an allocation) and
   * restarted workers. Detached, with their stderr in files: they outlive a crashed job master.
   */
  private readonly steps = new Map<string, DetachedCommand>();
  private tokenFile: string | undefined;
  private readonly onExit = () => this.steps.forEach((s) => s.kill());

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    this.ctx = ctx;
    this.listener = listener;
    const slurm = (this.slurm = slurmSection(ctx.spec));
    const commands = (this.commands = new SlurmCommands(slurm));
    mkdirSync(this.logsDir, { recursive: true });
    process.on('exit', this.onExit);
    if (this.inAllocation) {
      this.slurmJobId = this.env.SLURM_JOB_ID;
      this.runStep(WORKERS_STEP, srunWorkersArgs({ spec: ctx.spec, slurm, logsDir: this.logsDir, workerCommand: this.workerCommand() }), { ...this.workerEnv(), ...srunMpiEnv(slurm) });
      return;
    }
    commands.program('srun'); // fail before submitting if restarts could not be run
    const script = path.join(ctx.jobDir, 'slurm', 'job.sbatch');
    mkdirSync(path.dirname(script), { recursive: true });
    writeFileSync(
      script,
      batchScript({
        jobId: ctx.jobId,
        spec: ctx.spec,
        slurm,
        logsDir: this.logsDir,
        body: { kind: 'workers', env: this.workerEnv(), workerCommand: this.workerCommand(), mpirunIsRoot: process.getuid?.() === 0 },
      }),
      { mode: 0o644 },
    );
    if (this.releasing) return;
    this.slurmJobId = await commands.submit(script);
    writeFileSync(path.join(ctx.jobDir, 'slurm', 'job-id'), `${this.slurmJobId}\n`);
    this.note(`submitted ${script} as Slurm job ${this.slurmJobId}`);
    this.tail = new FileTail(path.join(this.logsDir, `slurm-${this.slurmJobId}.out`), (line) => this.onBatchOutput(line));
    this.tail.start();
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    void this.poll();
  }

  /**
   * A job master restarted in the allocation (jobMaster.placement: cluster) takes over the sruns its
   * predecessor ran, from the stderr offsets it remembered: task exits written while no job master was
   * there are reported now. A restart it had decided but not run yet is run.
   */
  async resume(ctx: LaunchContext, listener: LauncherListener, workers: ResumedWorker[], remembered: Record<string, unknown>): Promise<void> {
    if (this.env[IN_ALLOCATION_ENV] !== '1' || !this.env.SLURM_JOB_ID) throw new LauncherError('only a job master inside its Slurm allocation is restarted');
    this.ctx = ctx;
    this.listener = listener;
    this.slurm = slurmSection(ctx.spec);
    this.commands = new SlurmCommands(this.slurm);
    this.slurmJobId = this.env.SLURM_JOB_ID;
    mkdirSync(this.logsDir, { recursive: true });
    process.on('exit', this.onExit);
    for (const [key, value] of Object.entries(remembered)) {
      const step = value as RememberedStep;
      if (!key.startsWith(STEP_KEY) || step.ended) continue;
      const name = key.slice(STEP_KEY.length);
      this.follow(name, step.workerId, (follower) => DetachedCommand.attach(step.pgid, this.stepFiles(name), follower), step.from);
    }
    if (!(`${STEP_KEY}${WORKERS_STEP}` in remembered)) {
      // It crashed before it recorded the workers' step: the srun it started, found by its files; none: run it.
      const files = this.stepFiles(WORKERS_STEP);
      const pgid = DetachedCommand.find(files) ?? (DetachedCommand.ended(files) ? 0 : undefined);
      if (pgid === undefined) {
        this.runStep(WORKERS_STEP, srunWorkersArgs({ spec: ctx.spec, slurm: this.slurm, logsDir: this.logsDir, workerCommand: this.workerCommand() }), { ...this.workerEnv(), ...srunMpiEnv(this.slurm) });
      } else this.follow(WORKERS_STEP, undefined, (follower) => DetachedCommand.attach(pgid, files, follower));
    }
    for (const w of workers) {
      if (w.state === 'STARTING' && w.restarts > 0 && !this.steps.has(restartStepName(w.workerId, w.restarts))) await this.restartWorker(w.workerId, w.restarts, w.info);
    }
  }

  /** Forgets the sruns without stopping them: they belong to the job master that fenced this one off. */
  abandon(): void {
    this.releasing = true;
    process.off('exit', this.onExit);
    this.steps.clear();
  }

  /** A new one-task step in the job's allocation, with the failed worker's ID (and GPUs: keptGpus). */
  async restartWorker(id: number, restartCount: number, predecessor?: WorkerInfo): Promise<void> {
    const ctx = this.ctx!;
    if (!this.slurmJobId || this.ended) throw new LauncherError(`Slurm job ${this.slurmJobId ?? '(not submitted)'} has ended; worker ${id} cannot be restarted in it`);
    const log = path.join(this.logsDir, `worker-${id}.log`);
    const cpus = this.slurm!.cpusPerTask ?? Math.ceil(ctx.spec.resources.cpu);
    const gpus = await this.keptGpus(id, predecessor);
    const args = [
      `--jobid=${this.slurmJobId}`,
      '--overlap',
      '--ntasks=1',
      '--nodes=1',
      `--cpus-per-task=${cpus}`,
      ...gpus.args,
      `--job-name=${ctx.jobId}-worker-${id}`,
      `--output=${log}`,
      `--error=${log}`,
      '--open-mode=append',
      '--',
      ...this.workerCommand(),
    ];
    this.runStep(restartStepName(id, restartCount), args, { ...this.workerEnv({ workerId: id, restartCount }), ...gpus.env }, id);
  }

  /**
   * GPUs of a restarted worker: an --overlap step shares the allocation's GPUs, and from a count Slurm picks
   * the node's first ones, perhaps a running worker's. So a worker whose predecessor registered its GPUs
   * (WorkerInfo.gpuIds, the node's indexes) restarts on that node with all of the job's GPUs there, and
   * keeps its predecessor's alone (kept-gpus.ts): the same GPUs, none of another worker's.
   */
  private async keptGpus(id: number, predecessor: WorkerInfo | undefined): Promise<{ args: string[]; env: Record<string, string> }> {
    const ids = predecessor?.gpuIds;
    if (this.ctx!.spec.resources.gpus <= 0) return { args: [], env: {} };
    if (!predecessor || !ids?.length) {
      this.note(`worker ${id} restarts with GPUs Slurm picks: its predecessor never registered its GPUs`);
      return { args: [], env: {} };
    }
    const held = await this.commands!.jobGpusOn(this.slurmJobId!, predecessor.node);
    const foreign = ids.filter((g) => !held.includes(Number(g)));
    if (foreign.length > 0) {
      throw new LauncherError(
        `worker ${id} had GPUs ${ids.join(',')} on node ${predecessor.node}, but Slurm job ${this.slurmJobId} holds ${held.length ? held.join(',') : 'none'} there ` +
          `(scontrol -d show job ${this.slurmJobId}); its restart cannot be given the same GPUs`,
      );
    }
    return { args: [`--nodelist=${predecessor.node}`, `--gres=gpu:${held.length}`], env: { [ENV.slurmKeptGpus]: ids.join(',') } };
  }

  release(ending: JobEnding = 'failed'): Promise<void> {
    this.releasing = true;
    this.released ??= this.doRelease(ending);
    return this.released;
  }

  private async doRelease(ending: JobEnding): Promise<void> {
    clearInterval(this.poller);
    const commands = this.commands;
    const jobId = this.slurmJobId;
    try {
      if (this.inAllocation) {
        // Inside the allocation: end our own steps; the allocation ends when the batch step (we) exits.
        // Workers that completed are let exit by themselves (cleaning their node's scratch) first.
        if (ending === 'succeeded') await this.stepsEnded(NATURAL_END_MS);
        await this.stopSteps();
        await this.removeNodeLeftovers();
        return;
      }
      if (!commands || !jobId) return;
      if (ending === 'succeeded' && (await this.waitGone(jobId, NATURAL_END_MS))) return;
      await commands.cancel(jobId);
      this.note(`scancel ${jobId} (the job ${ending})`);
      if (!(await this.waitGone(jobId, GONE_TIMEOUT_MS))) {
        throw new LauncherError(`Slurm job ${jobId} was still listed by squeue ${GONE_TIMEOUT_MS / 1000}s after scancel`);
      }
      await this.stopSteps();
    } finally {
      process.off('exit', this.onExit);
      await this.tail?.stop();
    }
  }

  /**
   * Inside the allocation, what the batch script's last srun does for a job master in the client: removes
   * on every node what a SIGKILLed worker left (nodeLeftovers), as one more step before the allocation ends.
   */
  private async removeNodeLeftovers(): Promise<void> {
    const nodes = Number(this.env.SLURM_JOB_NUM_NODES);
    if (!this.slurmJobId || !Number.isInteger(nodes) || nodes < 1) return;
    const gone = nodeLeftovers(this.ctx!.jobId, this.ctx!.spec, this.workDir.path);
    const r = await this.commands!.run('srun', [`--jobid=${this.slurmJobId}`, '--overlap', `--nodes=${nodes}`, '--ntasks-per-node=1', `--ntasks=${nodes}`, 'rm', '-rf', '--', ...gone]);
    if (r.code !== 0) this.note(`could not remove ${gone.join(' ')} on the job's nodes: ${r.stderr.trim() || `srun exit ${r.code}`}`);
  }

  private get workDir(): { path: string; scratch: true } {
    return { path: path.join('/tmp', 'twister2', this.ctx!.jobId), scratch: true };
  }

  private get inAllocation(): boolean {
    return this.env[IN_ALLOCATION_ENV] === '1' && Boolean(this.env.SLURM_JOB_ID);
  }

  private get logsDir(): string {
    return path.join(this.ctx!.jobDir, files.logs);
  }

  private workerCommand(): string[] {
    return [process.execPath, WORKER_MAIN];
  }

  /**
   * What the workers get. The worker token stays out of the script and of Slurm's copy of the environment:
   * workers read it from the job directory's 0600 worker-token file, which a Slurm cluster's shared home
   * makes visible. The admin secret (the `token` file) is for the job master alone.
   */
  private workerEnv(id: { workerId: number; restartCount: number } | Record<string, never> = {}): Record<string, string> {
    const ctx = this.ctx!;
    this.tokenFile ??= writeWorkerTokenFile(ctx.jobDir, ctx.token);
    return workerEnvironment(ctx, { secret: { kind: 'file', file: this.tokenFile }, workDir: this.workDir, ...id });
  }

  /** Runs srun here (a restart, or the workers' step inside an allocation) and reports its tasks' exits. */
  private runStep(name: string, args: string[], env: Record<string, string>, workerId?: number): void {
    const srun = this.commands!.program('srun');
    const base = workerId === undefined ? this.env : this.commands!.env;
    const files = this.stepFiles(name);
    mkdirSync(path.dirname(files.stderr), { recursive: true });
    this.follow(name, workerId, (follower) => DetachedCommand.start(srun, args, { env: { ...base, ...env }, files, ...follower }));
  }

  /**
   * Follows a step's stderr (from offset `from`) and end, remembering how far it got for a job master
   * restarted after this one: a line read twice could be a task exit reported twice.
   */
  private follow(name: string, workerId: number | undefined, run: (f: CommandFollower) => DetachedCommand, from?: number): void {
    let at = from;
    const remember = (value: RememberedStep) => this.listener!.remember?.(`${STEP_KEY}${name}`, value);
    const where = () => ({ pgid: step.pgid, ...(workerId !== undefined ? { workerId } : {}), ...(at !== undefined ? { from: at } : {}) });
    const step = run({
      ...(from !== undefined ? { from: { stderr: from } } : {}),
      // A one-task step's "task 0" is not worker 0: its end is srun's exit code.
      onLine: (line) => (workerId === undefined ? this.onBatchOutput(line) : this.note(`${name}: ${line}`)),
      onProgress: (_stream, offset) => {
        at = offset;
        remember(where());
      },
      onExit: ({ code, signal }) => {
        this.steps.delete(name);
        if (this.releasing) return;
        remember({ pgid: step.pgid, ended: true });
        // srun's exit code is the task's; a clean exit was reported by the worker runtime itself. The run is
        // named: its failure may have been counted already (a missed heartbeat), even after a replacement registered.
        if (workerId !== undefined && (code !== 0 || signal)) this.listener!.workerExited({ workerId, code, signal, run: name });
      },
    });
    this.steps.set(name, step);
    if (step.running) remember(where());
  }

  private stepFiles(name: string): { stderr: string; exit: string } {
    const dir = path.join(this.ctx!.jobDir, 'slurm', 'steps');
    return { stderr: path.join(dir, `${name}.stderr`), exit: path.join(dir, `${name}.exit`) };
  }

  private async stepsEnded(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.steps.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }

  /** srun forwards the first SIGTERM to its tasks; SIGKILL if they do not go. */
  private async stopSteps(): Promise<void> {
    await Promise.all([...this.steps.values()].map((s) => s.stop()));
  }

  /**
   * srun's "task N: Killed" lines (batch output or our own srun's stderr) become worker exits. With
   * launch: mpirun the ranks' output is in the batch output, tagged: each rank's lines go to its worker log.
   */
  private onBatchOutput(line: string): void {
    const exit = parseTaskExit(line);
    // srun may tell of a task's exit well after the worker's own failure report and its replacement's registration.
    if (exit && !this.releasing) for (const e of exit.exits) this.listener!.workerExited({ ...e, run: `${WORKERS_STEP} task ${e.workerId}` });
    if (this.slurm?.launch !== 'mpirun') return;
    for (const l of this.rankLines.push(line)) if (l.rank !== undefined) appendFileSync(path.join(this.logsDir, `worker-${l.rank}.log`), `${l.text}\n`);
  }

  private async poll(): Promise<void> {
    if (this.polling || this.ended || !this.slurmJobId) return;
    this.polling = true;
    try {
      const entry = await this.commands!.queueEntry(this.slurmJobId);
      if (this.releasing) return;
      const phase = entry ? slurmPhase(entry.state) : undefined;
      if (entry && phase?.phase === 'queued') {
        if (UNSATISFIABLE_REASONS.has(entry.reason)) {
          return this.clusterEnded(`Slurm cannot run job ${this.slurmJobId} as submitted: ${describeReason(entry.reason)}`);
        }
        this.listener!.queued?.(`Slurm job ${this.slurmJobId} is ${phase.state} (${describeReason(entry.reason)})`);
      } else if (entry && phase?.phase === 'allocated') {
        this.listener!.allocated?.();
      } else {
        const record = await this.commands!.finalRecord(this.slurmJobId);
        const final = slurmPhase(record?.state || entry?.state || 'UNKNOWN');
        const detail = record ? `${final.state}${final.meaning ? `: ${final.meaning}` : ''}; exit code ${record.exitCode}` : 'no record left in the controller';
        await this.tail?.stop();
        this.clusterEnded(`Slurm job ${this.slurmJobId} ended (${detail}); its output is ${path.join(this.logsDir, `slurm-${this.slurmJobId}.out`)}`);
      }
    } catch (err) {
      this.note(`could not read the state of Slurm job ${this.slurmJobId}: ${(err as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  private clusterEnded(message: string): void {
    this.ended = true;
    clearInterval(this.poller);
    this.listener!.clusterEnded?.(message);
  }

  private async waitGone(jobId: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const entry = await this.commands!.queueEntry(jobId).catch(() => ({ state: 'UNKNOWN', reason: '', nodes: '' }));
      if (!entry) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private note(text: string): void {
    try {
      appendFileSync(path.join(this.logsDir, 'slurm-launcher.log'), `${new Date().toISOString()} ${text}\n`);
    } catch {
      // The log is a convenience.
    }
  }
}

function restartStepName(workerId: number, restartCount: number): string {
  return `worker-${workerId}-restart-${restartCount}`;
}

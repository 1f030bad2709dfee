import { execFile } from 'node:child_process';
import path from 'node:path';
import { LauncherError, UsageError } from '../../errors.js';
import type { SlurmSpec } from './section.js';
import { findProgram } from '../find-program.js';
import { jobGpusByNodeGroup } from './job-gpus.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface QueueEntry {
  state: string;
  reason: string;
  nodes: string;
}

export interface FinalRecord {
  state: string;
  reason: string;
  exitCode: string;
}

/** Client variables a Slurm job may see: no secrets of the client's shell end up in Slurm's copy of the job. */
const SAFE_ENV = /^(PATH|HOME|USER|LOGNAME|LANG|LC_[A-Z]+|TZ|TMPDIR|SHELL|SLURM_CONF|SLURM_CLUSTERS|SQUEUE_[A-Z_]+|SBATCH_[A-Z_]+)$/;

/** The environment Slurm's commands run with (and sbatch hands to the job): an allowlist plus `slurm.exportEnv`. */
export function slurmEnvironment(slurm: SlurmSpec, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (SAFE_ENV.test(k) || slurm.exportEnv.includes(k))) out[k] = v;
  return out;
}

/** sbatch, squeue, scontrol, scancel and sinfo, found once, run with the job's Slurm environment. */
export class SlurmCommands {
  constructor(
    private readonly slurm: SlurmSpec,
    readonly env: Record<string, string> = slurmEnvironment(slurm),
  ) {}

  /** The full path of a Slurm command, or a clear error saying Slurm is missing. */
  program(name: 'sbatch' | 'squeue' | 'scontrol' | 'scancel' | 'sinfo' | 'srun'): string {
    const found = this.slurm.binDir ? findProgram(path.join(this.slurm.binDir, name)) : findProgram(name, this.env.PATH ?? '');
    if (!found) {
      throw new UsageError(
        this.slurm.binDir
          ? `Slurm's ${name} was not found in ${this.slurm.binDir} (slurm.binDir); point slurm.binDir at the directory that holds sbatch`
          : `the slurm launcher needs Slurm's ${name}, which was not found on PATH; run twister2 on a Slurm login node, install Slurm's client commands (Debian: apt-get install slurm-client) or set slurm.binDir`,
      );
    }
    return found;
  }

  run(name: Parameters<SlurmCommands['program']>[0], args: string[], timeoutMs = 30_000): Promise<CommandResult> {
    const file = this.program(name);
    return new Promise((resolve) => {
      execFile(file, args, { env: this.env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() || (err && typeof err.code !== 'number' ? err.message : '') });
      });
    });
  }

  /** `sbatch --parsable`: the Slurm job ID, or a LauncherError with sbatch's own words and the script's path. */
  async submit(scriptFile: string): Promise<string> {
    const r = await this.run('sbatch', ['--parsable', scriptFile], 60_000);
    const id = /^(\d+)(;\S+)?$/.exec(r.stdout.trim())?.[1];
    if (r.code === 0 && id) return id;
    const said = r.stderr.trim().replace(/^sbatch: error: /gm, '').split('\n').join('; ') || `exit code ${r.code}`;
    let hint = '';
    if (/invalid partition/i.test(said)) {
      const parts = await this.partitions().catch(() => []);
      if (parts.length) hint = `; partitions on this cluster: ${parts.join(', ')}`;
    }
    if (/invalid node name/i.test(said)) {
      const asked = [this.slurm.nodelist && `slurm.nodelist is "${this.slurm.nodelist}"`, this.slurm.exclude && `slurm.exclude is "${this.slurm.exclude}"`].filter(Boolean);
      const nodes = await this.nodes().catch(() => []);
      hint = `; ${asked.join(' and ') || 'a node name in the spec is not one of this cluster\'s'}${nodes.length ? `; nodes on this cluster: ${nodes.join(', ')}` : ''}`;
    }
    throw new LauncherError(`sbatch refused the job: ${said}${hint} (the batch script is ${scriptFile})`);
  }

  /** The job's line in squeue, or undefined once Slurm no longer lists it. */
  async queueEntry(jobId: string): Promise<QueueEntry | undefined> {
    const r = await this.run('squeue', ['-h', '-j', jobId, '-o', '%T|%r|%N']);
    if (r.code !== 0) {
      if (/invalid job id/i.test(r.stderr)) return undefined;
      throw new LauncherError(`squeue failed for Slurm job ${jobId}: ${r.stderr.trim() || `exit code ${r.code}`}`);
    }
    const line = r.stdout.trim().split('\n')[0];
    if (!line) return undefined;
    const [state = '', reason = '', nodes = ''] = line.split('|');
    return { state, reason, nodes };
  }

  /** What the controller remembers of an ended job (for MinJobAge seconds), or undefined. */
  async finalRecord(jobId: string): Promise<FinalRecord | undefined> {
    const r = await this.run('scontrol', ['show', 'job', '--oneliner', jobId]);
    if (r.code !== 0) return undefined;
    const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(r.stdout)?.[1] ?? '';
    return { state: field('JobState'), reason: field('Reason'), exitCode: field('ExitCode') };
  }

  async cancel(jobId: string): Promise<void> {
    const r = await this.run('scancel', [jobId]);
    if (r.code !== 0 && !/invalid job id|already completing or completed/i.test(r.stderr)) {
      throw new LauncherError(`scancel ${jobId} failed: ${r.stderr.trim() || `exit code ${r.code}`}`);
    }
  }

  /**
   * The node indexes of the GPUs Slurm job `jobId` holds on `node` (`scontrol -d show job`), or a
   * LauncherError saying why they cannot be read.
   */
  async jobGpusOn(jobId: string, node: string): Promise<number[]> {
    const r = await this.run('scontrol', ['-d', 'show', 'job', '--oneliner', jobId]);
    if (r.code !== 0) throw new LauncherError(`scontrol -d show job ${jobId} failed: ${r.stderr.trim() || `exit code ${r.code}`}`);
    for (const group of jobGpusByNodeGroup(r.stdout)) if ((await this.hostnames(group.nodes)).includes(node)) return group.gpus;
    throw new LauncherError(`Slurm job ${jobId} has no node ${node} (scontrol -d show job ${jobId} lists its nodes)`);
  }

  /** A hostlist expression (`node[01-03],gpu7`) as node names; `scontrol show hostnames` expands it. */
  private async hostnames(list: string): Promise<string[]> {
    if (!/[[\]]/.test(list)) return list.split(',');
    const r = await this.run('scontrol', ['show', 'hostnames', list]);
    if (r.code !== 0) throw new LauncherError(`scontrol show hostnames ${list} failed: ${r.stderr.trim() || `exit code ${r.code}`}`);
    return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  async nodes(): Promise<string[]> {
    const r = await this.run('sinfo', ['-h', '-N', '-o', '%N']);
    return r.code === 0 ? [...new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean))] : [];
  }

  async partitions(): Promise<string[]> {
    const r = await this.run('sinfo', ['-h', '-o', '%P']);
    return r.code === 0 ? [...new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean))] : [];
  }
}

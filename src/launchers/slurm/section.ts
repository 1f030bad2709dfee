import { z } from 'zod';
import { sizeSchema } from '../../spec/size-schema.js';
import { parseDuration } from '../../spec/units.js';
import { mcaSchema } from '../mpi/section.js';

/**
 * The `slurm` section: what the batch script asks Slurm for beyond `resources` (which are per worker and
 * become --cpus-per-task, --mem-per-cpu and --gpus-per-task). Names follow sbatch's options so a Slurm user
 * recognises them; anything not modelled goes in `directives`, verbatim.
 */

/** Slurm's own time formats: "minutes", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS", or "UNLIMITED". */
const SLURM_TIME = /^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?|UNLIMITED|INFINITE)$/;
const TIME_RULE = 'expected a time limit such as "30m", "2h", or Slurm\'s own "90", "01:30:00", "2-00:00:00"';

/** Our durations ("2h") or Slurm's formats, normalised to what sbatch --time takes. */
const timeLimit = z.union([z.string(), z.number()], { error: TIME_RULE }).transform((v, ctx) => {
  const s = String(v).trim();
  if (typeof v === 'string' && SLURM_TIME.test(s)) return s;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.issues.push({ code: 'custom', input: v, message: `"${v}" is not a time limit; ${TIME_RULE}` });
    return z.NEVER;
  }
  return slurmMinutesSeconds(ms);
});

/** sbatch's "MM:SS" for any duration (minutes may exceed 59), rounded up to a whole second. */
export function slurmMinutesSeconds(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

const memory = sizeSchema(['4Gi', '16G'], { positive: true });

/** A value that goes onto one `#SBATCH` line: a newline there would start a new line of shell. */
const oneLine = (what: string) =>
  z.string({ error: `expected ${what}` }).min(1).regex(/^[^\n\r]+$/, `${what} must be on one line`);

const nodeNames = z.union([oneLine('node names'), z.array(oneLine('a node name')).min(1)]).transform((v) => (Array.isArray(v) ? v.join(',') : v));

export const SlurmSpecSchema = z
  .strictObject({
    partition: oneLine('a partition name').optional(),
    account: oneLine('an account name').optional(),
    qos: oneLine('a QOS name').optional(),
    time: timeLimit.optional().describe('--time: the job\'s wall-clock limit'),
    nodes: z
      .union([z.number().int().min(1), z.string().regex(/^\d+(-\d+)?$/, 'expected a node count such as 2 or a range such as "2-4"')], {
        error: 'expected a node count such as 2 or a range such as "2-4"',
      })
      .optional(),
    tasksPerNode: z.number({ error: 'expected a whole number of workers per node' }).int().min(1).optional(),
    /** Defaults to resources.cpu rounded up: Slurm allocates whole CPUs. */
    cpusPerTask: z.number({ error: 'expected a whole number of CPUs per worker' }).int().min(1).optional(),
    /** Memory per node (--mem). Without it each worker asks for resources.memory through --mem-per-cpu. */
    memoryPerNode: memory.optional(),
    /** Generic resources as sbatch writes them, e.g. "gpu:a100:2" (per node). resources.gpus becomes --gpus-per-task. */
    gres: oneLine('a gres specification such as "gpu:2"').optional(),
    constraint: oneLine('a constraint such as "fast&ib"').optional(),
    nodelist: nodeNames.optional(),
    exclude: nodeNames.optional(),
    exclusive: z.boolean().default(false),
    /** More #SBATCH options, verbatim (e.g. "--mail-type=END"). */
    directives: z
      .array(z.string().regex(/^--?[A-Za-z][^\n\r]*$/, 'expected an sbatch option such as "--mail-type=END" (one per entry)'), {
        error: 'expected a list of sbatch options',
      })
      .default([]),
    /** Extra options for the srun that starts the workers (e.g. "--cpu-bind=cores"). */
    srunArgs: z.array(oneLine('an srun option')).default([]),
    /**
     * srun starts the workers; mpirun (inside the allocation) when the worker is an MPI program. srun
     * starts MPI ranks itself with `mpi` (srun --mpi=pmix).
     */
    launch: z
      .enum(['srun', 'mpirun'], { error: 'expected "srun" or "mpirun"; for srun --mpi=pmix write launch: srun and mpi: pmix' })
      .default('srun'),
    mpirun: z.string().min(1).default('mpirun').describe('mpirun on the nodes, for launch: mpirun'),
    /**
     * Slurm's MPI plugin for launch: srun (`srun --mpi=pmix`): every task is an MPI rank, wired up by
     * Slurm's PMIx server, with no mpirun. Without it srun uses the cluster's MpiDefault.
     */
    mpi: z
      .enum(['pmix'], { error: 'expected "pmix" (srun --mpi=pmix; the plugin needs PMIx on the nodes), or leave mpi out and use launch: mpirun' })
      .optional(),
    /** OpenMPI MCA parameters for the MPI modes: `--mca` for mpirun, `OMPI_MCA_<name>` for srun --mpi=pmix. */
    mca: mcaSchema,
    /** Where Slurm's commands are, when they are not on PATH. */
    binDir: z.string().startsWith('/', 'expected an absolute path to the directory holding sbatch').optional(),
    /** Client environment variables to pass on to the job (Slurm's own SLURM_* settings always are). */
    exportEnv: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')).default([]),
  })
  .superRefine((s, ctx) => {
    if (s.launch === 'mpirun' && s.srunArgs.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['srunArgs'], message: 'srunArgs apply to launch: srun; with launch: mpirun put options in the worker command' });
    }
    if (s.launch === 'mpirun' && s.mpi !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['mpi'],
        message: `mpi "${s.mpi}" is for srun's own launch of MPI ranks, but launch is "mpirun" (mpirun brings its own runtime); remove slurm.mpi, or set slurm.launch: srun`,
      });
    }
    const mcaNames = Object.keys(s.mca);
    if (mcaNames.length > 0 && !isMpiLaunch(s)) {
      ctx.addIssue({
        code: 'custom',
        path: ['mca'],
        message: `MCA parameters (${mcaNames.join(', ')}) are for MPI programs, but this job starts plain srun tasks; set slurm.mpi: pmix or slurm.launch: mpirun, or remove slurm.mca`,
      });
    }
  });

/** The job's workers are MPI ranks: started by mpirun, or by srun through an MPI plugin. */
export function isMpiLaunch(s: Pick<SlurmSpec, 'launch' | 'mpi'>): boolean {
  return s.launch === 'mpirun' || s.mpi !== undefined;
}

/** How Slurm's MPI mode is named in messages: `slurm.launch: mpirun` or `slurm.mpi: pmix`. */
export function mpiLaunchName(s: Pick<SlurmSpec, 'launch' | 'mpi'>): string {
  return s.mpi !== undefined ? `slurm.mpi: ${s.mpi}` : `slurm.launch: ${s.launch}`;
}

export type SlurmSpec = z.output<typeof SlurmSpecSchema>;

/** For the job spec's superRefine, when cluster is "slurm": the checks that need more than the slurm section. */
export function refineSlurmSpec(spec: { jobMaster: { placement: string }; slurm?: SlurmSpec | undefined }, ctx: z.RefinementCtx): void {
  if (spec.slurm?.launch === 'mpirun' && spec.jobMaster.placement === 'cluster') {
    ctx.addIssue({
      code: 'custom',
      path: ['slurm', 'launch'],
      message:
        'launch "mpirun" runs mpirun from the batch script, but with jobMaster.placement "cluster" the job master in the allocation starts the workers with srun; use slurm.mpi: pmix (srun --mpi=pmix), or jobMaster.placement: client',
    });
  }
}

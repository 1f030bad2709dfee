import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { Twister2Error } from '../errors.js';
import { PackageRefSchema } from '../uploader/uploader.js';

/** What the worker runtime reads from its environment; launchers set it (src/launchers/worker-env.ts). */
const WorkerEnvSchema = z.object({
  TWISTER2_JOB_ID: z.string().min(1),
  TWISTER2_JOB_MASTER_URL: z.string().url().optional(),
  TWISTER2_JOB_MASTER_SERVICE: z.string().min(1).optional(),
  TWISTER2_JOB_TOKEN: z.string().min(16).optional(),
  /** Where a cluster that keeps a copy of the job's environment (Slurm) finds the secret instead: a 0600 file. */
  TWISTER2_JOB_TOKEN_FILE: z.string().min(1).optional(),
  TWISTER2_PACKAGE_REF: z.string().transform((s, ctx) => {
    try {
      return PackageRefSchema.parse(JSON.parse(s));
    } catch {
      ctx.issues.push({ code: 'custom', input: s, message: 'not a package reference' });
      return z.NEVER;
    }
  }),
  TWISTER2_RESTART_COUNT: z.coerce.number().int().min(0).default(0),
  TWISTER2_REGISTRATION_TIMEOUT_MS: z.coerce.number().int().positive().default(600_000),
  TWISTER2_WORK_DIR: z.string().optional(),
  /** "1": TWISTER2_WORK_DIR is the host's scratch for this job, removed by the last worker on the host to end. */
  TWISTER2_WORK_DIR_SCRATCH: z.string().optional(),
});

export type WorkerEnv = z.infer<typeof WorkerEnvSchema> & { workDir: string; scratchWorkDir: boolean; TWISTER2_JOB_TOKEN: string };

export function readWorkerEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  const parsed = WorkerEnvSchema.safeParse(env);
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => String(i.path[0])))].join(', ');
    throw new Twister2Error(`the worker runtime was started without a valid ${names}; it is meant to be started by a twister2 launcher`);
  }
  const { workDir, scratch } = workDirOf(parsed.data);
  return { ...parsed.data, workDir, scratchWorkDir: scratch, TWISTER2_JOB_TOKEN: jobToken(parsed.data) };
}

/** The launcher's work dir, or by default a scratch directory of the job under the system's temp dir. */
export function workDirOf(env: { TWISTER2_WORK_DIR?: string | undefined; TWISTER2_WORK_DIR_SCRATCH?: string | undefined; TWISTER2_JOB_ID?: string | undefined }): { workDir: string; scratch: boolean } {
  if (env.TWISTER2_WORK_DIR) return { workDir: env.TWISTER2_WORK_DIR, scratch: env.TWISTER2_WORK_DIR_SCRATCH === '1' };
  return { workDir: path.join(os.tmpdir(), 'twister2', env.TWISTER2_JOB_ID ?? 'job'), scratch: true };
}

function jobToken(env: { TWISTER2_JOB_TOKEN?: string | undefined; TWISTER2_JOB_TOKEN_FILE?: string | undefined }): string {
  if (env.TWISTER2_JOB_TOKEN) return env.TWISTER2_JOB_TOKEN;
  if (!env.TWISTER2_JOB_TOKEN_FILE) throw new Twister2Error('the worker runtime was started without TWISTER2_JOB_TOKEN or TWISTER2_JOB_TOKEN_FILE; it is meant to be started by a twister2 launcher');
  try {
    const token = readFileSync(env.TWISTER2_JOB_TOKEN_FILE, 'utf8').trim();
    if (token.length >= 16) return token;
  } catch (err) {
    throw new Twister2Error(`cannot read the job token from ${env.TWISTER2_JOB_TOKEN_FILE} (TWISTER2_JOB_TOKEN_FILE): ${(err as Error).message}; the job directory must be on a file system every node shares`);
  }
  throw new Twister2Error(`${env.TWISTER2_JOB_TOKEN_FILE} (TWISTER2_JOB_TOKEN_FILE) does not hold a job token`);
}

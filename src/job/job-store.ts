import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { JobDirectoryError, JobNotFoundError } from '../errors.js';
import { JobStatusSchema, type JobStatus } from '../protocol/messages.js';

/**
 * Where a machine keeps its jobs: `$TWISTER2_HOME/jobs/<jobId>/` (default ~/.twister2) with the
 * record, the secret (mode 0600, never in the record), the package, the logs and the final status.
 */
export function twister2Home(): string {
  return process.env.TWISTER2_HOME ?? path.join(os.homedir(), '.twister2');
}

/** Where `twister2 dashboard` keeps its token, key and history by default (and where a client finds its token). */
export function dashboardHome(): string {
  return path.join(twister2Home(), 'dashboard');
}

export function jobsRoot(): string {
  return path.join(twister2Home(), 'jobs');
}

export const JobRecordSchema = z.object({
  jobId: z.string(),
  name: z.string(),
  cluster: z.string(),
  placement: z.enum(['client', 'cluster', 'none']),
  workers: z.number().int(),
  createdAt: z.string(),
  package: z.object({ sha256: z.string(), size: z.number().int() }),
  jobMaster: z
    .object({
      url: z.string(),
      /** A job master process of this machine (or of a cluster host, for messages). */
      pid: z.number().int().optional(),
      /** The process that restarts the job master when it crashes (same machine). */
      supervisorPid: z.number().int().optional(),
      /** A job master in a Kubernetes pod, reached through the API server's service proxy with these credentials. */
      kubernetes: z.object({ kubeconfig: z.string().optional(), context: z.string().optional(), namespace: z.string() }).optional(),
    })
    .optional(),
});
export type JobRecord = z.infer<typeof JobRecordSchema>;

export const files = {
  record: 'job.json',
  token: 'token',
  /** The job master's token for its dashboard (spec `dashboard.url`), mode 0600: for job masters that get no secrets from the client otherwise (Slurm's batch step). */
  dashboardToken: 'dashboard-token',
  spec: 'spec.json',
  package: 'package.tar.gz',
  status: 'status.json',
  logs: 'logs',
  jobMasterLog: 'jobmaster.log',
  /** Where the job master unpacks the package for the job's driver (removed when the driver ended). */
  driverPackage: 'driver',
} as const;

/** The driver's output, in the `logs` directory next to the workers' `worker-N.log`. */
export const DRIVER_LOG = 'driver.log';

/** A DNS-1123 label: the job name, a UTC timestamp and 4 random hex digits. */
export function newJobId(name: string, now = new Date()): string {
  const ts = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${name.slice(0, 40)}-${ts}-${randomBytes(2).toString('hex')}`;
}

export function jobDirOf(jobId: string): string {
  return path.join(jobsRoot(), jobId);
}

export async function createJobDir(jobId: string): Promise<string> {
  const dir = jobDirOf(jobId);
  await mkdir(path.join(dir, files.logs), { recursive: true, mode: 0o700 });
  return dir;
}

/** Writes through a temp file and a rename, so readers never see half a file. */
export async function writeJson(file: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode });
  await rename(tmp, file);
}

export async function readRecord(jobDir: string): Promise<JobRecord> {
  return readJobFile(jobDir, files.record, JobRecordSchema, 'record');
}

/**
 * Reads one of a job directory's JSON files. A missing or corrupt file (a submission killed half-way, a
 * hand edit, a full disk) is a JobDirectoryError naming the file and how to get rid of the directory.
 */
async function readJobFile<T>(jobDir: string, name: string, schema: z.ZodType<T>, what: string): Promise<T> {
  const file = path.join(jobDir, name);
  const fix = `it is not a job twister2 can use; remove it with \`rm -rf ${jobDir}\``;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new JobDirectoryError(`job directory ${jobDir} has no readable ${name} (the job's ${what}: ${code === 'ENOENT' ? 'missing' : code}); ${fix}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JobDirectoryError(`${file} (the job's ${what}) is not valid JSON (${(err as Error).message}); ${fix}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new JobDirectoryError(`${file} (the job's ${what}) is corrupt: ${issue.path.join('.') || '(root)'}: ${issue.message}; ${fix}`);
  }
  return parsed.data;
}

export async function readToken(jobDir: string): Promise<string> {
  return (await readFile(path.join(jobDir, files.token), 'utf8')).trim();
}

export async function readFinalStatus(jobDir: string): Promise<JobStatus | undefined> {
  if (!existsSync(path.join(jobDir, files.status))) return undefined;
  return readJobFile(jobDir, files.status, JobStatusSchema, 'final status');
}

/** Finds a job by its full ID or a unique prefix of it. */
export async function findJob(ref: string): Promise<string> {
  const ids = await listJobIds();
  if (ids.includes(ref)) return jobDirOf(ref);
  const matches = ids.filter((id) => id.startsWith(ref));
  if (matches.length === 1) return jobDirOf(matches[0]!);
  if (matches.length > 1) throw new JobNotFoundError(`"${ref}" matches ${matches.length} jobs (${matches.slice(0, 5).join(', ')}); give more of the ID`);
  throw new JobNotFoundError(`no job "${ref}" in ${jobsRoot()}; \`twister2 list\` shows the jobs`);
}

export async function listJobIds(): Promise<string[]> {
  try {
    const entries = await readdir(jobsRoot(), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

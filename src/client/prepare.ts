import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PackageError } from '../errors.js';
import { checkCapabilities } from '../launchers/registry.js';
import { packJob, safeExtractArchive } from '../package/index.js';
import { specToInput, type JobSpec, type JobSpecInput } from '../spec/schema.js';
import { resolveJobSpec, SPEC_FILE_NAMES } from '../spec/load.js';
import { createJobDir, files, newJobId, writeJson, type JobRecord } from '../job/job-store.js';
import { splitSecrets, type JobSecrets } from '../job/secrets.js';
import { issueReportToken, withDashboardFromEnv } from './dashboard-token.js';

export interface PreparedJob {
  jobId: string;
  jobDir: string;
  /** The spec without credentials: what the package, the job directory and the workers see. */
  spec: JobSpec;
  secrets: JobSecrets;
  token: string;
  packageFile: string;
  packageSha256: string;
  packageSize: number;
}

const ARCHIVE = /\.(zip|tar\.gz|tgz)$/i;

/**
 * Everything before a launcher runs: read the job (directory, .zip or .tar.gz), resolve and validate
 * the spec, and only then create the job directory, the secret and the package. A bad spec or package
 * therefore creates nothing.
 */
export async function prepareJob(
  source: string,
  overrides: Partial<JobSpecInput> = {},
  overridesSource?: string,
  onWarning: (message: string) => void = (m) => process.emitWarning(m, 'Twister2Warning'),
): Promise<PreparedJob> {
  const abs = path.resolve(source);
  if (!existsSync(abs)) throw new PackageError(`job "${source}" does not exist; give a directory, a .zip or a .tar.gz`);
  const isDir = statSync(abs).isDirectory();
  if (!isDir && !ARCHIVE.test(abs)) throw new PackageError(`job "${source}" is neither a directory nor a .zip / .tar.gz archive`);
  const unpacked = isDir ? undefined : await mkdtemp(path.join(os.tmpdir(), 'twister2-src-'));
  try {
    if (unpacked) await safeExtractArchive(abs, unpacked);
    const root = unpacked ?? abs;
    const resolved = splitSecrets(withDashboardFromEnv(await resolveJobSpec(root, overrides, overridesSource)));
    const { spec } = resolved;
    let { secrets } = resolved;
    checkProgramExists(root, spec);
    // The cluster's capabilities (placement, uploader, restarts) are checked before anything is created.
    checkCapabilities(spec);
    const jobId = newJobId(spec.name);
    const jobDir = await createJobDir(jobId);
    try {
      // Asked while the job is packed: a slow dashboard holds the submission up as little as it can (never rejects).
      const issuing = spec.dashboard ? issueReportToken(spec.dashboard.url, jobId, onWarning) : undefined;
      // The spec file stays out: it may hold credentials, and the manifest carries the resolved spec without them.
      const info = await packJob({ source: root, outFile: path.join(jobDir, files.package), manifestExtra: { spec: specToInput(spec), view: spec }, omit: SPEC_FILE_NAMES });
      if (issuing) {
        const dashboardToken = await issuing;
        if (dashboardToken) {
          secrets = { ...secrets, dashboardToken };
          await writeFile(path.join(jobDir, files.dashboardToken), dashboardToken + '\n', { mode: 0o600 });
        }
      }
      const token = randomBytes(32).toString('base64url');
      await writeFile(path.join(jobDir, files.token), token + '\n', { mode: 0o600 });
      await writeJson(path.join(jobDir, files.spec), specToInput(spec));
      const record: JobRecord = {
        jobId,
        name: spec.name,
        cluster: spec.cluster,
        placement: spec.jobMaster.placement,
        workers: spec.workers,
        createdAt: new Date().toISOString(),
        package: { sha256: info.sha256, size: info.size },
      };
      await writeJson(path.join(jobDir, files.record), record);
      return { jobId, jobDir, spec, secrets, token, packageFile: info.file, packageSha256: info.sha256, packageSize: info.size };
    } catch (err) {
      await rm(jobDir, { recursive: true, force: true });
      throw err;
    }
  } finally {
    if (unpacked) await rm(unpacked, { recursive: true, force: true });
  }
}

function checkProgramExists(root: string, spec: JobSpec): void {
  for (const [field, mod] of [['worker.module', spec.worker.module], ['driver.module', spec.driver?.module]] as const) {
    if (mod === undefined) continue;
    const file = path.resolve(root, mod);
    if (!file.startsWith(root + path.sep)) throw new PackageError(`${field} "${mod}" points outside the job; give a path inside it`);
    if (!existsSync(file)) throw new PackageError(`${field} "${mod}" is not in the job (looked for ${path.relative(process.cwd(), file) || file})`);
  }
}

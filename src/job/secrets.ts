import { z } from 'zod';
import { SpecError } from '../errors.js';
import type { JobSpec } from '../spec/schema.js';

/**
 * Credentials a job needs on the client side (uploads, cleanup), kept apart from the spec: the spec
 * goes into the package and the job directory, secrets only into a 0600 file of the job directory.
 */
export const JobSecretsSchema = z.object({
  httpToken: z.string().optional(),
  s3Credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string(), sessionToken: z.string().optional() }).optional(),
  /** The job master's token for spec `dashboard.url`: the dashboard issued it, and it reports for this job only. */
  dashboardToken: z.string().optional(),
});
export type JobSecrets = z.infer<typeof JobSecretsSchema>;

export function splitSecrets(spec: JobSpec, env: NodeJS.ProcessEnv = process.env): { spec: JobSpec; secrets: JobSecrets } {
  const secrets: JobSecrets = {};
  const uploader = { ...spec.uploader };
  if (uploader.kind === 'http' && uploader.http) {
    const token = env[uploader.http.tokenEnv];
    if (!token) {
      throw new SpecError([
        { path: 'uploader.http.tokenEnv', message: `environment variable ${uploader.http.tokenEnv} is not set; it must hold the package server's token` },
      ]);
    }
    secrets.httpToken = token;
  }
  if (uploader.s3?.credentials) {
    secrets.s3Credentials = uploader.s3.credentials;
    const { credentials: _dropped, ...rest } = uploader.s3;
    uploader.s3 = rest;
  }
  return { spec: { ...spec, uploader }, secrets };
}

import { z } from 'zod';

/**
 * How the job package reaches the workers, defined once. The client uploads the package once; the
 * resulting reference (a PackageRef) travels to every worker, whose runtime fetches it through the
 * matching PackageFetcher (src/worker/fetch), verifies its sha256 and unpacks it once per host.
 */

const common = { sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().min(0) };

/** What a worker needs to get the package. Never holds long-lived credentials: at most a per-upload read token or a presigned URL. */
export const PackageRefSchema = z.discriminatedUnion('kind', [
  /** A file on the worker's own file system: the local cluster, a shared directory, or a copy made by SFTP. */
  z.object({ kind: z.literal('file'), path: z.string(), ...common }),
  /** An HTTP(S) URL, with an optional bearer token (the package server's per-upload read token). */
  z.object({ kind: z.literal('http'), url: z.string().url(), token: z.string().optional(), ...common }),
  /**
   * A file the launcher itself copies into the worker's work dir, under this name, renamed into place when
   * complete (Kubernetes: through the exec API into each pod); the worker waits for it to appear.
   */
  z.object({ kind: z.literal('copied'), file: z.string().regex(/^[\w.-]+$/, 'a file name in the work dir'), ...common }),
]);
export type PackageRef = z.infer<typeof PackageRefSchema>;

/**
 * A job ID that can name a directory, file or key in a store without leaving it: no separators, no `.` or
 * `..`. Job IDs twister2 makes always pass; the check is for IDs that come from elsewhere (adopt, the library).
 */
export function isSafeJobId(jobId: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(jobId);
}

export interface PackageToUpload {
  jobId: string;
  file: string;
  sha256: string;
  size: number;
}

export interface UploadOptions {
  /** Called as bytes go out; `total` is the package size. */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

export interface Uploader {
  /** Puts the package where workers can get it and returns the reference they need. */
  upload(pkg: PackageToUpload, opts?: UploadOptions): Promise<PackageRef>;
  /** Removes what upload() stored (unless the spec keeps it). Idempotent; called when the job ends. */
  delete(): Promise<void>;
  /**
   * Takes over a package another process uploaded for this job, so that delete() removes it: a job master
   * in a Kubernetes pod cleans up what the client uploaded. Uploaders without it cannot be handed over.
   */
  adopt?(jobId: string): void;
}

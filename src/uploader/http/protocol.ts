import { z } from 'zod';

/**
 * What the package server and its client agree on. A package is addressed as `/packages/<name>`;
 * names are plain file names, so nothing in a URL can point outside the storage directory.
 */

export const PACKAGE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

/** The sidecar next to each package: its size, sha256 and the sha256 of its read token. */
export const META_SUFFIX = '.meta.json';

/** True for a name the server accepts: the pattern, no `..`, and not a sidecar's name. */
export function isValidPackageName(name: string): boolean {
  return PACKAGE_NAME_PATTERN.test(name) && !name.includes('..') && !name.endsWith(META_SUFFIX);
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** The package server's answer to a PUT. `readToken` opens this one package (GET/HEAD) and nothing else. */
export const PutResponseSchema = z.object({
  name: z.string(),
  size: z.number().int().min(0),
  sha256,
  readToken: z.string().min(16),
});
export type PutResponse = z.infer<typeof PutResponseSchema>;

/** What the server keeps beside a package. Never the read token itself, only its digest. */
export const PackageMetaSchema = z.object({
  name: z.string(),
  size: z.number().int().min(0),
  sha256,
  readTokenSha256: sha256,
  storedAt: z.string(),
});
export type PackageMeta = z.infer<typeof PackageMetaSchema>;

/** GET /_stats (admin only): downloads per package, uploads and deletions since the server started. */
export interface PackageServerStats {
  gets: Record<string, number>;
  puts: number;
  deletes: number;
}

/** The server's error body, the same shape as the job master's. */
export const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

import { z } from 'zod';
import { PackageError } from '../errors.js';
import { normalizeEntryPath } from './entries.js';

/** The manifest is the tarball's first entry; it is never extracted to disk. */
export const MANIFEST_NAME = 'twister2-manifest.json';
export const FORMAT_VERSION = 1;

const relativePath = z.string().refine((p) => {
  const norm = normalizeEntryPath(p);
  return 'path' in norm && norm.path === p && p !== '';
}, 'must be a relative posix path without "." or ".." segments');

export const ManifestFileSchema = z
  .object({
    path: relativePath,
    size: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    mode: z.number().int().nonnegative(),
    type: z.enum(['file', 'symlink']),
    /** Symlinks only; for them size and sha256 describe the target string. */
    target: z.string().optional(),
  })
  .refine((f) => (f.type === 'symlink') === (f.target !== undefined), 'symlinks (and only symlinks) have a target');

export const ManifestSchema = z
  .object({
    formatVersion: z.literal(FORMAT_VERSION),
    spec: z.unknown(),
    /**
     * The spec as the client validated and normalized it, for workers: they use it as it is instead of
     * loading the spec schema (zod) and validating it again at every start. Absent from older packages.
     */
    view: z.unknown().optional(),
    files: z.array(ManifestFileSchema),
    totalBytes: z.number().int().nonnegative(),
  })
  .refine((m) => m.totalBytes === m.files.reduce((n, f) => n + f.size, 0), 'totalBytes must equal the sum of the file sizes');

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = z.infer<typeof ManifestFileSchema>;

/** Fixed key order, so the same files always serialize to the same bytes. */
export function serializeManifest(spec: unknown, files: readonly ManifestFile[], view?: unknown): Buffer {
  const manifest: Manifest = {
    formatVersion: FORMAT_VERSION,
    spec,
    ...(view === undefined ? {} : { view }),
    files: files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256, mode: f.mode, type: f.type, ...(f.target === undefined ? {} : { target: f.target }) })),
    totalBytes: files.reduce((n, f) => n + f.size, 0),
  };
  return Buffer.from(JSON.stringify(manifest));
}

export function parseManifest(text: string, packageFile: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PackageError(`${MANIFEST_NAME} in ${packageFile} is not valid JSON (${(err as Error).message}); re-pack the job.`);
  }
  const result = ManifestSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new PackageError(`${MANIFEST_NAME} in ${packageFile} is invalid (${problems}); re-pack the job with this twister2 version.`);
  }
  return result.data;
}

/** What was actually found for one path, in the package or on disk. */
export interface FoundFile {
  path: string;
  type: 'file' | 'symlink';
  size: number;
  sha256: string;
  /** When given (files on disk), the executable bit must match too. */
  mode?: number;
}

/** Throws unless `found` holds exactly the manifest's files with the same sizes and hashes. */
export function checkAgainstManifest(manifest: Manifest, found: readonly FoundFile[], packageFile: string): void {
  const fix = 'The package is corrupt or was modified; re-pack and re-upload the job.';
  const expected = new Map(manifest.files.map((f) => [f.path, f]));
  for (const f of found) {
    const m = expected.get(f.path);
    if (!m) throw new PackageError(`package ${packageFile}: "${f.path}" is not listed in its manifest. ${fix}`);
    if (m.type !== f.type) throw new PackageError(`package ${packageFile}: "${f.path}" is a ${f.type} but the manifest says ${m.type}. ${fix}`);
    if (m.size !== f.size) throw new PackageError(`package ${packageFile}: "${f.path}" has ${f.size} bytes but the manifest says ${m.size}. ${fix}`);
    if (m.sha256 !== f.sha256) {
      throw new PackageError(`package ${packageFile}: "${f.path}" has sha256 ${f.sha256} but the manifest says ${m.sha256}. ${fix}`);
    }
    if (f.mode !== undefined && f.type === 'file' && (f.mode & 0o100) !== (m.mode & 0o100)) {
      throw new PackageError(`package ${packageFile}: "${f.path}" has mode ${f.mode.toString(8)} but the manifest says ${m.mode.toString(8)}. ${fix}`);
    }
    expected.delete(f.path);
  }
  const missing = [...expected.keys()][0];
  if (missing !== undefined) throw new PackageError(`package ${packageFile}: "${missing}" is listed in the manifest but missing. ${fix}`);
}

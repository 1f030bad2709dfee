import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PackageError } from '../errors.js';
import { safeExtractArchive } from './archive.js';
import { MANIFEST_NAME, serializeManifest } from './manifest.js';
import { scanSource } from './scan.js';
import { writeTarGz, type TarItem } from './tar-write.js';

export interface PackJobInput {
  /** A job directory, or a .zip / .tar.gz holding one. */
  source: string;
  outFile: string;
  /** `view`: the normalized spec workers use as it is (see ManifestSchema). */
  manifestExtra: { spec: unknown; view?: unknown };
  /** Paths relative to the job root to leave out of the package. */
  omit?: readonly string[];
}

export interface PackageInfo {
  /** Absolute path of the written package. */
  file: string;
  /** sha256 of the whole .tar.gz, as hex. */
  sha256: string;
  size: number;
  /** Files and symlinks in the package, not counting the manifest. */
  fileCount: number;
}

/**
 * Packs a job into one reproducible .tar.gz: the same content always gives the same bytes, so
 * the hash can identify an upload. Archives are unpacked (safely) to a temp dir first and then
 * packed like a directory, so a zip, a tar.gz and the directory they came from all agree.
 */
export async function packJob(input: PackJobInput): Promise<PackageInfo> {
  const st = await stat(input.source).catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.message})`;
    throw new PackageError(`job source ${input.source} ${why}; pass a job directory, a .zip or a .tar.gz file.`);
  });
  if (st.isDirectory()) return packDirectory(input.source, input.source, input);
  if (!st.isFile()) throw new PackageError(`job source ${input.source} is not a directory or a file; pass a job directory, a .zip or a .tar.gz file.`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'twister2-pack-'));
  try {
    await safeExtractArchive(input.source, tmp);
    return await packDirectory(tmp, input.source, input);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function packDirectory(dir: string, label: string, input: PackJobInput): Promise<PackageInfo> {
  const outFile = path.resolve(input.outFile);
  const files = await scanSource(dir, { label, skipGit: true, exclude: outFile, ...(input.omit ? { omit: input.omit } : {}) });
  if (files.some((f) => f.path === MANIFEST_NAME)) {
    throw new PackageError(`"${label}/${MANIFEST_NAME}" uses a name twister2 reserves for the package manifest; rename that file.`);
  }
  const manifest = serializeManifest(input.manifestExtra.spec, files, input.manifestExtra.view);
  const items: TarItem[] = [
    { path: MANIFEST_NAME, type: 'file', mode: 0o644, size: manifest.length, data: manifest },
    ...files.map((f): TarItem => (f.target === undefined ? { ...f, type: 'file' } : { path: f.path, type: 'symlink', target: f.target })),
  ];
  await mkdir(path.dirname(outFile), { recursive: true });
  // Write beside the destination and rename: a failed pack never leaves a half-written package.
  const partial = `${outFile}.${randomBytes(6).toString('hex')}.partial`;
  try {
    const { sha256, size } = await writeTarGz(partial, items);
    await rename(partial, outFile);
    return { file: outFile, sha256, size, fileCount: files.length };
  } finally {
    await rm(partial, { force: true });
  }
}

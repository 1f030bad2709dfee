import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PackageError } from '../errors.js';
import { extractPackage, ManifestSchema, type Manifest } from '../package/index.js';

/**
 * Unpacks the job package once per host directory. Each worker extracts into a private temp directory;
 * the first to rename it into place wins, the others drop theirs. The manifest is kept beside the
 * directory (written before the rename) so a later worker can skip the work. A rename is atomic, so
 * no worker ever sees a half-written package.
 */
export async function fetchPackage(packageFile: string, sha256: string, workDir: string): Promise<{ dir: string; manifest: Manifest }> {
  const dir = path.join(workDir, `package-${sha256.slice(0, 16)}`);
  const manifestFile = `${dir}.manifest.json`;
  if (existsSync(dir)) {
    const existing = await readManifest(manifestFile);
    if (existing) return { dir, manifest: existing };
  }
  await mkdir(workDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    const manifest = await extractPackage(packageFile, tmp, { expectedSha256: sha256 });
    await writeFile(`${manifestFile}.${process.pid}`, JSON.stringify(manifest));
    await rename(`${manifestFile}.${process.pid}`, manifestFile);
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    return { dir, manifest };
  } catch (err) {
    if (err instanceof PackageError) throw err;
    throw new PackageError(`cannot unpack the job package ${packageFile}: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function readManifest(file: string): Promise<Manifest | undefined> {
  try {
    return ManifestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch {
    return undefined;
  }
}

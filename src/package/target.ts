import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { PackageError } from '../errors.js';

/**
 * Extraction targets must start empty: then "nothing was written" is easy to guarantee on
 * failure, and no pre-existing symlink in the target can redirect a write.
 */
export async function assertEmptyTarget(targetDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(targetDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new PackageError(`cannot use ${targetDir} as the extraction directory (${(err as Error).message}); pass an empty directory.`);
  }
  if (names.length > 0) throw new PackageError(`extraction directory ${targetDir} is not empty; pass a new or empty directory.`);
}

/** Runs `write` into a freshly created `targetDir`; if it fails, removes whatever it wrote. */
export async function extractInto<T>(targetDir: string, write: () => Promise<T>): Promise<T> {
  await mkdir(targetDir, { recursive: true });
  try {
    return await write();
  } catch (err) {
    for (const name of await readdir(targetDir).catch(() => [])) {
      await rm(path.join(targetDir, name), { recursive: true, force: true });
    }
    throw err;
  }
}

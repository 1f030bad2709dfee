import { open, stat } from 'node:fs/promises';
import { PackageError } from '../errors.js';
import { checkEntries } from './entries.js';
import { listTar, unpackTar } from './tar-read.js';
import { assertEmptyTarget, extractInto } from './target.js';
import { extractZip } from './zip.js';

export type ArchiveKind = 'zip' | 'tar.gz';

/** Throws a PackageError unless `file` exists and is a regular file. */
export async function assertFile(file: string, what: string): Promise<void> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new PackageError(`${what} ${file} does not exist; check the path.`);
    throw new PackageError(`cannot read ${what} ${file} (${err.message}).`);
  });
  if (!st.isFile()) throw new PackageError(`${what} ${file} is not a regular file.`);
}

/** By content, not by name: a renamed or mislabelled file gets a clear error, not a parse failure. */
export async function archiveKind(file: string): Promise<ArchiveKind> {
  const head = Buffer.alloc(4);
  const fh = await open(file, 'r');
  let bytesRead: number;
  try {
    ({ bytesRead } = await fh.read(head, 0, head.length, 0));
  } finally {
    await fh.close();
  }
  if (bytesRead === 0) throw new PackageError(`archive ${file} is empty (0 bytes); pass a job directory, a .zip or a .tar.gz file.`);
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  // Local file header, or the end-of-central-directory record that is all an empty zip holds.
  const magic = head.readUInt32LE(0);
  if (bytesRead === 4 && (magic === 0x04034b50 || magic === 0x06054b50)) return 'zip';
  throw new PackageError(`${file} is not a .zip or .tar.gz archive; pass a job directory, a .zip or a .tar.gz file.`);
}

/**
 * Extracts a user-supplied .zip or .tar.gz into `targetDir` (which must be empty or missing).
 * Every entry is checked before anything is written: absolute paths, ".." segments, links that
 * leave the tree, devices and fifos all fail with a PackageError naming the entry.
 */
export async function safeExtractArchive(archive: string, targetDir: string): Promise<void> {
  await assertFile(archive, 'archive');
  const kind = await archiveKind(archive);
  await assertEmptyTarget(targetDir);
  if (kind === 'zip') return extractZip(archive, targetDir);
  const { entries } = await listTar(archive);
  const safe = checkEntries(archive, entries);
  await extractInto(targetDir, () => unpackTar(archive, targetDir, safe, () => false));
}

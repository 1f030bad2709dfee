import { createWriteStream } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { PackageError } from '../errors.js';
import { checkEntries, type EntryKind, type RawEntry } from './entries.js';
import { extractInto } from './target.js';

/**
 * Zip extraction with yauzl. File names are decoded here rather than by yauzl, because yauzl's
 * own check fails with a message that does not say which archive it was; ours goes through the
 * same rules as tar. yauzl still checks every entry's data against its declared size.
 */

interface ZipItem extends RawEntry {
  entry: yauzl.Entry;
}

/** A symlink's target is its data; anything bigger than PATH_MAX is not a real symlink. */
const MAX_LINK_BYTES = 4096;

const S_IFMT = 0o170000;
const fileTypes: Record<number, [EntryKind, string]> = {
  0: ['file', 'file'],
  0o100000: ['file', 'file'],
  0o040000: ['directory', 'directory'],
  0o120000: ['symlink', 'symlink'],
  0o010000: ['unsupported', 'FIFO'],
  0o020000: ['unsupported', 'character device'],
  0o060000: ['unsupported', 'block device'],
  0o140000: ['unsupported', 'socket'],
};

function entryError(file: string, name: string, err: unknown): PackageError {
  return new PackageError(
    `cannot extract entry "${name}" from ${file}: ${(err as Error).message}. The archive is corrupt or was crafted; re-create it from the job directory.`,
  );
}

async function readAll(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listZip(file: string, zip: yauzl.ZipFile): Promise<ZipItem[]> {
  const items: ZipItem[] = [];
  for await (const entry of zip.eachEntry()) {
    const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
    // Unix tools keep st_mode in the top 16 bits of the external attributes; others leave them 0.
    const unixMode = entry.externalFileAttributes >>> 16;
    let [kind, typeName] = fileTypes[unixMode & S_IFMT] ?? ['unsupported', `file of unknown type 0o${(unixMode & S_IFMT).toString(8)}`];
    if (name.endsWith('/')) [kind, typeName] = ['directory', 'directory'];
    if (entry.isEncrypted()) [kind, typeName] = ['unsupported', 'encrypted file'];
    const item: ZipItem = { name, kind, typeName, size: entry.uncompressedSize, mode: unixMode & 0o111 ? 0o755 : 0o644, entry };
    if (kind === 'symlink') {
      if (entry.uncompressedSize > MAX_LINK_BYTES) throw entryError(file, name, new Error('symlink target is too long'));
      item.linkTarget = (await readAll(zip, entry).catch((err: unknown) => Promise.reject(entryError(file, name, err)))).toString('utf8');
    }
    items.push(item);
  }
  return items;
}

async function writeItem(zip: yauzl.ZipFile, item: ZipItem & { path: string }, targetDir: string): Promise<void> {
  const dest = path.join(targetDir, ...item.path.split('/'));
  if (item.kind === 'directory') {
    await mkdir(dest, { recursive: true });
    return;
  }
  await mkdir(path.dirname(dest), { recursive: true });
  if (item.kind === 'symlink') return symlink(item.linkTarget ?? '', dest);
  // 'wx': never overwrite, and never follow something already sitting at `dest`.
  await pipeline(await zip.openReadStreamPromise(item.entry), createWriteStream(dest, { flags: 'wx', mode: item.mode }));
}

/** Lists and checks every entry, then writes them; `targetDir` must be empty or missing. */
export async function extractZip(file: string, targetDir: string): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
  } catch (err) {
    throw new PackageError(`${file} is not a valid .zip archive (${(err as Error).message}); check that the file is complete.`);
  }
  try {
    const items = await listZip(file, zip).catch((err: unknown) => {
      if (err instanceof PackageError) throw err;
      throw new PackageError(`${file} is not a valid .zip archive (${(err as Error).message}); check that the file is complete.`);
    });
    if (items.length === 0) throw new PackageError(`archive ${file} is empty; add the job's files to it, or pass the job directory instead.`);
    const safe = checkEntries(file, items);
    await extractInto(targetDir, async () => {
      for (const item of safe) await writeItem(zip, item, targetDir).catch((err: unknown) => Promise.reject(entryError(file, item.name, err)));
    });
  } finally {
    zip.close();
  }
}

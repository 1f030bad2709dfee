import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Parser, Unpack, type ReadEntry } from 'tar';
import { PackageError } from '../errors.js';
import type { EntryKind, RawEntry } from './entries.js';

/**
 * Reading tar.gz in two passes. Pass 1 only lists (and optionally hashes) entries, writing
 * nothing; the caller checks them. Pass 2 extracts with node-tar, which on its own would quietly
 * strip or skip unsafe entries instead of failing, which is why pass 1 exists.
 */

export interface TarEntry extends RawEntry {
  /** sha256 of the entry's data, when hashing was asked for. */
  sha256?: string;
}

export interface TarListing {
  entries: TarEntry[];
  /** Contents of the entry named by `capture`, if present. */
  captured?: Buffer;
}

/** Manifests are small; refuse to buffer a giant one in memory. */
const MAX_CAPTURE_BYTES = 64 * 1024 * 1024;

function kindOf(type: ReadEntry['type']): EntryKind {
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
    case 'GNUDumpDir':
      return 'directory';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return 'unsupported';
  }
}

function rawEntry(e: ReadEntry): TarEntry {
  return { name: e.path, kind: kindOf(e.type), typeName: e.type, size: e.size, mode: e.mode ?? 0, linkTarget: e.linkpath };
}

/** We gunzip ourselves (so we can tell an empty archive from garbage) and feed plain tar to node-tar. */
function feed(file: string, parser: Parser, onData?: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const source = createReadStream(file);
    const gunzip = createGunzip();
    const fail = (err: unknown) => {
      source.destroy();
      gunzip.destroy();
      reject(err);
    };
    source.on('error', fail);
    gunzip.on('error', fail);
    parser.on('error', fail);
    parser.on('close', () => resolve());
    if (onData) gunzip.on('data', onData);
    source.pipe(gunzip).pipe(parser as unknown as NodeJS.WritableStream);
  });
}

function warningText(message: string, data: Record<string, unknown>): string {
  // A header that failed its checksum has a garbage path; naming it would only confuse.
  const header = data.header as { path?: string; cksumValid?: boolean } | undefined;
  const where = (data.entry as ReadEntry | undefined)?.path ?? (header?.cksumValid ? header.path : undefined);
  return where ? `${message} at entry "${where}"` : message;
}

/** Pass 1: every entry, including the ones node-tar would silently ignore; nothing is written. */
export async function listTar(file: string, opts: { hash?: boolean; capture?: (path: string) => boolean } = {}): Promise<TarListing> {
  const entries: TarEntry[] = [];
  const warnings: string[] = [];
  const listing: TarListing = { entries };
  let sawData = false;
  const parser = new Parser({
    zstd: false,
    onwarn: (_code, message, data) => warnings.push(warningText(message, data)),
    onReadEntry: (e) => {
      const entry = rawEntry(e);
      entries.push(entry);
      const capture = entry.kind === 'file' && opts.capture?.(e.path) === true;
      if (!capture && !(opts.hash && entry.kind === 'file')) return void e.resume();
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let captured = 0;
      e.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        captured += chunk.length;
        if (capture && captured <= MAX_CAPTURE_BYTES) chunks.push(chunk);
      });
      e.on('end', () => {
        entry.sha256 = hash.digest('hex');
        if (capture && captured <= MAX_CAPTURE_BYTES) listing.captured = Buffer.concat(chunks);
      });
    },
  });
  // Unknown entry types (sparse files, tape headers...) never reach onReadEntry; we must refuse them.
  parser.on('ignoredEntry', (e: ReadEntry) => entries.push({ ...rawEntry(e), kind: 'unsupported' }));
  try {
    await feed(file, parser, (chunk) => {
      sawData ||= chunk.some((b) => b !== 0);
    });
  } catch (err) {
    throw new PackageError(`${file} is not a valid .tar.gz archive (${(err as Error).message}); check that the file is complete and really a gzip-compressed tar.`);
  }
  // A tar with no entries is just zero blocks; anything else that yields no entries is garbage.
  if (!sawData || (entries.length === 0 && warnings.length === 0)) {
    throw new PackageError(`archive ${file} is empty; add the job's files to it, or pass the job directory instead.`);
  }
  if (warnings.length > 0) {
    throw new PackageError(`${file} is not a valid .tar.gz archive (${warnings[0] ?? ''}); check that the file is complete and really a gzip-compressed tar.`);
  }
  return listing;
}

/**
 * Pass 2: extracts `expected` (the checked pass-1 listing) into `targetDir`, skipping paths for
 * which `skip` is true. If the file no longer matches pass 1 (someone rewrote it in between),
 * the extra or changed entries are not extracted and we fail.
 */
export async function unpackTar(file: string, targetDir: string, expected: readonly RawEntry[], skip: (path: string) => boolean): Promise<void> {
  let index = 0;
  let drift: string | undefined;
  const unpack = new Unpack({
    cwd: targetDir,
    strict: true,
    zstd: false,
    preserveOwner: false,
    filter: (path, e) => {
      const want = expected[index++];
      const entry = e as ReadEntry;
      if (!want || want.name !== path || want.typeName !== entry.type || want.size !== entry.size || want.linkTarget !== entry.linkpath) {
        drift ??= path;
        return false;
      }
      return !skip(path);
    },
  });
  try {
    await feed(file, unpack);
  } catch (err) {
    throw new PackageError(`extracting ${file} failed (${(err as Error).message}); check the archive and free disk space, then try again.`);
  }
  if (drift !== undefined || index !== expected.length) {
    throw new PackageError(`${file} changed while it was being extracted${drift ? ` (at entry "${drift}")` : ''}; make sure nothing is writing to it and try again.`);
  }
}

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header, Pax } from 'tar';
import { PackageError } from '../errors.js';

/**
 * A tar.gz writer that produces the same bytes for the same content: entries in the caller's
 * order, one fixed mtime, no owner/group, no atime/ctime, modes as given, and a gzip header
 * without a timestamp. node-tar's Pack stats the real files, so we only borrow its encoders.
 */

/** Not the epoch: some tools treat mtime 0 as "missing", and zip cannot store dates before 1980. */
export const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');
/** Byte 9 of a gzip header names the OS; zlib writes a platform-specific value, we always say Unix. */
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

export type TarItem =
  | { path: string; type: 'file'; mode: number; size: number; data: Buffer }
  | { path: string; type: 'file'; mode: number; size: number; abs: string; sha256: string }
  | { path: string; type: 'symlink'; target: string };

function header(item: TarItem): Buffer {
  const symlink = item.type === 'symlink';
  const fields = {
    path: item.path,
    type: symlink ? ('SymbolicLink' as const) : ('File' as const),
    mode: symlink ? 0o777 : item.mode,
    size: symlink ? 0 : item.size,
    linkpath: symlink ? item.target : '',
    mtime: FIXED_MTIME,
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
  };
  const h = new Header(fields);
  const needPax = h.encode();
  const block = h.block as Buffer;
  if (!needPax) return block;
  // Long or non-ASCII names go into a pax header; it carries only deterministic fields.
  const pax = new Pax({ path: item.path, linkpath: symlink ? item.target : undefined, mtime: FIXED_MTIME, uid: 0, gid: 0 });
  return Buffer.concat([pax.encode(), block]);
}

const padding = (size: number): Buffer => Buffer.alloc((512 - (size % 512)) % 512);

async function* fileData(item: Extract<TarItem, { abs: string }>): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(item.abs)) {
    const buf = chunk as Buffer;
    size += buf.length;
    // The header already promised `size` bytes; a growing file would corrupt the tar stream.
    if (size > item.size) break;
    hash.update(buf);
    yield buf;
  }
  if (size !== item.size || hash.digest('hex') !== item.sha256) {
    throw new PackageError(`"${item.abs}" changed while it was being packaged; stop whatever is writing to it and pack again.`);
  }
}

async function* tarStream(items: readonly TarItem[]): AsyncGenerator<Buffer> {
  for (const item of items) {
    yield header(item);
    if (item.type === 'symlink') continue;
    if ('data' in item) yield item.data;
    else yield* fileData(item);
    yield padding(item.size);
  }
  yield Buffer.alloc(1024);
}

/** Writes `items` to `outFile` as tar.gz; returns the sha256 and size of the written bytes. */
export async function writeTarGz(outFile: string, items: readonly TarItem[]): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const fixAndHash = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (size <= GZIP_OS_OFFSET && size + chunk.length > GZIP_OS_OFFSET) chunk[GZIP_OS_OFFSET - size] = GZIP_OS_UNIX;
      size += chunk.length;
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(Readable.from(tarStream(items)), createGzip(), fixAndHash, createWriteStream(outFile, { flags: 'wx' }));
  return { sha256: hash.digest('hex'), size };
}

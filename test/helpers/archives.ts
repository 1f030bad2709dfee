import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import yazl from 'yazl';

/** Temp dirs for one test file; `cleanup` removes them all. */
export function tempDirs(): { make: (prefix?: string) => Promise<string>; cleanup: () => Promise<void> } {
  const dirs: string[] = [];
  // Fixed at creation, so tests may point TMPDIR elsewhere to watch the code under test.
  const base = os.tmpdir();
  return {
    make: async (prefix = 't2pkg-') => {
      const dir = await mkdtemp(path.join(base, prefix));
      dirs.push(dir);
      return dir;
    },
    cleanup: async () => {
      await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/** A job directory with nested files, an executable, in-tree symlinks and a .git dir to skip. */
export async function makeJobDir(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'src/lib'), { recursive: true });
  await mkdir(path.join(dir, 'bin'), { recursive: true });
  await mkdir(path.join(dir, '.git'), { recursive: true });
  await writeFile(path.join(dir, 'README.md'), '# hello job\n');
  await writeFile(path.join(dir, 'src/main.js'), 'console.log("hello nested");\n');
  await writeFile(path.join(dir, 'src/lib/util.js'), 'export const x = 1;\n');
  await writeFile(path.join(dir, 'bin/run.sh'), '#!/bin/sh\necho run\n');
  await chmod(path.join(dir, 'bin/run.sh'), 0o755);
  await writeFile(path.join(dir, '.git/config'), '[core]\n');
  await symlink('src/main.js', path.join(dir, 'main-link.js'));
  await symlink('../../bin/run.sh', path.join(dir, 'src/lib/run-link'));
}

export interface TreeEntry {
  type: 'file' | 'symlink' | 'dir';
  content?: string;
  executable?: boolean;
}

/** Everything under `dir` (relative posix paths), for comparing trees. */
export async function readTree(dir: string, rel = ''): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  for (const name of (await readdir(path.join(dir, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    const abs = path.join(dir, p);
    const st = await lstat(abs);
    if (st.isDirectory()) {
      out[p] = { type: 'dir' };
      Object.assign(out, await readTree(dir, p));
    } else if (st.isSymbolicLink()) {
      out[p] = { type: 'symlink', content: await readlink(abs) };
    } else {
      out[p] = { type: 'file', content: await readFile(abs, 'utf8'), executable: (st.mode & 0o100) !== 0 };
    }
  }
  return out;
}

export interface RawTarEntry {
  name: string;
  /** ustar typeflag: '0' file, '1' hardlink, '2' symlink, '3' char device, '5' dir, '6' fifo. */
  type?: '0' | '1' | '2' | '3' | '5' | '6';
  linkname?: string;
  data?: string | Buffer;
  mode?: number;
}

const octal = (n: number, digits: number): string => n.toString(8).padStart(digits, '0') + '\0';

/**
 * Hand-written ustar headers: node-tar refuses to *create* the malicious entries we need, and
 * writing the 512 bytes ourselves means the fixture holds exactly what the test says.
 */
function ustarHeader(e: RawTarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? 0o644, 7), 100);
  h.write(octal(0, 7), 108);
  h.write(octal(0, 7), 116);
  h.write(octal(size, 11), 124);
  h.write(octal(946684800, 11), 136);
  h.write(' '.repeat(8), 148);
  h.write(e.type ?? '0', 156);
  h.write(e.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\u000000', 257);
  h.write(octal(0, 7), 329);
  h.write(octal(0, 7), 337);
  const sum = h.reduce((a, b) => a + b, 0);
  h.write(octal(sum, 6) + ' ', 148);
  return h;
}

export function rawTar(entries: readonly RawTarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const size = (e.type ?? '0') === '0' ? data.length : 0;
    parts.push(ustarHeader(e, size));
    if (size > 0) parts.push(data, Buffer.alloc((512 - (size % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export async function writeRawTarGz(file: string, entries: readonly RawTarEntry[]): Promise<string> {
  await writeFile(file, gzipSync(rawTar(entries)));
  return file;
}

/** `tar -tvzf`, to prove a fixture really contains the entry a test claims it does. */
export function tarList(file: string): string {
  return execFileSync('tar', ['-tvzf', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

export interface ZipFixtureEntry {
  name: string;
  data?: string;
  /** Full st_mode, e.g. 0o100755 or 0o120777 for a symlink. */
  mode?: number;
  dir?: boolean;
}

/**
 * yazl refuses absolute and ".." names, so they are written under a same-length placeholder
 * and patched in the bytes afterwards (local header and central directory alike).
 */
export async function writeZip(file: string, entries: readonly ZipFixtureEntry[], patch: Record<string, string> = {}): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const e of entries) {
    const opts = { mtime: new Date('2001-01-01T00:00:00Z'), ...(e.mode === undefined ? {} : { mode: e.mode }) };
    if (e.dir) zip.addEmptyDirectory(e.name, opts);
    else zip.addBuffer(Buffer.from(e.data ?? ''), e.name, opts);
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  let bytes = Buffer.concat(chunks);
  for (const [from, to] of Object.entries(patch)) {
    if (from.length !== to.length) throw new Error('patch must keep the length');
    bytes = Buffer.from(bytes.toString('latin1').split(from).join(to), 'latin1');
  }
  await writeFile(file, bytes);
  return file;
}

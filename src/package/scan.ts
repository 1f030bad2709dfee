import type { Stats } from 'node:fs';
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { PackageError } from '../errors.js';
import { linkStaysInside, normalizeEntryPath } from './entries.js';
import { sha256File, sha256Of } from './hash.js';
import type { ManifestFile } from './manifest.js';

/** One file or symlink of a job directory, already described as its manifest line. */
export interface SourceFile extends ManifestFile {
  abs: string;
}

export interface ScanOptions {
  /** Prefix for paths in error messages (the user's source, not a temp dir). */
  label: string;
  /** Version-control metadata is never part of a job; only the packer skips it. */
  skipGit: boolean;
  /** An absolute path to leave out, e.g. the output file when it lies inside the source. */
  exclude?: string;
  /** Relative paths to leave out (the spec file: the manifest carries the resolved spec instead). */
  omit?: readonly string[];
}

function specialKind(st: Stats): string {
  if (st.isFIFO()) return 'named pipe (FIFO)';
  if (st.isSocket()) return 'socket';
  return 'device file';
}

/** Absolute targets inside the tree become relative, so the package works wherever it is unpacked. */
function portableTarget(target: string, linkRel: string, roots: readonly string[]): string {
  if (!path.isAbsolute(target)) return target;
  for (const root of roots) {
    const rel = path.relative(root, target);
    if (rel.split(path.sep)[0] === '..' || path.isAbsolute(rel)) continue;
    return path.posix.relative(path.posix.dirname(linkRel), rel.split(path.sep).join('/') || '.') || '.';
  }
  return target;
}

/** Lists every file and symlink under `root`, sorted by path, with sizes, hashes and normalized modes. */
export async function scanSource(root: string, opts: ScanOptions): Promise<SourceFile[]> {
  const roots = [path.resolve(root), await realpath(root)];
  const files: SourceFile[] = [];
  const walk = async (dirAbs: string, dirRel: string): Promise<void> => {
    for (const name of (await readdir(dirAbs)).sort()) {
      const abs = path.join(dirAbs, name);
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      const shown = `${opts.label}/${rel}`;
      const norm = normalizeEntryPath(rel);
      if ('problem' in norm) throw new PackageError(`cannot package "${shown}": its name ${norm.problem}; rename it.`);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        if (!(opts.skipGit && name === '.git')) await walk(abs, rel);
      } else if (abs === opts.exclude || opts.omit?.includes(rel)) {
        continue;
      } else if (st.isFile()) {
        const { sha256, size } = await sha256File(abs);
        // Only the executable bit survives: it is the one bit that changes what a job can do.
        files.push({ path: rel, abs, type: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, size, sha256 });
      } else if (st.isSymbolicLink()) {
        const target = portableTarget(await readlink(abs), rel, roots);
        files.push({ path: rel, abs, type: 'symlink', mode: 0o777, size: Buffer.byteLength(target), sha256: sha256Of(target), target });
      } else {
        throw new PackageError(
          `cannot package "${shown}": it is a ${specialKind(st)}; a job may only contain regular files, directories and symlinks. Remove it or move it out of the job directory.`,
        );
      }
    }
  };
  await walk(root, '');
  const links = new Map(files.flatMap((f) => (f.target === undefined ? [] : [[f.path, f.target] as const])));
  for (const f of files) {
    if (f.target !== undefined && !linkStaysInside(f.path, f.target, links)) {
      throw new PackageError(
        `cannot package "${opts.label}/${f.path}": it is a symlink to "${f.target}", outside the job directory. Replace it with a copy of what it points to, or remove it.`,
      );
    }
  }
  // Plain code-unit order: stable across platforms and locales.
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

import { posix } from 'node:path';
import { PackageError } from '../errors.js';

/**
 * The safety rules every archive entry must pass before anything is written to disk. They are the
 * same for tar and zip, and are checked over the whole entry list first, so a bad entry anywhere
 * in the archive means nothing is extracted at all.
 */

export type EntryKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'unsupported';

export interface RawEntry {
  /** The name exactly as stored in the archive (shown in error messages). */
  name: string;
  kind: EntryKind;
  /** Human-readable type for messages, e.g. "FIFO" or "CharacterDevice". */
  typeName: string;
  size: number;
  mode: number;
  /** Symlink target (relative to the link's directory) or hardlink target (relative to the root). */
  linkTarget?: string;
}

/** What checkEntries adds to each entry. */
export interface SafePath {
  /** Canonical relative path: no leading "./", no trailing "/", posix separators; "" is the root. */
  path: string;
  /** For hardlinks, the canonical path of the file they link to. */
  hardlinkTo?: string;
}

/** Linux gives up after 40 nested symlinks (ELOOP); so do we. */
const MAX_LINK_HOPS = 40;

/** Absolute on any platform: "/x", "C:x", "C:/x". */
export function isAbsoluteName(name: string): boolean {
  return name.startsWith('/') || /^[a-zA-Z]:/.test(name);
}

/** Canonical form of an archive path, or the reason it cannot be extracted safely. */
export function normalizeEntryPath(name: string): { path: string } | { problem: string } {
  if (name.includes('\0')) return { problem: 'contains a NUL byte' };
  // A backslash is a separator on Windows, so "a\..\..\x" would escape there.
  if (name.includes('\\')) return { problem: 'contains a backslash' };
  if (isAbsoluteName(name)) return { problem: 'is an absolute path' };
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: 'contains a ".." path segment' };
  return { path: parts.join('/') };
}

/**
 * Follows a symlink target from the link's directory, expanding the archive's own symlinks on the
 * way, and reports whether it ever climbs above the root. Expanding them matters: with `a -> .`,
 * the target `a/..` looks harmless as text but really means the root's parent.
 */
export function linkStaysInside(linkPath: string, target: string, links: ReadonlyMap<string, string>): boolean {
  if (isAbsoluteName(target)) return false;
  const dir = linkPath.split('/').slice(0, -1);
  const todo = target.split('/');
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (dir.length === 0) return false;
      dir.pop();
      continue;
    }
    dir.push(part);
    const next = links.get(dir.join('/'));
    if (next === undefined) continue;
    if (isAbsoluteName(next)) return false;
    // A loop never leaves the tree, and the OS refuses to follow it anyway (ELOOP).
    if (++hops > MAX_LINK_HOPS) return true;
    dir.pop();
    todo.unshift(...next.split('/'));
  }
  return true;
}

/**
 * Whether a link's target, taken as a path from the archive root (as node-tar reserves it), is an
 * ancestor or a descendant of the link itself, case-insensitively. node-tar then waits for its own
 * reservation and the extraction hangs forever (`a/b -> a` does); found by the property test.
 */
function nestsWithin(linkPath: string, target: string): boolean {
  const canon = (p: string) => posix.join(p).replace(/\/+$/, '').toLowerCase();
  const [a, b] = [canon(linkPath), canon(target)];
  return a !== b && (a.startsWith(`${b}/`) || b.startsWith(`${a}/`));
}

function refuse(archive: string, entry: RawEntry, problem: string): PackageError {
  return new PackageError(
    `refusing to extract ${archive}: entry "${entry.name}" ${problem}. Nothing was extracted; ` +
      're-create the archive from a plain directory without this entry.',
  );
}

/** Applies every rule to the full entry list; returns the entries with canonical paths. */
export function checkEntries<T extends RawEntry>(archive: string, entries: readonly T[]): Array<T & SafePath> {
  const safe: Array<T & SafePath> = [];
  const kinds = new Map<string, EntryKind>();
  const links = new Map<string, string>();
  for (const entry of entries) {
    if (entry.kind === 'unsupported') {
      throw refuse(archive, entry, `is a ${entry.typeName}; only regular files, directories and symlinks are allowed`);
    }
    const norm = normalizeEntryPath(entry.name);
    if ('problem' in norm) throw refuse(archive, entry, norm.problem);
    const { path } = norm;
    if (path === '' && entry.kind !== 'directory') throw refuse(archive, entry, 'would replace the target directory');
    const seen = kinds.get(path);
    if (seen !== undefined && !(seen === 'directory' && entry.kind === 'directory')) {
      throw refuse(archive, entry, 'appears more than once');
    }
    kinds.set(path, entry.kind);
    const { linkTarget } = entry;
    let hardlinkTo: string | undefined;
    if (entry.kind === 'symlink') {
      if (!linkTarget) throw refuse(archive, entry, 'is a symlink without a target');
      if (isAbsoluteName(linkTarget)) throw refuse(archive, entry, `is a symlink to the absolute path "${linkTarget}"`);
      if (/[\\\0]/.test(linkTarget)) throw refuse(archive, entry, `is a symlink to "${linkTarget}", which contains a backslash or NUL`);
      if (nestsWithin(path, linkTarget)) {
        throw refuse(archive, entry, `is a symlink to "${linkTarget}", which read from the archive's root is a directory above the link or a path beneath it`);
      }
      links.set(path, linkTarget);
    }
    if (entry.kind === 'hardlink') {
      const target = normalizeEntryPath(linkTarget ?? '');
      // A hardlink must re-use a file this archive already wrote, or it could link to any file.
      if ('problem' in target || kinds.get(target.path) !== 'file' || target.path === path) {
        throw refuse(archive, entry, `is a hardlink to "${linkTarget ?? ''}", which is not a regular file earlier in the archive`);
      }
      hardlinkTo = target.path;
    }
    safe.push({ ...entry, path, hardlinkTo });
  }
  for (const entry of safe) {
    // Writing "d/x" after a symlink "d" would write wherever "d" points.
    const parts = entry.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (links.has(parent)) throw refuse(archive, entry, `lies beneath the symlink "${parent}"`);
    }
    if (entry.kind === 'symlink' && !linkStaysInside(entry.path, entry.linkTarget ?? '', links)) {
      throw refuse(archive, entry, `is a symlink to "${entry.linkTarget ?? ''}", which points outside the archive`);
    }
  }
  return safe;
}

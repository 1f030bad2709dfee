import path from 'node:path';

/**
 * What a request to the package server names and asks for, checked before anything touches the disk:
 * the URL path, the package's file in the storage directory, the bearer token, the byte range.
 */

/** Packages live under /packages/<name>. */
export const PACKAGES_PREFIX = '/packages/';

/** The path of a request URL without its query string (which is never used, nor logged). */
export function pathOf(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  return q >= 0 ? rawUrl.slice(0, q) : rawUrl;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}

/**
 * Second guard after the name check: the package's path in `dir`, or undefined unless it resolves to a
 * direct child of the storage directory.
 */
export function packageFileIn(dir: string, name: string): string | undefined {
  const file = path.resolve(dir, name);
  const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
  if (!file.startsWith(prefix) || file.length === prefix.length || file.slice(prefix.length).includes(path.sep)) return undefined;
  return file;
}

/**
 * One `bytes=` range: `a-b`, `a-` or `-n`. Anything else (several ranges, other units, a > b) is
 * ignored as RFC 9110 allows, and the whole package is sent.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) };
}

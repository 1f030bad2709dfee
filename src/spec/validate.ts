import { closest, distance } from 'fastest-levenshtein';
import type { z } from 'zod';
import { SpecError, type SpecProblem } from '../errors.js';
import { JobSpecSchema, withPlacementDefault, type JobSpec } from './schema.js';

/** Validates a raw spec object, turning zod's issues into messages that name the field, the value and the fix. */
export function parseSpec(raw: unknown, source?: string): JobSpec {
  const result = JobSpecSchema.safeParse(withPlacementDefault(raw), { reportInput: true });
  if (result.success) return result.data;
  throw new SpecError(result.error.issues.flatMap((i) => describeIssue(i, raw)), source);
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): SpecProblem[] {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const allowed = keysAt(issue.path);
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: `unknown key "${key}"${suggest(key, allowed)}. Allowed here: ${allowed.join(', ')}`,
    }));
  }
  // Our own refinements already quote the value they reject.
  if (issue.code === 'custom') return [{ path, message: issue.message }];
  const input = 'input' in issue ? issue.input : valueAt(root, issue.path);
  if (input === undefined && issue.code === 'invalid_type') {
    return [{ path, message: `is required: ${stripPrefix(issue.message)}` }];
  }
  return [{ path, message: `${stripPrefix(issue.message)} (got ${show(input)})` }];
}

function stripPrefix(message: string): string {
  return message.replace(/^Invalid input: /, '');
}

function suggest(key: string, allowed: string[]): string {
  if (allowed.length === 0) return '';
  const best = closest(key, allowed);
  return distance(key.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** The keys the schema allows at a path, found by walking the schema itself so hints never go stale. */
function keysAt(path: PropertyKey[]): string[] {
  let node: unknown = JobSpecSchema;
  for (const key of path) {
    node = unwrap(node);
    const shape = (node as { shape?: Record<string, unknown> }).shape;
    if (!shape || typeof key !== 'string') return [];
    node = shape[key];
  }
  const shape = (unwrap(node) as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(node: unknown): unknown {
  let n = node as { def?: { type: string; innerType?: unknown; in?: unknown } } | undefined;
  while (n?.def) {
    const { type, innerType } = n.def;
    if ((type === 'optional' || type === 'default' || type === 'nullable' || type === 'prefault') && innerType) n = innerType as typeof n;
    else if (type === 'pipe' && n.def.in) n = n.def.in as typeof n;
    else break;
  }
  return n;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** `a.b[0].c`; a key that is not a plain name (a typo such as "~name", an empty or dotted key) is quoted: `a["x.y"]`. */
export function formatPath(path: PropertyKey[]): string {
  return path
    .map((p, i) => {
      if (typeof p === 'number') return `[${p}]`;
      const key = String(p);
      if (!/^[A-Za-z_$][\w$-]*$/.test(key)) return `[${JSON.stringify(key)}]`;
      return i === 0 ? key : `.${key}`;
    })
    .join('');
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

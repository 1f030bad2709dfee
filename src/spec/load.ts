import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { SpecError, type SpecProblem } from '../errors.js';
import type { JobSpec, JobSpecInput } from './schema.js';
import { parseSpec } from './validate.js';

export const SPEC_FILE_NAMES = ['twister2.yaml', 'twister2.yml', 'twister2.json'] as const;

export function findSpecFile(jobDir: string): string | undefined {
  return SPEC_FILE_NAMES.map((n) => path.join(jobDir, n)).find((f) => existsSync(f));
}

/** A spec is a few dozen fields: more aliases than this is an alias bomb ("billion laughs"), not a spec. */
const MAX_YAML_ALIASES = 100;

/** Reads a spec file as a plain object; syntax errors name the file and line. */
export async function readSpecFile(file: string): Promise<Record<string, unknown>> {
  const name = path.basename(file);
  const text = await readSpecText(file, name);
  return parseSpecText(text, name);
}

async function readSpecText(file: string, name: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EISDIR' ? 'is a directory, not a file' : e.code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${e.code ?? e.message})`;
    throw new SpecError([{ path: '', message: `${file} ${why}; make ${name} a readable file holding the job spec` }], name);
  }
}

/** Parses spec text (YAML, or JSON for a .json name) into a plain object; every failure is a SpecError. */
export function parseSpecText(text: string, name: string): Record<string, unknown> {
  let value: unknown;
  if (name.endsWith('.json')) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new SpecError([{ path: '', message: `not valid JSON: ${(err as Error).message}` }], name);
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      throw new SpecError(doc.errors.map((e) => ({ path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` })), name);
    }
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    } catch (err) {
      // The yaml library throws a ReferenceError for an alias bomb and for an alias to nothing.
      const why = /alias count/i.test((err as Error).message)
        ? `too many YAML aliases (more than ${MAX_YAML_ALIASES} expansions); write the values out instead of nesting aliases`
        : `YAML: ${(err as Error).message}`;
      throw new SpecError([{ path: '', message: why }], name);
    }
  }
  if (value === null || value === undefined) value = {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SpecError([{ path: '', message: 'the spec must be a mapping of keys to values' }], name);
  }
  return value as Record<string, unknown>;
}

/** Deep-merges overrides into a spec object; arrays and scalars replace, objects merge. */
export function mergeSpec(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeSpec(prev, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The spec of a job directory: its spec file (if any) with overrides from the CLI or the library call on
 * top. A problem in a field the overrides set is blamed on `overridesSource` (the flag or the call), not
 * on the file.
 */
export async function resolveJobSpec(jobDir: string, overrides: Partial<JobSpecInput> = {}, overridesSource = 'the submit() call'): Promise<JobSpec> {
  const file = findSpecFile(jobDir);
  const base = file ? await readSpecFile(file) : {};
  if (!file && Object.keys(overrides).length === 0) {
    throw new SpecError(
      [{ path: '', message: `no ${SPEC_FILE_NAMES.join(' / ')} found in the job; add one, or pass the spec in code` }],
      jobDir,
    );
  }
  try {
    return parseSpec(mergeSpec(base, overrides as Record<string, unknown>));
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    throw blame(err, overrides as Record<string, unknown>, overridesSource, file ? path.basename(file) : undefined);
  }
}

/** Names where each problem came from: the overrides when they set the field (or a parent of it), else the file. */
function blame(err: SpecError, overrides: Record<string, unknown>, overridesSource: string, fileName: string | undefined): SpecError {
  const fromOverrides = (p: SpecProblem) => p.path !== '' && setsPath(overrides, p.path);
  const ours = err.problems.filter(fromOverrides);
  if (ours.length === err.problems.length) return new SpecError(err.problems, overridesSource);
  if (ours.length === 0) return new SpecError(err.problems, fileName ?? overridesSource);
  const problems = err.problems.map((p) => (fromOverrides(p) ? { ...p, message: `${p.message} (set by ${overridesSource})` } : p));
  return new SpecError(problems, fileName);
}

/** Whether an override object sets the field at a formatted path such as `resources.memory` or `mpi.hosts[0].slots`. */
function setsPath(overrides: Record<string, unknown>, fieldPath: string): boolean {
  let node: unknown = overrides;
  for (const key of fieldPath.split(/\.|\[|\]/).filter(Boolean)) {
    if (typeof node !== 'object' || node === null || !(key in node)) return false;
    const next = (node as Record<string, unknown>)[key];
    if (typeof next !== 'object' || next === null) return next !== undefined;
    node = next;
  }
  return true;
}

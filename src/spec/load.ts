import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { SpecError } from '../errors.js';
import type { JobSpec, JobSpecInput } from './schema.js';
import { parseSpec } from './validate.js';

export const SPEC_FILE_NAMES = ['twister2.yaml', 'twister2.yml', 'twister2.json'] as const;

export function findSpecFile(jobDir: string): string | undefined {
  return SPEC_FILE_NAMES.map((n) => path.join(jobDir, n)).find((f) => existsSync(f));
}

/** Reads a spec file as a plain object; syntax errors name the file and line. */
export async function readSpecFile(file: string): Promise<Record<string, unknown>> {
  const text = await readFile(file, 'utf8');
  const name = path.basename(file);
  let value: unknown;
  if (file.endsWith('.json')) {
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
    value = doc.toJS();
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

/** The spec of a job directory: its spec file (if any) with overrides from the CLI or the library call on top. */
export async function resolveJobSpec(jobDir: string, overrides: Partial<JobSpecInput> = {}): Promise<JobSpec> {
  const file = findSpecFile(jobDir);
  const base = file ? await readSpecFile(file) : {};
  if (!file && Object.keys(overrides).length === 0) {
    throw new SpecError(
      [{ path: '', message: `no ${SPEC_FILE_NAMES.join(' / ')} found in the job; add one, or pass the spec in code` }],
      jobDir,
    );
  }
  return parseSpec(mergeSpec(base, overrides as Record<string, unknown>), file ? path.basename(file) : 'the submitted spec');
}

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { workerTokenOf } from '../../src/job/worker-environment.js';
import { testRecords, type CliResult } from './cli.js';

/**
 * Checks a run of test/fixtures/credentials-worker.mjs on `n` workers: every kill, scale and status it tried
 * with its token was refused with 403, the job succeeded, and the environment and argv its programs saw,
 * the client's output and the worker logs hold the worker token at most, never the job's admin secret.
 * Returns the environments the programs printed.
 */
export function expectWorkersHeldOnlyTheWorkerToken(r: CliResult, jobDir: string, n: number): Array<Record<string, string>> {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain('SUCCEEDED');
  const recs = testRecords<{ id: number; route: string; status: number; code?: string }>(r.stdout);
  expect(recs).toHaveLength(3 * n);
  for (const rec of recs) expect(rec, JSON.stringify(rec)).toMatchObject({ status: 403, code: 'T2_FORBIDDEN' });
  const secret = readFileSync(path.join(jobDir, 'token'), 'utf8').trim();
  const dumps = r.stdout.split('\n').flatMap((l) => (l.includes('ENVDUMP ') ? [l.slice(l.indexOf('ENVDUMP ') + 8)] : []));
  expect(dumps).toHaveLength(n);
  for (const d of dumps) expect(d).toContain(workerTokenOf(secret));
  expect(r.stdout + r.stderr).not.toContain(secret);
  for (let id = 0; id < n; id++) expect(readFileSync(path.join(jobDir, 'logs', `worker-${id}.log`), 'utf8')).not.toContain(secret);
  return dumps.map((d) => (JSON.parse(d) as { env: Record<string, string> }).env);
}

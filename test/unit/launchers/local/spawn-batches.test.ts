import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { LocalLauncher } from '../../../../src/launchers/local/local-launcher.js';
import type { WorkerExit } from '../../../../src/launchers/launcher.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const turn = () => new Promise((r) => setImmediate(r));

// From the sources, the worker runtime the launcher starts is not built: each process exits at once, which
// is all this test needs: it counts how many the launcher started, and when.
it('spawns workers a few per turn of the event loop, so start() returns at once, and none once released', async () => {
  const jobDir = mkdtempSync(path.join(os.tmpdir(), 't2-spawn-'));
  dirs.push(jobDir);
  const ctx = {
    jobId: 'spawn-1',
    spec: parseSpec({ name: 'spawn', workers: 12, worker: { command: 'true' } }),
    jobDir,
    packageRef: { kind: 'file' as const, path: '/p.tar.gz', sha256: 'a'.repeat(64), size: 3 },
    jobMasterUrl: 'http://127.0.0.1:1',
    token: 't'.repeat(43),
  };
  const started = new Set<number>();
  const exits: WorkerExit[] = [];
  const launcher = new LocalLauncher();
  const seen = () => launcher.pids().forEach((_, id) => started.add(id));
  await launcher.start(ctx, { workerExited: (e) => exits.push(e) });
  seen();
  expect([...started]).toEqual([0, 1, 2, 3]);
  await turn();
  seen();
  expect([...started].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  await launcher.release(); // before the third batch
  for (let i = 0; i < 5; i++) await turn();
  seen();
  expect(started.size).toBe(8);
  expect(launcher.pids().size).toBe(0);
});

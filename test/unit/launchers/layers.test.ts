import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
const rel = (file: string) => path.relative(SRC, file);

/** Static imports that stay at run time (no `import type`, no lazy `import()`): relative files as paths, packages by name. */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms)) {
    const spec = m[1]!;
    out.push(spec.startsWith('.') ? path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')) : spec);
  }
  return out;
}

/** Every module `entry` loads at start-up, following static imports only. */
function loadedBy(...entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((e) => path.join(SRC, e));
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    if (path.isAbsolute(f)) todo.push(...staticImports(f));
  }
  return new Set([...seen].map((f) => (path.isAbsolute(f) ? rel(f) : f)));
}

function allFiles(dir: string): string[] {
  return readdirSync(path.join(SRC, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

const BACKENDS = { local: 'local', mpi: 'mpi', slurm: 'slurm', nomad: 'nomad', kubernetes: 'k8s' } as const;

describe('layers', () => {
  it('nothing below the client imports it', () => {
    const offenders = ['job', 'jobmaster', 'launchers', 'worker', 'protocol', 'spec', 'uploader', 'package', 'net']
      .flatMap(allFiles)
      .filter((f) => staticImports(f).concat([...readFileSync(f, 'utf8').matchAll(/import\('([^']+)'\)/g)].map((m) => path.resolve(path.dirname(f), m[1]!))).some((i) => rel(i).startsWith('client/')));
    expect(offenders.map(rel)).toEqual([]);
  });

  it('the dashboard (a web server and its framework) is loaded by `twister2 dashboard` only', () => {
    const offenders = allFiles('.')
      .filter((f) => !rel(f).startsWith('dashboard/') && rel(f) !== 'cli/commands/dashboard.ts')
      .filter((f) => staticImports(f).some((i) => rel(i).startsWith('dashboard/') || i === 'hono' || i.startsWith('@hono/')));
    expect(offenders.map(rel)).toEqual([]);
  });

  it.each([
    ['a worker runtime', ['worker/main.ts', 'worker/heartbeat-thread.ts']],
    ['a plain (MPI-style) worker', ['worker/plain-main.ts']],
    ['an in-worker command (twister2 barrier, workers, ports publish)', ['cli/entry.ts', 'cli/commands/in-worker.ts', 'cli/output.ts', 'cli/report-error.ts']],
  ])('%s starts without loading any package (zod, got, yargs, yaml, tar, cluster clients: each costs more than the rest)', (_, entries) => {
    expect([...loadedBy(...entries)].filter((f) => !f.endsWith('.ts') && !f.startsWith('node:'))).toEqual([]);
  });

  it('uploaders, packages and the worker-independent helpers import no launcher', () => {
    const offenders = ['uploader', 'package', 'net', 'protocol', 'job']
      .flatMap(allFiles)
      .flatMap((f) => staticImports(f).filter((i) => path.isAbsolute(i) && rel(i).startsWith('launchers/')).map((i) => `${rel(f)} -> ${rel(i)}`));
    expect(offenders).toEqual([]);
  });

  it('the spec reaches into a backend folder only for its section, the worker only for the worker-side registry', () => {
    const reach = (dir: string) => allFiles(dir).flatMap((f) => staticImports(f).filter((i) => path.isAbsolute(i) && rel(i).startsWith('launchers/')).map((i) => rel(i)));
    expect(reach('spec').filter((i) => !/^launchers\/[a-z0-9]+\/section\.ts$/.test(i))).toEqual([]);
    expect(reach('worker').filter((i) => i !== 'launchers/worker-sides.ts')).toEqual([]);
  });

  it.each(Object.entries(BACKENDS))('a %s worker finds its ID without loading another backend, a launcher, the spec schema, zod or a cluster client', (cluster, folder) => {
    const loaded = [...loadedBy('launchers/worker-sides.ts', 'launchers/worker-side.ts', `launchers/${folder}/worker-side.ts`)];
    // Slurm's `launch: mpirun` and Kubernetes' OpenMPI mode number workers by MPI rank: MPI's worker side is shared.
    const allowed = new Set([folder, 'mpi']);
    expect(loaded.filter((f) => /^launchers\/[a-z0-9]+\//.test(f) && !allowed.has(f.split('/')[1]!))).toEqual([]);
    expect(loaded.filter((f) => f === 'zod' || f.startsWith('@kubernetes/') || f.startsWith('spec/') || /launcher\.ts$|registry\.ts$/.test(f))).toEqual([]);
    expect(cluster).toBeTruthy();
  });
});

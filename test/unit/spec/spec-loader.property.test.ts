import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../src/errors.js';
import { parseSpecText } from '../../../src/spec/load.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { propertySeed } from '../../helpers/property.js';

/**
 * Whatever a user writes, the spec loader either returns a spec or throws a SpecError (exit 2) whose
 * every problem names a field path (or the root, for a file that is not a mapping at all): never
 * another exception, never a stack trace in the message.
 */
const seed = propertySeed('spec loader');

const validSpec = fc.record(
  {
    name: fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/),
    workers: fc.integer({ min: 1, max: 64 }),
    worker: fc.oneof(
      fc.record({ command: fc.oneof(fc.constant('true'), fc.array(fc.constantFrom('sh', '-c', 'exit 0'), { minLength: 1, maxLength: 3 })) }),
      fc.record({ module: fc.constantFrom('w.mjs', 'src/w.ts', 'a.js') }, { requiredKeys: ['module'] }),
    ),
    cluster: fc.constantFrom('local', 'slurm', 'nomad'),
    resources: fc.record({ cpu: fc.constantFrom(1, 0.5, 2), memory: fc.constantFrom('512Mi', '1Gi', 1024), gpus: fc.nat(4) }, { requiredKeys: [] }),
    timeouts: fc.record({ registration: fc.constantFrom('30s', 60, '2m'), barrier: fc.constantFrom('5m', '1h'), heartbeat: fc.constantFrom('10s', '1s') }, { requiredKeys: [] }),
    restart: fc.record({ maxRestarts: fc.nat(5) }),
    jobMaster: fc.record({ port: fc.nat(65535), host: fc.constant('127.0.0.1'), placement: fc.constantFrom('client', 'cluster') }, { requiredKeys: [] }),
  },
  { requiredKeys: ['name', 'workers', 'worker'] },
);

/** Values that are wrong in every way a hand-written file can be. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e9, Number.MAX_SAFE_INTEGER, '', ' ', '0x10', '1e9', 'NaN', '512Qi', '-5s', '__proto__', 'constructor'),
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
  fc.anything({ maxDepth: 2 }),
);

const FIELD_NAMES = ['name', 'workers', 'worker', 'module', 'command', 'args', 'env', 'cluster', 'resources', 'cpu', 'memory', 'gpus', 'disk',
  'timeouts', 'registration', 'barrier', 'heartbeat', 'restart', 'maxRestarts', 'jobMaster', 'port', 'host', 'placement', 'uploader', 'kind',
  'http', 's3', 'mpi', 'hosts', 'slots', 'slurm', 'nomad', 'kubernetes', 'local', 'workDir', 'wrkers', 'Workers', '__proto__', 'constructor', 'toString'];

type Mutation = { path: string[]; op: 'set' | 'delete'; value?: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  path: fc.array(fc.constantFrom(...FIELD_NAMES), { minLength: 1, maxLength: 3 }),
  op: fc.constantFrom('set', 'delete'),
  value: oddValue,
});

/** Applies a mutation to a copy; a path through a non-object replaces it with an object. */
function mutate(spec: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const copy = structuredClone(spec);
  let node: Record<string, unknown> = copy;
  for (const key of m.path.slice(0, -1)) {
    const next = node[key];
    node = Object.prototype.hasOwnProperty.call(node, key) && typeof next === 'object' && next !== null && !Array.isArray(next) ? (next as Record<string, unknown>) : (node[key] = {});
  }
  const last = m.path[m.path.length - 1]!;
  if (m.op === 'delete') delete node[last];
  else Object.defineProperty(node, last, { value: m.value, enumerable: true, writable: true, configurable: true });
  return copy;
}

const nearValid = fc.tuple(validSpec, fc.array(mutation, { maxLength: 3 })).map(([spec, ms]) => ms.reduce(mutate, spec as Record<string, unknown>));

/** YAML text: near-valid specs written out, and raw text built from YAML's special characters. */
const yamlText = fc.oneof(
  nearValid.map((s) => safeStringify(s)),
  fc.array(fc.constantFrom('name: a\n', 'workers: ', '4', '&x ', '*x', '*y', '[', ']', '{', '}', ': ', '- ', '\n', '  ', '"', "'", '#', '!!binary ', '!!js/function ', '? ', '---\n', '...\n', '|', '>', '%YAML 1.2\n', '<<: *x\n', 'a', '0x10', '~', '\t'), { maxLength: 30 }).map((parts) => parts.join('')),
  fc.string({ maxLength: 80 }),
  // Nested aliases: a small alias bomb.
  fc.integer({ min: 1, max: 8 }).map((depth) => {
    const lines = ['name: bomb', 'workers: 1', 'worker: { command: "true" }', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= depth; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    return lines.join('\n');
  }),
);

function safeStringify(v: unknown): string {
  try {
    return stringify(v);
  } catch {
    return JSON.stringify(v) ?? '';
  }
}

/** The outcome every input must have: a spec, or a SpecError whose problems name field paths. */
function checkOutcome(run: () => unknown): void {
  let err: unknown;
  try {
    run();
    return;
  } catch (e) {
    err = e;
  }
  if (!(err instanceof SpecError)) throw new Error(`expected a SpecError, got ${String(err)}`, { cause: err });
  expect(err.exitCode).toBe(2);
  expect(err.problems.length).toBeGreaterThan(0);
  expect(err.message).not.toMatch(/^\s+at /m);
  for (const p of err.problems) {
    // A field path: plain names joined by dots, indexes and quoted odd keys, e.g. `mpi.hosts[0].slots`, `["~name"]`.
    expect(p.path).toMatch(/^$|^([A-Za-z_$][\w$-]*|\[("([^"\\]|\\.)*"|\d+)\])(\.[A-Za-z_$][\w$-]*|\[("([^"\\]|\\.)*"|\d+)\])*$/);
    expect(err.message).toContain(`  - ${p.path || '(root)'}: `);
    expect(p.message.length).toBeGreaterThan(0);
  }
}

describe('spec loader, property-based', () => {
  it('turns every near-valid spec object into a spec or a SpecError naming the field', () => {
    fc.assert(fc.property(nearValid, (raw) => checkOutcome(() => parseSpec(raw, 'twister2.yaml'))), { seed, numRuns: 3000 });
  });

  it('turns every YAML text into a spec or a SpecError naming the field', () => {
    fc.assert(fc.property(yamlText, (text) => checkOutcome(() => parseSpec(parseSpecText(text, 'twister2.yaml'), 'twister2.yaml'))), { seed, numRuns: 3000 });
  });

  it('turns every JSON text into a spec or a SpecError naming the field', () => {
    const jsonText = fc.oneof(nearValid.map((s) => JSON.stringify(s)), fc.json(), fc.string({ maxLength: 40 }));
    fc.assert(fc.property(jsonText, (text) => checkOutcome(() => parseSpec(parseSpecText(text, 'twister2.json'), 'twister2.json'))), { seed, numRuns: 1000 });
  });

  it('accepts every valid spec as it is', () => {
    fc.assert(fc.property(validSpec, (raw) => {
      expect(parseSpec(parseSpecText(stringify(raw), 'twister2.yaml')).workers).toBe(raw.workers);
    }), { seed, numRuns: 500 });
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/package/manifest.js';
import { parseSpecText } from '../../../src/spec/load.js';
import { specToInput } from '../../../src/spec/schema.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { specOfPackage } from '../../../src/worker/spec-view.js';

const examples = ['hello-js', 'hello-python', 'hello-shell', 'iterative-driver'].map((name) => parseSpecText(readFileSync(new URL(`../../../examples/${name}/twister2.yaml`, import.meta.url), 'utf8'), name));
// Every section that normalizes something: durations, sizes, each backend's own section.
const full = {
  name: 'full',
  workers: 4,
  worker: { command: 'run.sh', args: ['a'], env: { A: '1' }, ports: ['data'] },
  resources: { cpu: 2, memory: '1Gi', gpus: 1 },
  timeouts: { registration: '2m', barrier: '30s', heartbeat: '5s' },
  restart: { maxRestarts: 2 },
};
/** A manifest as the client writes it (JSON), with or without the normalized view. */
const manifestOf = (raw: unknown, withView: boolean): Manifest => {
  const spec = parseSpec(raw);
  return JSON.parse(JSON.stringify({ formatVersion: 1, spec: specToInput(spec), ...(withView ? { view: spec } : {}), files: [], totalBytes: 0 })) as Manifest;
};

describe('a worker\'s spec from the package', () => {
  it.each([...examples.map((e, i) => [`example ${i}`, e] as const), ['every normalized field', full] as const])('%s: the view through JSON is the spec the client validated', async (_, raw) => {
    expect(await specOfPackage(manifestOf(raw, true))).toEqual(parseSpec(raw));
  });

  it('a package without a view (an older client) is validated as before', async () => {
    expect(await specOfPackage(manifestOf(full, false))).toEqual(parseSpec(full));
  });
});

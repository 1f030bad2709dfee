import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OptionsError, SpecError, Twister2Error } from '../../../src/errors.js';
import { submit, type SubmitOptions } from '../../../src/client/submit.js';

/** The library's entry checks: wrong options and an aborted signal fail before anything is created. */
let home = '';
const saved = process.env.TWISTER2_HOME;
beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 't2-home-'));
  process.env.TWISTER2_HOME = home;
});
afterEach(() => {
  process.env.TWISTER2_HOME = saved;
});

function jobDir(spec: string = '{"name": "lib", "workers": 2, "worker": {"command": "true"}}'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-job-'));
  writeFileSync(path.join(dir, 'twister2.yaml'), spec);
  return dir;
}

const nothingCreated = () => expect(existsSync(path.join(home, 'jobs')) ? readdirSync(path.join(home, 'jobs')) : []).toEqual([]);

async function rejection(p: Promise<unknown>): Promise<Twister2Error> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(Twister2Error.is(err)).toBe(true);
  return err as Twister2Error;
}

describe('submit() options', () => {
  it('submit({}) is a typed error naming the missing option, not a TypeError', async () => {
    const err = await rejection(submit({} as SubmitOptions));
    expect(err).toBeInstanceOf(OptionsError);
    expect(err.code).toBe('T2_OPTIONS_INVALID');
    expect((err as OptionsError).problems).toEqual([{ path: 'job', message: 'is required: the job directory, .zip or .tar.gz to submit' }]);
    expect(err.exitCode).toBe(2);
    nothingCreated();
  });

  it('refuses no options at all, unknown options and wrong types, naming each', async () => {
    expect((await rejection(submit(undefined as unknown as SubmitOptions))).message).toMatch(/\(root\): expected an options object/);
    const err = await rejection(submit({ job: jobDir(), worker: 3, workers: 0, cluster: 'yarn' } as unknown as SubmitOptions));
    expect(err.message).toMatch(/invalid options to submit\(\):/);
    expect(err.message).toMatch(/worker: unknown option/);
    expect(err.message).toMatch(/workers: expected at least 1 worker/);
    expect(err.message).toMatch(/cluster: expected one of local, kubernetes, slurm, nomad, mpi/);
    nothingCreated();
  });

  it('blames a bad value given in `spec` on the call, not on the file', async () => {
    const err = await rejection(submit({ job: jobDir(), spec: { resources: { gpus: 100 } } }));
    expect(err).toBeInstanceOf(SpecError);
    expect(err.message).toMatch(/^invalid job spec in the submit\(\) call:\n {2}- resources.gpus: expected at most 64 GPUs/);
    // Both at once: each problem says where it came from.
    const both = await rejection(submit({ job: jobDir('{"name": "lib", "workers": 2, "worker": {"command": "true"}, "restart": {"maxRestarts": -1}}'), spec: { resources: { gpus: 100 } } }));
    expect(both.message).toMatch(/in twister2.yaml:/);
    expect(both.message).toMatch(/resources.gpus: .* \(set by the submit\(\) call\)/);
    expect(both.message).toMatch(/restart.maxRestarts: expected 0 or more restarts \(got -1\)$/m);
    nothingCreated();
  });

  it('an already-aborted signal rejects at once and creates nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await rejection(submit({ job: jobDir(), signal: ac.signal }));
    expect(err.code).toBe('T2_JOB_KILLED');
    expect(err.message).toMatch(/aborted before the job was submitted; nothing was created/);
    nothingCreated();
  });
});

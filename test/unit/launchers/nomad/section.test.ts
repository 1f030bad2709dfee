import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../../src/errors.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const docker = { name: 'j', workers: 2, worker: { command: 'true' }, cluster: 'nomad', nomad: { driver: 'docker', image: 'twister2/worker:0.1.0' } };

function problems(raw: unknown): string {
  try {
    parseSpec(raw);
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).message;
  }
}

describe('nomad section against the rest of the spec', () => {
  it('a docker task needs a package it can download, before anything is created', () => {
    expect(problems(docker)).toMatch(/uploader.kind: driver "docker" cannot read the package from this machine's disk \(uploader "local"\); use uploader.kind "http" or "s3"/);
    expect(problems({ ...docker, uploader: { kind: 'http', http: { url: 'http://10.0.0.1:8080' } } })).toBe('');
  });

  it('a job master in an allocation is not run by docker', () => {
    const http = { kind: 'http', http: { url: 'http://10.0.0.1:8080' } };
    expect(problems({ ...docker, uploader: http, jobMaster: { placement: 'cluster' } })).toMatch(/nomad.driver: jobMaster.placement "cluster" on nomad runs the job master .* not driver "docker"/);
  });

  it('gpuDevice must be a Nomad device name: the field, the value and the form are named', () => {
    const gpu = { name: 'j', workers: 2, worker: { command: 'true' }, cluster: 'nomad', resources: { gpus: 1 } };
    expect(problems({ ...gpu, nomad: { gpuDevice: 'nvidia gpu' } })).toMatch(/nomad.gpuDevice: expected a Nomad device name: <type>, <vendor>\/<type> or <vendor>\/<type>\/<model>, e.g. "nvidia\/gpu" or "gpu"; got "nvidia gpu"/);
    for (const ok of ['gpu', 'nvidia/gpu', 'nvidia/gpu/Tesla-T4', 'amd/gpu']) expect(problems({ ...gpu, nomad: { gpuDevice: ok } })).toBe('');
  });
});

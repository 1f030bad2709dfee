import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  commandWorkerVariables, storageVariables,
  ENV,
  hostVolumePathOf,
  readWorkerEnvironment,
  workerEnvironment,
  workerTokenOf,
  writeWorkerTokenFile,
} from '../../../src/job/worker-environment.js';
import { parseSpec } from '../../../src/spec/validate.js';

const SECRET = 'the-jobs-admin-secret-0123456789';
const src = {
  jobId: 'job-1',
  spec: parseSpec({ name: 'job', workers: 2, worker: { command: 'true' } }),
  jobMasterUrl: 'http://127.0.0.1:4000',
  packageRef: { kind: 'file' as const, path: '/p.tar.gz', sha256: 'a'.repeat(64), size: 3 },
  token: SECRET,
};

describe('the worker environment contract', () => {
  it('gives workers the worker token, never the admin secret, and reads back what it built', () => {
    const env = workerEnvironment(src, { secret: { kind: 'env' }, workerId: 1, restartCount: 2, workDir: { path: '/w', scratch: true } });
    expect(Object.values(env).join('\n')).not.toContain(SECRET);
    expect(env[ENV.workerToken]).toBe(workerTokenOf(SECRET));
    const read = readWorkerEnvironment(env);
    expect(read).toEqual({
      jobId: 'job-1',
      jobMasterUrl: 'http://127.0.0.1:4000',
      jobMasterService: undefined,
      token: workerTokenOf(SECRET),
      packageRef: src.packageRef,
      restartCount: 2,
      registrationTimeoutMs: 60_000,
      workDir: '/w',
      scratchWorkDir: true,
    });
  });

  it('carries the token in a 0600 file, through the cluster, or not at all', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 't2-wenv-'));
    const file = writeWorkerTokenFile(dir, SECRET);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const env = workerEnvironment(src, { secret: { kind: 'file', file } });
    expect(env[ENV.workerToken]).toBeUndefined();
    expect(readWorkerEnvironment(env).token).toBe(workerTokenOf(SECRET));
    expect(workerEnvironment(src, { secret: { kind: 'cluster' }, jobMaster: { service: 'svc' } })).not.toHaveProperty(ENV.workerToken);
    expect(workerEnvironment(src, { secret: { kind: 'cluster' }, jobMaster: { service: 'svc' } })[ENV.jobMasterService]).toBe('svc');
    const plain = workerEnvironment(src, { secret: { kind: 'none' }, jobMaster: 'none' });
    expect(Object.keys(plain).sort()).toEqual([ENV.cluster, ENV.jobId, ENV.packageRef, ENV.registrationTimeoutMs].sort());
  });

  it('names the variable that is broken', () => {
    const good = workerEnvironment(src, { secret: { kind: 'env' } });
    expect(() => readWorkerEnvironment({ ...good, [ENV.jobId]: '' })).toThrow(/TWISTER2_JOB_ID that is not set/);
    expect(() => readWorkerEnvironment({ ...good, [ENV.packageRef]: '{"kind":"file"}' })).toThrow(/TWISTER2_PACKAGE_REF that is not a package reference/);
    expect(() => readWorkerEnvironment({ ...good, [ENV.workerToken]: 'short' })).toThrow(/TWISTER2_JOB_TOKEN that is too short/);
    expect(() => readWorkerEnvironment({ ...good, [ENV.restartCount]: '-1' })).toThrow(/TWISTER2_RESTART_COUNT/);
    expect(() => readWorkerEnvironment({ ...good, [ENV.workerToken]: undefined, [ENV.workerTokenFile]: '/nonexistent/t' })).toThrow(/cannot read the worker token from \/nonexistent\/t/);
  });

  it('gives a command worker its ports as TWISTER2_PORT_<NAME>', () => {
    const vars = commandWorkerVariables({
      jobMasterUrl: 'http://x', token: 't', workerId: 0, numWorkers: 1, session: 's', restartCount: 0, packageDir: '/p',
      volumes: { work: '/w', shared: '/s' }, storage: { memory: undefined, scratch: '/w/scratch', persistent: undefined }, ports: { data: 5000, 'ctrl-plane': 5001 }, recoveryMs: 0,
    });
    expect(vars).toMatchObject({ TWISTER2_PORT_DATA: '5000', TWISTER2_PORT_CTRL_PLANE: '5001' });
  });

  it('gives a command worker the storage it has, and no variable for storage the spec did not ask for', () => {
    expect(storageVariables({ memory: undefined, scratch: '/w/scratch', persistent: undefined })).toEqual({ TWISTER2_SCRATCH_DIR: '/w/scratch' });
    expect(storageVariables({ memory: '/dev/shm/twister2-j', scratch: '/w/scratch', persistent: '/nfs/out' })).toEqual({
      TWISTER2_MEMORY_DIR: '/dev/shm/twister2-j',
      TWISTER2_SCRATCH_DIR: '/w/scratch',
      TWISTER2_PERSISTENT_DIR: '/nfs/out',
    });
  });
});

describe('the host volume path of a Nomad worker', () => {
  const paths = JSON.stringify({ 'node-a': '/srv/results', 'node-b': '/data/results' });
  it("is its node's entry of the launcher's map; none without the map", () => {
    expect(hostVolumePathOf({ [ENV.hostVolumePaths]: paths, [ENV.nodeId]: 'node-b' })).toBe('/data/results');
    expect(hostVolumePathOf({})).toBeUndefined();
  });

  it('a node the map does not list fails naming the node, the nodes known and the fix', () => {
    expect(() => hostVolumePathOf({ [ENV.hostVolumePaths]: paths, [ENV.nodeId]: 'node-c' })).toThrow(
      /^storage\.persistent\.hostVolume has no path known on Nomad client node node-c: .* \(node-a, node-b\); submit the job again to include nodes added since$/,
    );
    expect(() => hostVolumePathOf({ [ENV.hostVolumePaths]: '{', [ENV.nodeId]: 'node-a' })).toThrow(/TWISTER2_HOST_VOLUME_PATHS that is not JSON/);
  });
});

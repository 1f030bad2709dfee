import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../src/errors.js';
import { parseSpec } from '../../../src/spec/validate.js';

const ok = { name: 'job', workers: 2, worker: { command: 'true' } };

function problems(raw: unknown): string {
  try {
    parseSpec(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).message;
  }
  throw new Error('expected a SpecError');
}

describe('job spec', () => {
  it('fills defaults and converts units', () => {
    const spec = parseSpec({ ...ok, resources: { memory: '1Gi', cpu: 2 }, timeouts: { heartbeat: '800ms', barrier: 90 } });
    expect(spec.resources).toEqual({ cpu: 2, memory: 2 ** 30, gpus: 0 });
    expect(spec.timeouts).toEqual({ registration: 60_000, barrier: 90_000, heartbeat: 800, jobMasterRecovery: 60_000 });
    expect(spec.jobMaster).toEqual({ placement: 'client', port: 0, host: '127.0.0.1' });
    expect(spec.cluster).toBe('local');
    expect(spec.restart.maxRestarts).toBe(0);
  });

  it.each([
    [{ ...ok, workers: '4' }, /workers: expected a whole number of workers.*\(got "4"\)/],
    [{ ...ok, workers: 0 }, /workers: expected at least 1 worker \(got 0\)/],
    // A too-large count must not be described as "at least 1" (the schema's type message).
    [{ ...ok, workers: 1e9 }, /workers: expected at most 100000 workers \(got 1000000000\)/],
    [{ ...ok, resources: { gpus: 100 } }, /resources.gpus: expected at most 64 GPUs \(got 100\)/],
    [{ ...ok, workers: -3 }, /workers: .*\(got -3\)/],
    [{ ...ok, workers: 2.5 }, /workers: expected a whole number.*\(got 2.5\)/],
    [{ ...ok, wokers: 3 }, /wokers: unknown key "wokers" \(did you mean "workers"\?\)/],
    [{ ...ok, worker: { comand: 'x' } }, /worker.comand: unknown key "comand" \(did you mean "command"\?\)/],
    [{ ...ok, worker: {} }, /worker: missing program: set worker.module .* or worker.command/],
    [{ ...ok, worker: { module: 'a.js', command: 'b' } }, /either worker.module or worker.command, not both/],
    [{ ...ok, worker: { module: 'a.py' } }, /worker.module: expected a .js, .mjs, .cjs, .ts or .mts file.*use worker.command/],
    [{ ...ok, name: 'My Job' }, /name: 1 to 40 lowercase letters.*\(got "My Job"\)/],
    [{ ...ok, timeouts: { heartbeat: 'soon' } }, /timeouts.heartbeat: "soon" is not a positive duration/],
    [{ ...ok, timeouts: { heartbeat: '100ms' } }, /timeouts.heartbeat: "100ms" is too short: at least 500ms/],
    [{ ...ok, resources: { memory: 'lots' } }, /resources.memory: "lots" is not a size/],
    [{ ...ok, jobMaster: { placement: 'moon' } }, /jobMaster.placement: .*"client"\|"cluster".*\(got "moon"\)/],
    [{ ...ok, cluster: 'yarn' }, /cluster: .*"local".*\(got "yarn"\)/],
    [{ ...ok, worker: { command: 'x', env: { TWISTER2_WORKER_ID: '3' } } }, /worker.env.TWISTER2_WORKER_ID: names starting with TWISTER2_/],
    [{ ...ok, nomad: { datacenter: 'dc1' } }, /nomad.datacenter: unknown key "datacenter"/],
    [{ ...ok, restart: { maxRestarts: -1 } }, /restart.maxRestarts: .*\(got -1\)/],
    [{ ...ok, worker: { command: 'x', health: {} } }, /worker.health: set exactly one of worker.health.command .* or worker.health.http/],
    [{ ...ok, worker: { command: 'x', health: { command: 'y', http: { port: 80 } } } }, /worker.health: set exactly one of/],
    [{ ...ok, worker: { command: 'x', health: { http: { port: 'data' } } } }, /worker.health.http.port: "data" is not one of worker.ports \(none\); list it in worker.ports, or give a port number/],
    [{ ...ok, worker: { command: 'x', health: { http: { port: 80, path: 'healthz' } } } }, /worker.health.http.path: expected a path starting with "\/"/],
    [{ ...ok, worker: { command: 'x', health: { command: 'y', failureThreshold: 0 } } }, /worker.health.failureThreshold: expected at least 1 \(got 0\)/],
    [{ ...ok, worker: { command: 'x', health: { command: 'y', interval: '10ms' } } }, /worker.health.interval: "10ms" is too short: at least 100ms/],
    [{ ...ok, worker: { command: 'x', health: { command: 'y', startPeriod: 'later' } } }, /worker.health.startPeriod: "later" is not a duration; use e.g./],
    [{ ...ok, driver: {} }, /driver.module: is required: expected the path of a JS\/TS module inside the job, e.g. driver.mjs/],
    [{ ...ok, driver: { module: 'driver.py' } }, /driver.module: expected a .js, .mjs, .cjs, .ts or .mts file inside the job/],
    [{ ...ok, driver: { module: 'd.mjs', endsJob: 'yes' } }, /driver.endsJob: expected true or false/],
    [{ ...ok, worker: { command: 'x' }, jobMaster: { placement: 'none' }, driver: { module: 'd.mjs' } }, /driver: the driver runs in the job master, and jobMaster.placement "none" has none/],
  ])('rejects %j', (raw, pattern) => {
    expect(problems(raw)).toMatch(pattern);
  });

  it('fills a health check\'s defaults; its start period may be 0', () => {
    expect(parseSpec({ ...ok, worker: { command: 'x', ports: ['hc'], health: { http: { port: 'hc' } } } }).worker.health).toEqual({
      http: { port: 'hc', path: '/' },
      interval: 10_000,
      timeout: 1000,
      failureThreshold: 3,
      startPeriod: 0,
    });
    expect(parseSpec({ ...ok, worker: { command: 'x', health: { command: ['true'], startPeriod: '0s' } } }).worker.health?.startPeriod).toBe(0);
  });

  it('lists every problem at once, each with its path', () => {
    const msg = problems({ name: 'x', workers: 0, worker: { command: 5 }, colour: 'red' });
    expect(msg).toContain('workers:');
    expect(msg).toContain('worker.command:');
    expect(msg).toContain('colour: unknown key "colour"');
    expect(msg).toMatch(/Allowed here: name, cluster, workers/);
  });

  it('reports a missing required field as required', () => {
    expect(problems({ workers: 1, worker: { command: 'x' } })).toMatch(/name: is required/);
  });
});

describe('job master placement default', () => {
  it('is the client, except on Kubernetes, where it is the cluster (a pod of its own) unless the spec says', () => {
    expect(parseSpec(ok).jobMaster.placement).toBe('client');
    expect(parseSpec({ ...ok, cluster: 'slurm' }).jobMaster.placement).toBe('client');
    expect(parseSpec({ ...ok, cluster: 'kubernetes' }).jobMaster.placement).toBe('cluster');
    expect(parseSpec({ ...ok, cluster: 'kubernetes', jobMaster: { port: 7000 } }).jobMaster).toMatchObject({ placement: 'cluster', port: 7000 });
    expect(parseSpec({ ...ok, cluster: 'kubernetes', jobMaster: { placement: 'client' } }).jobMaster.placement).toBe('client');
    // A malformed section is reported as such, not replaced.
    expect(problems({ ...ok, cluster: 'kubernetes', jobMaster: 'pod' })).toMatch(/jobMaster/);
  });
});

describe('job master placement none', () => {
  it('is only for plain MPI programs', () => {
    const mpi = { cluster: 'mpi', mpi: { hosts: [{ host: 'localhost', slots: 2 }] }, jobMaster: { placement: 'none' } };
    expect(problems({ ...ok, ...mpi, worker: { module: 'w.mjs' } })).toMatch(/worker.module: a module worker needs the job master/);
    expect(parseSpec({ ...ok, ...mpi }).jobMaster.placement).toBe('none');
  });
});

describe('storage', () => {
  it('takes memory, scratch and persistent, sizes in bytes, logs off by default', () => {
    const spec = parseSpec({ ...ok, storage: { memory: { size: '1Gi' }, scratch: {}, persistent: { dir: '/nfs/results' } } });
    expect(spec.storage).toEqual({ memory: { size: 2 ** 30 }, scratch: {}, persistent: { dir: '/nfs/results', logs: false } });
    expect(parseSpec(ok).storage).toBeUndefined();
  });

  it('names the field, the value and the fix for bad input', () => {
    expect(problems({ ...ok, storage: { memory: {} } })).toMatch(/storage\.memory\.size: expected a size such as "256Mi", "1Gi" or a number of bytes/);
    expect(problems({ ...ok, storage: { memory: { size: 'lots' } } })).toMatch(/storage\.memory\.size: "lots" is not a size; use e\.g\. "256Mi", "1Gi"/);
    expect(problems({ ...ok, storage: { scratch: { size: 0 } } })).toMatch(/storage\.scratch\.size: "0" is no size at all: give more than 0 bytes/);
    expect(problems({ ...ok, storage: { persistent: { dir: 'results' } } })).toMatch(/storage\.persistent\.dir: "results" is not an absolute path without ".."; give a directory every worker sees, e\.g\. \/nfs\/results/);
    expect(problems({ ...ok, storage: { persistent: { dir: '/nfs/../etc' } } })).toMatch(/storage\.persistent\.dir: "\/nfs\/..\/etc" is not an absolute path without ".."/);
    expect(problems({ ...ok, storage: { persistent: { dir: '/nfs', logs: 'yes' } } })).toMatch(/storage\.persistent\.logs: expected true or false/);
    expect(problems({ ...ok, storage: { disk: {} } })).toMatch(/storage/);
    expect(problems({ ...ok, cluster: 'nomad', storage: { persistent: { hostVolume: 'my volume' } } })).toMatch(
      /storage\.persistent\.hostVolume: "my volume" is not a Nomad host volume name: use letters, digits, "_", "\." and "-"/,
    );
  });

  it('persistent takes exactly one of its forms: dir, hostVolume, nfs or pvc (which a cluster takes is checked with its capabilities)', () => {
    const k8s = { cluster: 'kubernetes' };
    expect(parseSpec({ ...ok, cluster: 'nomad', storage: { persistent: { hostVolume: 'results', logs: true } } }).storage?.persistent).toEqual({ hostVolume: 'results', logs: true });
    expect(parseSpec({ ...ok, ...k8s, storage: { persistent: { nfs: { server: 'nfs1', path: '/exports/r' } } } }).storage?.persistent).toEqual({ nfs: { server: 'nfs1', path: '/exports/r' }, logs: false });
    expect(parseSpec({ ...ok, ...k8s, storage: { persistent: { pvc: { storageClass: 'rwx', size: '2Gi' }, logs: true } } }).storage?.persistent).toEqual({ pvc: { storageClass: 'rwx', size: 2 * 2 ** 30, keep: false }, logs: true });
    const oneOf =
      'storage.persistent: set exactly one of storage.persistent.dir (local, mpi, slurm), storage.persistent.hostVolume (nomad), storage.persistent.nfs (kubernetes), storage.persistent.pvc (kubernetes)';
    expect(problems({ ...ok, storage: { persistent: {} } })).toContain(oneOf);
    expect(problems({ ...ok, storage: { persistent: { logs: true } } })).toContain(oneOf);
    expect(problems({ ...ok, storage: { persistent: { dir: '/nfs', nfs: { server: 'n', path: '/e' } } } })).toContain(`${oneOf}, not dir and nfs`);
    expect(problems({ ...ok, storage: { persistent: { dir: '/nfs', hostVolume: 'results' } } })).toContain(`${oneOf}, not dir and hostVolume`);
    expect(problems({ ...ok, storage: { persistent: { nfs: { server: 'n', path: 'e' } } } })).toMatch(/storage\.persistent\.nfs\.path: expected the exported directory, an absolute path such as "\/exports\/results"/);
    expect(problems({ ...ok, storage: { persistent: { pvc: { storageClass: 'Fast SSD', size: '1Gi' } } } })).toMatch(/storage\.persistent\.pvc\.storageClass: expected a StorageClass name/);
    expect(problems({ ...ok, storage: { persistent: { pvc: { storageClass: 'rwx' } } } })).toMatch(/storage\.persistent\.pvc\.size: expected a size such as "10Gi", "100Gi"/);
    expect(problems({ ...ok, storage: { persistent: { nfs: { server: 'n', path: '/e', keep: true } } } })).toContain('storage.persistent.nfs.keep: unknown key "keep". Allowed here: server, path');
  });
});


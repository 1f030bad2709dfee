import { describe, expect, it } from 'vitest';
import { SpecError, UsageError } from '../../../../src/errors.js';
import { checkHostPlan } from '../../../../src/launchers/mpi/host-plan.js';
import { findProgram } from '../../../../src/launchers/find-program.js';
import { MpiLauncher } from '../../../../src/launchers/mpi/mpi-launcher.js';
import type { Launcher } from '../../../../src/launchers/launcher.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const base = { name: 'j', workers: 4, worker: { command: 'true' }, cluster: 'mpi', jobMaster: { host: '10.0.0.1' } };
const hosts = [{ host: 'n1', slots: 2 }, { host: 'n2', slots: 2 }];

function problems(raw: unknown): string {
  try {
    parseSpec(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).message;
  }
  throw new Error('expected a SpecError');
}

describe('mpi spec section', () => {
  it('fills defaults', () => {
    expect(parseSpec({ ...base, mpi: { hosts } }).mpi).toEqual({
      hosts,
      oversubscribe: false,
      bindToCore: false,
      mca: {},
      ssh: {},
      mpirun: 'mpirun',
    });
  });

  it.each([
    [{ ...base }, /mpi: cluster is "mpi" but the mpi section is missing/],
    [{ ...base, mpi: {} }, /mpi: missing hosts: set mpi.hosts .* or mpi.hostfile/],
    [{ ...base, mpi: { hosts, hostfile: '/etc/hf' } }, /mpi: set either mpi.hosts or mpi.hostfile, not both/],
    [{ ...base, mpi: { hosts: [{ host: 'root@n1:22', slots: 2 }] } }, /mpi.hosts\[0\].host: expected a host name or IP address.*\(set the ssh user and port in mpi.ssh\)/],
    [{ ...base, mpi: { hosts: [{ host: 'n1', slots: 0 }, { host: 'n2', slots: 4 }] } }, /mpi.hosts\[0\].slots: expected at least 1 slot \(got 0\)/],
    [{ ...base, mpi: { hosts: [{ host: 'n1', slots: 3 }] } }, /mpi.hosts: the hosts have 3 slots in total but workers is 4; .*set mpi.oversubscribe: true/],
    [{ ...base, jobMaster: {}, mpi: { hosts } }, /jobMaster.host: "127.0.0.1" cannot be reached from mpi host "n1"; set jobMaster.host/],
    [{ ...base, mpi: { hostfile: 'hosts.txt' } }, /mpi.hostfile: expected an absolute path/],
    [{ ...base, mpi: { hosts, ssh: { port: 0 } } }, /mpi.ssh.port: .*\(got 0\)/],
    [{ ...base, mpi: { hosts, mca: { 'bad name': 'x' } } }, /mpi.mca\["bad name"\]: expected a map of MCA parameter names .*\(got "bad name"\)/],
    [{ ...base, mpi: { hosts, mapby: 'node' } }, /mpi.mapby: unknown key "mapby" \(did you mean "mapBy"\?\)/],
  ])('rejects %j', (raw, pattern) => {
    expect(problems(raw)).toMatch(pattern);
  });

  it('accepts fewer slots with oversubscribe, and loopback job master with local hosts only', () => {
    expect(() => parseSpec({ ...base, mpi: { hosts: [{ host: 'n1', slots: 1 }], oversubscribe: true } })).not.toThrow();
    expect(() => parseSpec({ ...base, jobMaster: {}, mpi: { hosts: [{ host: 'localhost', slots: 4 }] } })).not.toThrow();
  });

  it('checks a hostfile\'s slots and the job master address at start, naming the file', () => {
    const spec = parseSpec({ ...base, mpi: { hostfile: '/etc/hf' } });
    expect(() => checkHostPlan(spec, [{ host: 'n1', slots: 2 }])).toThrow(UsageError);
    expect(() => checkHostPlan(spec, [{ host: 'n1', slots: 2 }])).toThrow(/mpi.hostfile "\/etc\/hf" gives 2 slots in total but workers is 4/);
    expect(() => checkHostPlan(spec, [{ host: 'n1', slots: undefined }])).not.toThrow();
    const loop = parseSpec({ ...base, jobMaster: { host: '127.0.0.1' }, mpi: { hostfile: '/etc/hf' } });
    expect(() => checkHostPlan(loop, [{ host: 'n1', slots: 4 }])).toThrow(/jobMaster.host is "127.0.0.1", which mpi host "n1" cannot reach/);
  });
});

describe('mpi launcher without a cluster', () => {
  it('names mpirun and the mpi.mpirun setting when it is missing', async () => {
    const spec = parseSpec({ ...base, mpi: { hosts, mpirun: 'no-such-mpirun' } });
    const ctx = { jobId: 'j-1', spec, jobDir: '/nonexistent', packageRef: { kind: 'file', path: '/x', sha256: 'a', size: 1 } as never, jobMasterUrl: 'http://10.0.0.1:1', token: 't'.repeat(32) };
    await expect(new MpiLauncher().start(ctx, { workerExited: () => {} })).rejects.toThrow(/"no-such-mpirun" \(mpi.mpirun\) was not found on PATH; install OpenMPI/);
    expect(findProgram('sh')).toMatch(/\/sh$/);
  });

  it('has no scaling (its capabilities refuse it first), and release is safe before start and twice', async () => {
    const l: Launcher = new MpiLauncher();
    expect(l.addWorkers).toBeUndefined();
    expect(l.removeWorkers).toBeUndefined();
    await l.release();
    await l.release();
  });
});

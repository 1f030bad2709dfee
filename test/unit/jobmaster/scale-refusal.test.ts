import { afterEach, describe, expect, it } from 'vitest';
import { CapabilityError, LauncherError, Twister2Error } from '../../../src/errors.js';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import type { Launcher } from '../../../src/launchers/launcher.js';
import { JobMasterClient } from '../../../src/protocol/jobmaster-client.js';
import type { JobEvent } from '../../../src/protocol/messages.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { registration } from '../../helpers/registration.js';

/** A launcher of a cluster that cannot scale (MPI, Slurm): no addWorkers or removeWorkers at all. */
class FixedLauncher implements Launcher {
  async start() {}
  async release() {}
}

/** A launcher whose cluster refuses the change (a quota, an unreachable API). */
class FailingLauncher implements Launcher {
  calls: string[] = [];
  async start() {}
  async addWorkers(ids: number[]) {
    this.calls.push(`add ${ids.join(',')}`);
    throw new Error('quota exceeded');
  }
  async removeWorkers(ids: number[]) {
    this.calls.push(`remove ${ids.join(',')}`);
    if (ids.length === 1) throw new Error('API server unreachable');
  }
  async release() {}
}

const TOKEN = 'a-test-secret-of-enough-length';
const servers: JobMasterServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});


async function running(spec: Record<string, unknown>, launcher: Launcher) {
  const jm = new JobMaster({ jobId: 'scale-1', spec: parseSpec({ name: 'unit', workers: 2, worker: { command: 'true' }, ...spec }), launcher });
  const server = new JobMasterServer(jm, TOKEN);
  servers.push(server);
  const client = new JobMasterClient({ url: await server.listen('127.0.0.1', 0), token: TOKEN });
  jm.start();
  jm.register(registration(0));
  jm.register(registration(1));
  const events: JobEvent[] = [];
  jm.on('event', (e) => events.push(e));
  return { jm, client, events };
}

const mpi = { cluster: 'mpi', mpi: { hosts: [{ host: 'localhost', slots: 8 }] } };
const k8s = { cluster: 'kubernetes', kubernetes: { workersPerPod: 2 } };

describe('a scale the cluster cannot do', () => {
  it.each([
    ['mpi', mpi, 4, /cluster "mpi" cannot scale this job from 2 to 4 workers: an MPI job has a fixed number of ranks; the job keeps running with 2/],
    ['slurm', { cluster: 'slurm' }, 1, /cluster "slurm" cannot scale this job from 2 to 1 workers: a Slurm allocation has a fixed size/],
    ['kubernetes, not whole pods', k8s, 3, /cluster "kubernetes" cannot scale .* whole pods of 2 workers \(kubernetes.workersPerPod\) and 3 is not a multiple of 2; use 2 or 4/],
    ['kubernetes, OpenMPI', { cluster: 'kubernetes', kubernetes: { workersPerPod: 2, openmpi: true } }, 4, /OpenMPI job \(kubernetes.openmpi\) has a fixed number of ranks/],
  ])('%s: is refused on the wire with T2_CAPABILITY before anything changed', async (_name, spec, to, message) => {
    const { jm, client, events } = await running(spec, new FixedLauncher());
    const err = await client.scale(to).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapabilityError);
    expect(Twister2Error.is(err, 'T2_CAPABILITY') && err.exitCode).toBe(2);
    expect((err as Error).message).toMatch(message);
    // Nothing changed: same count, still RUNNING, both workers live, no event went out.
    expect(jm.status()).toMatchObject({ state: 'RUNNING', numWorkers: 2, registered: 2 });
    expect(events).toEqual([]);
  });
});

describe('a launcher that fails during an allowed scale', () => {
  it('scale up: rolled back, the job keeps its workers and stays RUNNING', async () => {
    const launcher = new FailingLauncher();
    const { jm, client } = await running({}, launcher);
    const err = await client.scale(4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Twister2Error);
    expect((err as Error).message).toMatch(/could not scale the job from 2 to 4 workers: quota exceeded; it keeps running with 2/);
    expect(launcher.calls).toEqual(['add 2,3', 'remove 2,3']);
    expect(jm.status()).toMatchObject({ state: 'RUNNING', numWorkers: 2, registered: 2 });
    expect(jm.status().workers.map((w) => w.workerId)).toEqual([0, 1]);
  });

  it('scale down: the job fails, naming the cause, since which workers still run is unknown', async () => {
    const launcher = new FailingLauncher();
    const { jm } = await running({}, launcher);
    await expect(jm.scale(1)).rejects.toBeInstanceOf(LauncherError);
    expect(jm.status()).toMatchObject({ state: 'FAILED', message: 'could not scale the job from 2 down to 1 workers: API server unreachable' });
  });
});

import { describe, expect, it } from 'vitest';
import { mpirunArgs, type MpirunPlan } from '../../../../src/launchers/mpi/mpirun-command.js';
import { renderSshWrapper } from '../../../../src/launchers/mpi/ssh-options.js';
import { parseSpec } from '../../../../src/spec/validate.js';

function plan(mpi: Record<string, unknown>, uid = 1000): MpirunPlan {
  const spec = parseSpec({ name: 'j', workers: 4, worker: { command: 'true' }, cluster: 'mpi', jobMaster: { host: '10.0.0.1' }, mpi });
  return {
    mpi: spec.mpi!,
    np: spec.workers,
    hostfile: '/jobs/j/hostfile',
    sshWrapper: '/jobs/j/mpi-ssh',
    envNames: ['TWISTER2_JOB_TOKEN', 'TWISTER2_JOB_ID'],
    uid,
    program: ['/usr/bin/node', '/app/dist/worker/main.js'],
  };
}
const hosts = [{ host: 'n1', slots: 2 }, { host: 'n2', slots: 2 }];
const line = (p: MpirunPlan) => mpirunArgs(p).join(' ');

describe('mpirun command line', () => {
  it('defaults: no oversubscribe, no binding, no root flag for a normal user, -x names only', () => {
    expect(line(plan({ hosts }))).toMatchInlineSnapshot(
      `"-np 4 --hostfile /jobs/j/hostfile --bind-to none --tag-output --mca plm_rsh_agent /jobs/j/mpi-ssh -x TWISTER2_JOB_ID -x TWISTER2_JOB_TOKEN /usr/bin/node /app/dist/worker/main.js"`,
    );
  });

  it('root gets --allow-run-as-root', () => {
    expect(line(plan({ hosts }, 0))).toMatchInlineSnapshot(
      `"-np 4 --hostfile /jobs/j/hostfile --bind-to none --allow-run-as-root --tag-output --mca plm_rsh_agent /jobs/j/mpi-ssh -x TWISTER2_JOB_ID -x TWISTER2_JOB_TOKEN /usr/bin/node /app/dist/worker/main.js"`,
    );
  });

  it('everything asked for: map-by, bind to core, oversubscribe, interfaces, user MCA (sorted, winning over ours)', () => {
    const p = plan({
      hosts: [{ host: 'n1', slots: 1 }],
      oversubscribe: true,
      mapBy: 'node',
      bindToCore: true,
      interfaces: '10.0.0.0/24',
      mca: { pml: 'ob1', btl: 'self,tcp', oob_tcp_if_include: 'eth1' },
    });
    expect(line(p)).toMatchInlineSnapshot(
      `"-np 4 --hostfile /jobs/j/hostfile --map-by node --bind-to core --oversubscribe --tag-output --mca plm_rsh_agent /jobs/j/mpi-ssh --mca btl_tcp_if_include 10.0.0.0/24 --mca oob_tcp_if_include eth1 --mca btl self,tcp --mca pml ob1 -x TWISTER2_JOB_ID -x TWISTER2_JOB_TOKEN /usr/bin/node /app/dist/worker/main.js"`,
    );
  });

  it('never puts an environment value on the command line', () => {
    const args = mpirunArgs(plan({ hosts }, 0));
    expect(args.some((a) => a.includes('='))).toBe(false);
  });

  it('writes an ssh wrapper with the job\'s key, user and port', () => {
    expect(renderSshWrapper({ identityFile: '/keys/my key', user: 'hpc', port: 2222 })).toMatchInlineSnapshot(`
      "#!/bin/sh
      # twister2: how mpirun reaches the hosts of this job
      exec ssh -i '/keys/my key' -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p 2222 -l hpc "$@"
      "
    `);
    expect(renderSshWrapper({})).not.toContain('-i ');
  });
});

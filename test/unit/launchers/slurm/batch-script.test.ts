import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../../src/errors.js';
import { batchScript, sbatchDirectives } from '../../../../src/launchers/slurm/batch-script.js';
import { slurmSection } from '../../../../src/launchers/slurm/slurm-launcher.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const base = { name: 'j', cluster: 'slurm', workers: 4, worker: { command: 'true' } };

function directives(raw: Record<string, unknown>): string[] {
  const spec = parseSpec({ ...base, ...raw });
  return sbatchDirectives({ jobId: 'j-1', spec, slurm: slurmSection(spec), logsDir: '/home/u/.twister2/jobs/j-1/logs' });
}

describe('sbatch directives', () => {
  it('asks for one task per worker with resources per worker by default', () => {
    expect(directives({})).toMatchInlineSnapshot(`
      [
        "--job-name=j-1",
        "--ntasks=4",
        "--cpus-per-task=1",
        "--mem-per-cpu=512M",
        "--no-requeue",
        "--output=/home/u/.twister2/jobs/j-1/logs/slurm-%j.out",
      ]
    `);
  });

  it('maps resources: whole CPUs, memory per CPU, GPUs per task', () => {
    expect(directives({ resources: { cpu: 1.5, memory: '3Gi', gpus: 1 } })).toMatchInlineSnapshot(`
      [
        "--job-name=j-1",
        "--ntasks=4",
        "--cpus-per-task=2",
        "--mem-per-cpu=1536M",
        "--gpus-per-task=1",
        "--no-requeue",
        "--output=/home/u/.twister2/jobs/j-1/logs/slurm-%j.out",
      ]
    `);
  });

  it('writes every modelled option and the free-form ones last', () => {
    const slurm = {
      partition: 'batch',
      account: 'proj1',
      qos: 'normal',
      time: '90m',
      nodes: '2-4',
      tasksPerNode: 2,
      cpusPerTask: 4,
      memoryPerNode: '16Gi',
      gres: 'gpu:2',
      constraint: 'fast&ib',
      nodelist: ['n1', 'n2'],
      exclude: 'n3',
      exclusive: true,
      directives: ['--mail-type=END', '--signal=B:USR1@60'],
    };
    expect(directives({ slurm })).toMatchInlineSnapshot(`
      [
        "--job-name=j-1",
        "--ntasks=4",
        "--nodes=2-4",
        "--ntasks-per-node=2",
        "--cpus-per-task=4",
        "--mem=16384M",
        "--gres=gpu:2",
        "--time=90:00",
        "--partition=batch",
        "--account=proj1",
        "--qos=normal",
        "--constraint=fast&ib",
        "--nodelist=n1,n2",
        "--exclude=n3",
        "--exclusive",
        "--no-requeue",
        "--output=/home/u/.twister2/jobs/j-1/logs/slurm-%j.out",
        "--mail-type=END",
        "--signal=B:USR1@60",
      ]
    `);
  });

  it.each([
    ['2h', '120:00'],
    ['45s', '0:45'],
    ['01:30:00', '01:30:00'],
    ['2-00:00:00', '2-00:00:00'],
    ['90', '90'],
    ['UNLIMITED', 'UNLIMITED'],
  ])('takes the time limit %s as --time=%s', (time, want) => {
    expect(directives({ slurm: { time } })).toContain(`--time=${want}`);
  });

  it.each([
    [{ time: 'soon' }, /slurm.time: "soon" is not a time limit; expected a time limit such as "30m"/],
    [{ partition: 'a\n#SBATCH --uid=0' }, /slurm.partition: a partition name must be on one line/],
    [{ directives: ['mail-type=END'] }, /slurm.directives\[0\]: expected an sbatch option such as "--mail-type=END"/],
    [{ nodes: 'two' }, /slurm.nodes: expected a node count such as 2 or a range such as "2-4"/],
    [{ memoryPerNode: 'lots' }, /slurm.memoryPerNode: "lots" is not a size/],
    [{ partiton: 'batch' }, /slurm.partiton: unknown key "partiton" \(did you mean "partition"\?\)/],
    [{ launch: 'srun --mpi=pmix' }, /slurm.launch: expected "srun" or "mpirun"; for srun --mpi=pmix write launch: srun and mpi: pmix \(got "srun --mpi=pmix"\)/],
    [{ mpi: 'pmi3' }, /slurm.mpi: expected "pmix" .*launch: mpirun \(got "pmi3"\)/],
    [{ launch: 'mpirun', mpi: 'pmix' }, /slurm.mpi: mpi "pmix" is for srun's own launch of MPI ranks, but launch is "mpirun" .*remove slurm.mpi, or set slurm.launch: srun/],
    [{ mca: { btl: 'self,tcp' } }, /slurm.mca: MCA parameters \(btl\) are for MPI programs, but this job starts plain srun tasks; set slurm.mpi: pmix or slurm.launch: mpirun, or remove slurm.mca/],
    [{ mpi: 'pmix', mca: { btl: 4 } }, /slurm.mca.btl: expected an MCA value as a string/],
  ])('refuses a bad slurm section %j', (slurm, message) => {
    expect(() => parseSpec({ ...base, slurm })).toThrow(SpecError);
    expect(() => parseSpec({ ...base, slurm })).toThrow(message);
  });
});

it('refuses slurm.launch: mpirun with the job master in the allocation, which starts workers with srun', () => {
  expect(() => parseSpec({ ...base, jobMaster: { placement: 'cluster' }, slurm: { launch: 'mpirun' } })).toThrow(
    /slurm.launch: launch "mpirun" runs mpirun from the batch script, but with jobMaster.placement "cluster" .*use slurm.mpi: pmix \(srun --mpi=pmix\), or jobMaster.placement: client/,
  );
  expect(parseSpec({ ...base, jobMaster: { placement: 'cluster' }, slurm: { mpi: 'pmix' } }).slurm?.mpi).toBe('pmix');
});

describe('batch script', () => {
  const env = {
    TWISTER2_JOB_ID: 'j-1',
    TWISTER2_JOB_MASTER_URL: 'http://10.0.0.1:4000',
    TWISTER2_JOB_TOKEN_FILE: '/home/u/.twister2/jobs/j-1/token',
    TWISTER2_WORK_DIR: '/tmp/twister2/j-1',
  };

  it('checks the job master, starts the workers with srun, waits for restarted workers and cleans up', () => {
    const spec = parseSpec({ ...base, slurm: { srunArgs: ['--cpu-bind=cores'] } });
    const script = batchScript({
      jobId: 'j-1',
      spec,
      slurm: slurmSection(spec),
      logsDir: '/home/u/.twister2/jobs/j-1/logs',
      body: { kind: 'workers', env, workerCommand: ['/usr/bin/node', '/opt/twister2/dist/worker/main.js'] },
    });
    expect(script).toMatchInlineSnapshot(`
      "#!/bin/bash
      #SBATCH --job-name=j-1
      #SBATCH --ntasks=4
      #SBATCH --cpus-per-task=1
      #SBATCH --mem-per-cpu=512M
      #SBATCH --no-requeue
      #SBATCH --output=/home/u/.twister2/jobs/j-1/logs/slurm-%j.out
      # Generated by twister2 for job j-1.
      export TWISTER2_JOB_ID=j-1
      export TWISTER2_JOB_MASTER_URL=http://10.0.0.1:4000
      export TWISTER2_JOB_TOKEN_FILE=/home/u/.twister2/jobs/j-1/token
      export TWISTER2_WORK_DIR=/tmp/twister2/j-1
      if ! (exec 3<>/dev/tcp/10.0.0.1/4000) 2>/dev/null; then
        echo "twister2: the job master (10.0.0.1:4000) does not answer; it ended before this job started, so there is nothing to run" >&2
        exit 3
      fi
      srun --ntasks=4 --kill-on-bad-exit=0 --output=/home/u/.twister2/jobs/j-1/logs/worker-%t.log --error=/home/u/.twister2/jobs/j-1/logs/worker-%t.log --open-mode=append --cpu-bind=cores -- /usr/bin/node /opt/twister2/dist/worker/main.js
      status=$?
      while squeue -h -s -j "$SLURM_JOB_ID" -o %i 2>/dev/null | grep -qvE '\\.(batch|extern|interactive)$'; do
        sleep 1
      done
      # Each node unpacked the package once, under the work directory: remove it on every node.
      srun --overlap --ntasks-per-node=1 --ntasks="$SLURM_JOB_NUM_NODES" rm -rf -- /tmp/twister2/j-1 /tmp/twister2/j-1.lease-lock || true
      exit $status
      "
    `);
  });

  it('runs an MPI program through mpirun inside the allocation', () => {
    const spec = parseSpec({ ...base, slurm: { launch: 'mpirun' } });
    const script = batchScript({
      jobId: 'j-1',
      spec,
      slurm: slurmSection(spec),
      logsDir: '/l',
      body: { kind: 'workers', env: {}, workerCommand: ['node', 'main.js'], mpirunIsRoot: true },
    });
    expect(script).toContain('\nmpirun -np 4 --bind-to none --allow-run-as-root --tag-output node main.js\n');
    expect(script).not.toContain('\nsrun --ntasks');
  });

  it('gives slurm.mca to mpirun as --mca', () => {
    const spec = parseSpec({ ...base, slurm: { launch: 'mpirun', mca: { btl: 'self,tcp', btl_tcp_if_include: '10.0.0.0/24' } } });
    const script = batchScript({ jobId: 'j-1', spec, slurm: slurmSection(spec), logsDir: '/l', body: { kind: 'workers', env: {}, workerCommand: ['node', 'main.js'] } });
    expect(script).toContain("\nmpirun -np 4 --bind-to none --tag-output --mca btl 'self,tcp' --mca btl_tcp_if_include 10.0.0.0/24 node main.js\n");
    expect(script).not.toContain('OMPI_MCA_');
  });

  it('starts MPI ranks with srun --mpi=pmix, slurm.mca as OMPI_MCA_ variables', () => {
    const spec = parseSpec({ ...base, slurm: { mpi: 'pmix', mca: { btl: 'self,tcp' } } });
    const script = batchScript({ jobId: 'j-1', spec, slurm: slurmSection(spec), logsDir: '/l', body: { kind: 'workers', env: {}, workerCommand: ['node', 'main.js'] } });
    expect(script).toContain("\nexport OMPI_MCA_btl='self,tcp'\n");
    expect(script).toContain('\nsrun --ntasks=4 --mpi=pmix --kill-on-bad-exit=0 ');
    expect(script).not.toContain('\nmpirun');
  });

  it('runs the job master in the batch step for the cluster placement', () => {
    const spec = parseSpec({ ...base, jobMaster: { placement: 'cluster' } });
    const script = batchScript({
      jobId: 'j-1',
      spec,
      slurm: slurmSection(spec),
      logsDir: '/l',
      body: { kind: 'jobmaster', jobMasterCommand: ['/usr/bin/node', '/opt/t2/bin/twister2.js', 'jobmaster', '--job-dir', '/h/jobs/j 1'] },
    });
    expect(script.split('\n').slice(-3)).toEqual([
      '# The job master runs here, in the batch step; it starts the workers with srun in this allocation.',
      "exec /usr/bin/node /opt/t2/bin/twister2.js jobmaster --job-dir '/h/jobs/j 1' </dev/null",
      '',
    ]);
  });

  it('never writes a secret: the token is a file path', () => {
    const spec = parseSpec(base);
    const script = batchScript({ jobId: 'j-1', spec, slurm: slurmSection(spec), logsDir: '/l', body: { kind: 'workers', env, workerCommand: ['node'] } });
    expect(script).not.toMatch(/TWISTER2_JOB_TOKEN=/);
  });
});

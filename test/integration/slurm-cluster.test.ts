import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlurm, startSlurmCluster, type SlurmCluster } from '../env/slurm-cluster.js';

// apt can take a minute on a new machine: outside the hook timeout.
ensureSlurm();

function script(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  return file;
}

async function waitGone(c: SlurmCluster, id: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (c.run('squeue', ['-h', '-j', id, '-o', '%T']).stdout.trim() !== '') {
    if (Date.now() > deadline) throw new Error(`job ${id} still queued: ${c.run('squeue', ['-j', id]).stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function jobField(c: SlurmCluster, id: string, field: string): string | undefined {
  const r = c.run('scontrol', ['show', 'job', id, '--oneliner']);
  return new RegExp(`(?:^| )${field}=(\\S*)`).exec(r.stdout)?.[1];
}

function submit(c: SlurmCluster, args: string[]): string {
  const r = c.run('sbatch', ['--parsable', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const id = r.stdout.trim().split(';')[0]!;
  expect(id).toMatch(/^\d+$/);
  return id;
}

/** Live PIDs whose command line mentions the cluster's dir, or that carry its marker variable. */
function clusterProcesses(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${e}/environ`, 'utf8');
      if (cmd.includes(dir) || env.includes(`TWISTER2_SLURM_CLUSTER=${dir}\0`)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

const TEST_ONLY_FLAGS = [
  '--partition=batch',
  '--constraint=fast',
  '--gres=gpu:1',
  '--gpus=1',
  '--exclusive',
  'EXCLUDE',
  '--mem=100M',
  '--cpus-per-task=2',
  '--time=00:05:00',
  '--account=x',
  '--qos=normal',
];

function checkTestOnly(c: SlurmCluster, work: string): void {
  const plain = script(work, 'plain.sh', 'hostname');
  const exclude = `--exclude=${c.nodes[0]!.name}`;
  for (const f of TEST_ONLY_FLAGS) {
    // With one node, excluding it leaves nothing (checked below).
    if (f === 'EXCLUDE' && c.nodes.length === 1) continue;
    const flag = f === 'EXCLUDE' ? exclude : f;
    const r = c.run('sbatch', ['--test-only', flag, plain]);
    expect(r.code, `${flag}: ${r.stderr}`).toBe(0);
    expect(r.stderr, flag).toMatch(/to start at/);
  }
  // What can never run is refused at submission.
  expect(c.run('sbatch', ['--test-only', '--partition=nope', plain]).code).not.toBe(0);
  expect(c.run('sbatch', ['--test-only', `--mem=${c.nodes[0]!.memoryMB + 1000}M`, plain]).code).not.toBe(0);
  if (c.nodes.length === 1) expect(c.run('sbatch', ['--test-only', exclude, plain]).stderr).toMatch(/Requested node configuration is not available/);
}

describe('slurm test cluster, 1 node', () => {
  let c: SlurmCluster;
  let work: string;
  beforeAll(async () => {
    c = await startSlurmCluster({ nodes: 1 });
    work = mkdtempSync(path.join(os.tmpdir(), 'twister2-slurm-test-'));
  });
  afterAll(async () => {
    await c?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('describes itself', () => {
    expect(c.nodes).toHaveLength(1);
    expect(c.controllerAddress).toBe('127.0.0.1');
    expect(c.partitions).toEqual(['debug', 'batch']);
    expect(c.totalCpus).toBe(4);
    expect(c.env.SLURM_CONF).toBe(c.confFile);
    const sinfo = c.run('sinfo', ['-h', '-N', '-o', '%N|%P|%t|%c|%f|%G']);
    expect(sinfo.stdout).toContain(`${c.nodes[0]!.name}|debug*|idle|4|fast,first|gpu:2`);
  });

  it('runs srun with 4 tasks in a batch job to COMPLETED', async () => {
    const s = script(work, 'job.sh', `#SBATCH -n 4\n#SBATCH --output=${work}/slurm-%j.out\nsrun hostname`);
    const id = submit(c, [s]);
    await waitGone(c, id);
    const lines = readFileSync(path.join(work, `slurm-${id}.out`), 'utf8').trim().split('\n');
    expect(lines).toEqual([c.nodes[0]!.name, c.nodes[0]!.name, c.nodes[0]!.name, c.nodes[0]!.name]);
    expect(jobField(c, id, 'JobState')).toBe('COMPLETED');
    expect(jobField(c, id, 'ExitCode')).toBe('0:0');
  });

  it('sbatch --test-only accepts partition, constraint, gres, gpus, exclusive, exclude, mem, cpus, time, account, qos', () => {
    checkTestOnly(c, work);
  });
});

describe('slurm test cluster, 2 nodes in network namespaces', () => {
  let c: SlurmCluster;
  let work: string;
  beforeAll(async () => {
    c = await startSlurmCluster({ nodes: 2 });
    work = mkdtempSync(path.join(os.tmpdir(), 'twister2-slurm-test-'));
  });
  afterAll(async () => {
    await c?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('describes itself', () => {
    expect(c.nodes.map((n) => n.name)).toEqual([`t2n${c.slot}a`, `t2n${c.slot}b`]);
    expect(c.nodes.map((n) => n.address)).toEqual([`10.232.${c.slot}.10`, `10.232.${c.slot}.11`]);
    expect(c.controllerAddress).toBe(`10.232.${c.slot}.1`);
    expect(c.totalCpus).toBe(8);
    for (const n of c.nodes) expect(existsSync(`/run/netns/${n.namespace}`)).toBe(true);
  });

  it('runs 4 tasks, 2 per node, on 2 hosts, to COMPLETED', async () => {
    const s = script(
      work,
      'job.sh',
      `#SBATCH -N 2\n#SBATCH --ntasks-per-node=2\n#SBATCH --output=${work}/slurm-%j.out\n` +
        `srun --output=${work}/worker-%j-%t.out bash -c 'echo "$SLURM_PROCID $SLURM_NODEID $(hostname) $SLURMD_NODENAME"'`,
    );
    const id = submit(c, [s]);
    await waitGone(c, id);
    expect(jobField(c, id, 'JobState')).toBe('COMPLETED');
    const rows = [0, 1, 2, 3].map((t) => readFileSync(path.join(work, `worker-${id}-${t}.out`), 'utf8').trim().split(' '));
    const [a, b] = c.nodes.map((n) => n.name);
    expect(rows).toEqual([
      ['0', '0', a, a],
      ['1', '0', a, a],
      ['2', '1', b, b],
      ['3', '1', b, b],
    ]);
    expect(new Set(rows.map((r) => r[2])).size).toBe(2);
  });

  it('sbatch --test-only accepts partition, constraint, gres, gpus, exclusive, exclude, mem, cpus, time, account, qos', () => {
    checkTestOnly(c, work);
  });

  it('stop() cancels running jobs and removes processes, namespaces and files', async () => {
    const s = script(work, 'long.sh', `#SBATCH -N 2\n#SBATCH --ntasks-per-node=1\n#SBATCH --output=${work}/long-%j.out\nsrun --output=${work}/long-%t.out bash -c 'echo $$; exec sleep 300'`);
    const id = submit(c, [s]);
    const deadline = Date.now() + 30_000;
    while (!(existsSync(`${work}/long-1.out`) && readFileSync(`${work}/long-1.out`, 'utf8').trim())) {
      if (Date.now() > deadline) throw new Error(`job ${id} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const taskPids = [0, 1].map((t) => Number(readFileSync(`${work}/long-${t}.out`, 'utf8').trim()));
    for (const p of taskPids) expect(existsSync(`/proc/${p}`)).toBe(true);
    expect(clusterProcesses(c.dir).length).toBeGreaterThan(3);
    const t0 = Date.now();
    await c.stop();
    expect(Date.now() - t0).toBeLessThan(15_000);
    for (const p of taskPids) expect(existsSync(`/proc/${p}`), `task ${p}`).toBe(false);
    expect(clusterProcesses(c.dir)).toEqual([]);
    for (const n of c.nodes) expect(existsSync(`/run/netns/${n.namespace}`)).toBe(false);
    expect(existsSync(c.dir)).toBe(false);
  });
});

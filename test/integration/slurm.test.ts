import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { launcherConformance } from '../conformance/launcher-conformance.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import type { SlurmCluster } from '../env/slurm-cluster.js';
import { useSlurmCluster } from '../helpers/slurm-suite.js';
import { fixture, jobIds, jobProcesses, killJobMasterForGood, makeJob, readLogs, runCli, scratchLeft, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { expectStorageEnded, memoryLeft, persistentDir, storageJob as storageJobOf, type StorageRec } from '../helpers/storage.js';
import { expectWorkersHeldOnlyTheWorkerToken } from '../helpers/credentials.js';
import { jobRowOnPage } from '../helpers/browser.js';
import { startDashboard } from '../helpers/dashboard.js';
import { workerTokenOf } from '../../src/job/worker-environment.js';

/**
 * The slurm launcher against a real Slurm (slurmctld + 2 slurmd, each node in its own network namespace
 * and hostname, sharing this file system as NFS would). Workers reach the job master in the client at
 * the namespaces' bridge address.
 */
ensureOpenMpi();
let cluster: SlurmCluster;
useSlurmCluster({ nodes: 2, cpusPerNode: 8 }, (c) => (cluster = c));

function slurmSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cluster: 'slurm', jobMaster: { host: cluster.controllerAddress }, slurm: { tasksPerNode: 2 }, ...extra };
}

function slurm(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env: { ...process.env, ...cluster.env }, encoding: 'utf8' });
}

/** What Slurm still runs of the job (by its name, the twister2 job ID) and any process of it on this machine. */
async function leftovers(jobId: string): Promise<string[]> {
  const queued = slurm('squeue', ['-h', '-n', jobId, '-o', '%i %T']).trim();
  const procs = jobProcesses(jobId);
  return [...(queued ? [`squeue: ${queued}`] : []), ...(procs.length ? [`processes: ${procs.join(' ')}`] : []), ...scratchLeft(jobId)];
}

function slurmJobIdOf(home: string, jobId: string): string {
  return readFileSync(path.join(home, 'jobs', jobId, 'slurm', 'job-id'), 'utf8').trim();
}

interface Rec {
  id: number;
  step: string;
  procid?: string;
  node?: string;
  hostname?: string;
  n?: number;
  peers?: { id: number; ip: string }[];
  restart?: number;
  pid?: number;
  failed?: number;
  message?: string;
}

describe('slurm launcher on a 2-node Slurm cluster', () => {
  it('runs 4 workers, 2 per node: IDs = SLURM_PROCID, discovery, 3 barriers, SUCCEEDED, Slurm says COMPLETED', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'slurm-ids', workers: 4, worker: { module: 'w.mjs' }, ...slurmSpec() }, { 'w.mjs': fixture('slurm-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    const recs = testRecords<Rec>(r.stdout);
    const found = recs.filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of found) {
      expect(x.procid).toBe(String(x.id));
      expect(x.n).toBe(4);
      expect(x.peers?.map((p) => p.id)).toEqual([0, 1, 2, 3]);
    }
    const nodes = cluster.nodes.map((n) => n.name);
    expect(new Set(found.map((x) => x.node))).toEqual(new Set(nodes));
    expect(new Set(found.map((x) => x.hostname))).toEqual(new Set(nodes));
    for (const node of nodes) expect(found.filter((x) => x.node === node)).toHaveLength(2);
    // Peers see each other at their nodes' addresses.
    expect(new Set(found[0]!.peers!.map((p) => p.ip))).toEqual(new Set(cluster.nodes.map((n) => n.address)));
    expect(recs.filter((x) => x.step === 'barrier')).toHaveLength(12);
    const sid = slurmJobIdOf(home, jobId);
    expect(slurm('scontrol', ['show', 'job', '--oneliner', sid])).toMatch(/JobState=COMPLETED .*ExitCode=0:0/);
    expect(await leftovers(jobId)).toEqual([]);
    // The batch script holds no secret: the token is in a 0600 file.
    const script = readFileSync(path.join(home, 'jobs', jobId, 'slurm', 'job.sbatch'), 'utf8');
    const token = readFileSync(path.join(home, 'jobs', jobId, 'token'), 'utf8').trim();
    expect(script).not.toContain(token);
    expect(script).toMatch(/^#SBATCH --ntasks-per-node=2$/m);
  });

  it('workers read the worker token from a 0600 file; the job secret is in no worker\'s environment, the script or Slurm\'s copy of it', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'slurm-tokens', workers: 2, worker: { command: [process.execPath, 'attack.mjs'] }, ...slurmSpec() }, { 'attack.mjs': fixture('credentials-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const dir = path.join(home, 'jobs', jobId);
    const envs = expectWorkersHeldOnlyTheWorkerToken(r, dir, 2);
    const secret = readFileSync(path.join(dir, 'token'), 'utf8').trim();
    const tokenFile = path.join(dir, 'worker-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(workerTokenOf(secret));
    for (const e of envs) {
      expect(e.SLURM_JOB_ID).toBeTruthy();
      expect(e.TWISTER2_JOB_TOKEN_FILE).toBe(tokenFile);
    }
    const script = readFileSync(path.join(dir, 'slurm', 'job.sbatch'), 'utf8');
    const stored = slurm('scontrol', ['write', 'batch_script', slurmJobIdOf(home, jobId), '-']);
    for (const text of [script, stored]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(workerTokenOf(secret));
    }
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('fails fast with Slurm\'s reason when a job asks for more CPUs than the cluster has, and cancels it', async () => {
    const home = tempHome();
    const job = makeJob({
      name: 'slurm-too-big',
      workers: 2,
      worker: { command: 'true' },
      timeouts: { registration: '10m' },
      ...slurmSpec({ slurm: { cpusPerTask: 64 } }),
    });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    // Slurm accepts the job but can never run it on this partition: twister2 says so at once, with Slurm's reason.
    expect(r.stderr).toMatch(/FAILED: Slurm cannot run job \d+ as submitted: PartitionConfig: the partition cannot run it as asked/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('names the partitions there are when the spec asks for an unknown one', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'slurm-part', workers: 1, worker: { command: 'true' }, ...slurmSpec({ slurm: { partition: 'nosuch' } }) });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    // sbatch's own words, the partitions there are, and the generated script to look at.
    expect(r.stderr).toMatch(/sbatch refused the job: invalid partition specified: nosuch; .*; partitions on this cluster: debug\*, batch \(the batch script is \S+\/slurm\/job\.sbatch\)/);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('says Slurm is missing when its commands are not there', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'slurm-none', workers: 1, worker: { command: 'true' }, ...slurmSpec({ slurm: { binDir: '/nonexistent/slurm/bin' } }) });
    const r = await runCli(['submit', job], home);
    expect(r.stderr).toMatch(/Slurm's srun was not found in \/nonexistent\/slurm\/bin \(slurm.binDir\)/);
    expect(r.code).not.toBe(0);
  });

  it('shows a job waiting for resources as QUEUED with Slurm\'s reason, then runs it', async () => {
    const home = tempHome();
    // A plain Slurm job holds every CPU of both nodes for a while.
    const blocker = slurm('sbatch', ['--parsable', `--ntasks=${cluster.totalCpus}`, '--job-name=t2-blocker', '--output=/dev/null', '--wrap', 'sleep 8']).trim();
    try {
      const job = makeJob({ name: 'slurm-queued', workers: 2, worker: { command: 'true' }, ...slurmSpec() });
      const r = await runCli(['submit', job], home);
      expect(r.stderr).toMatch(/job QUEUED by the cluster: queued by slurm: Slurm job \d+ is PENDING \((Resources|Priority)/);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      spawnSync('scancel', [blocker], { env: { ...process.env, ...cluster.env } });
    }
  });

  it('restarts a SIGKILLed worker as a new step in the allocation with the same ID; the job succeeds', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'slurm-restart', workers: 3, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs', args: ['1'] }, ...slurmSpec() },
      { 'w.mjs': fixture('restart-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const computing = await waitFor('worker 1 computing', () => testRecords<Rec>(readLogs(home, jobId)).find((x) => x.step === 'computing' && x.restart === 0), 60_000);
    process.kill(computing.pid!, 'SIGKILL');
    const code = await cli.closed;
    const out = cli.output();
    expect(code, `${out.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<Rec>(readLogs(home, jobId));
    expect(recs.filter((x) => x.id === 1 && x.step === 'start').map((x) => x.restart)).toEqual([0, 1]);
    expect(recs.filter((x) => x.step === 'done').map((x) => x.id).sort()).toEqual([0, 1, 2]);
    const told = recs.filter((x) => x.step === 'peer-failed');
    expect(told.map((x) => x.id).sort()).toEqual([0, 2]);
    for (const t of told) expect(t).toMatchObject({ failed: 1, message: 'worker process killed by SIGKILL' });
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('runs the job master inside the allocation (jobMaster.placement: cluster)', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'slurm-in-alloc', workers: 4, worker: { module: 'w.mjs' }, cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 } },
      { 'w.mjs': fixture('slurm-worker.mjs') },
    );
    const submitted = await runCli(['submit', job], home);
    expect(submitted.code, submitted.stderr).toBe(0);
    const jobId = jobIds(home)[0]!;
    const record = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster: { url: string } };
    // It listens on the first node's address, inside the allocation.
    expect(cluster.nodes.map((n) => n.address)).toContain(new URL(record.jobMaster.url).hostname);
    const status = await waitFor('the job to end', async () => {
      const s = await runCli(['status', jobId, '--json'], home);
      const st = JSON.parse(s.stdout || '{}') as { state?: string };
      return st.state && ['SUCCEEDED', 'FAILED', 'KILLED'].includes(st.state) ? st : undefined;
    }, 90_000);
    expect(status.state, readLogs(home, jobId)).toBe('SUCCEEDED');
    const found = testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    const sid = slurmJobIdOf(home, jobId);
    await waitFor('Slurm to record the job', () => /JobState=COMPLETED/.test(slurm('scontrol', ['show', 'job', '--oneliner', sid])), 30_000);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('the job master in the allocation reports to a dashboard on the bridge (dashboard.url): its page shows the Slurm job RUNNING, then SUCCEEDED', async () => {
    // Another home: the dashboard knows the job only by its reports, from inside the allocation.
    const d = await startDashboard(tempHome(), { host: cluster.controllerAddress });
    const home = tempHome();
    const worker = `import { existsSync } from 'node:fs';\nexport default async (ctx) => { await ctx.barrier('up'); while (!existsSync(ctx.args[0])) await new Promise((r) => setTimeout(r, 100)); };\n`;
    const go = path.join(tempHome(), 'go');
    const job = makeJob({ name: 'slurm-dash', workers: 4, worker: { module: 'w.mjs', args: [go] }, cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 }, dashboard: { url: d.url } }, { 'w.mjs': worker });
    const cli = startCli(['submit', job], home, { TWISTER2_DASHBOARD_TOKEN: d.token });
    try {
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      const running = await jobRowOnPage(d, jobId, 'RUNNING', 90_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${cli.output().stderr}\n${readLogs(home, jobId)}`);
      });
      expect(running).toContain('slurm');
      await waitFor('4 workers RUNNING on the dashboard', async () => (await d.api<{ running: number; via: string }>(`/api/jobs/${jobId}`)).body.running === 4, 60_000);
      const detail = (await d.api<{ via: string; workers: Array<{ host?: string }> }>(`/api/jobs/${jobId}`)).body;
      expect(detail.via).toBe('report');
      expect(new Set(detail.workers.map((w) => w.host))).toEqual(new Set(cluster.nodes.map((n) => n.name)));
      writeFileSync(go, '');
      expect(await cli.closed, cli.output().stderr).toBe(0);
      await jobRowOnPage(d, jobId, 'SUCCEEDED');
      expect(await leftovers(jobId)).toEqual([]);
    } finally {
      cli.kill('SIGKILL');
      await d.stop();
    }
  });

  it('Ctrl-C while the in-allocation job master waits in the queue cancels the Slurm job', async () => {
    const home = tempHome();
    const blocker = slurm('sbatch', ['--parsable', `--ntasks=${cluster.totalCpus}`, '--job-name=t2-blocker', '--output=/dev/null', '--wrap', 'sleep 60']).trim();
    try {
      const job = makeJob({ name: 'slurm-queued-jm', workers: 2, worker: { command: 'true' }, cluster: 'slurm', jobMaster: { placement: 'cluster' } });
      const cli = startCli(['submit', job], home);
      await waitFor('the queued message', () => /the job master is queued: Slurm job \d+ PENDING/.test(cli.output().stderr), 30_000);
      const jobId = jobIds(home)[0]!;
      cli.kill('SIGINT');
      expect(await cli.closed).toBe(3);
      expect(cli.output().stderr).toMatch(/Slurm job \d+ was cancelled while it waited in the queue/);
      expect(await leftovers(jobId)).toEqual([]);
    } finally {
      spawnSync('scancel', [blocker], { env: { ...process.env, ...cluster.env } });
    }
  });

  it('the in-allocation job master SIGKILLed twice is restarted there: 4 workers pass 8 barriers, none restarted, SUCCEEDED, nothing left', async () => {
    const home = tempHome();
    const job = makeJob(
      {
        name: 'slurm-jm-restarts',
        workers: 4,
        timeouts: { heartbeat: '3s' },
        worker: { module: 'w.mjs', args: ['8', '300'] },
        cluster: 'slurm',
        jobMaster: { placement: 'cluster' },
        slurm: { tasksPerNode: 2 },
      },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    // The submitting client follows the job through both restarts of its job master, which runs on a Slurm node.
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const jobDir = path.join(home, 'jobs', jobId);
    const record = () => JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as { jobMaster?: { pid: number } };
    const recs = () => testRecords<Rec & { pid: number }>(readLogs(home, jobId));
    const killed: number[] = [];
    for (const round of [2, 5]) {
      await waitFor(`barrier ${round}`, () => recs().some((r) => r.step === 'pass' && r.n! >= round), 60_000);
      const pid = await waitFor('the running job master', () => record().jobMaster?.pid !== killed.at(-1) && record().jobMaster?.pid, 30_000);
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    const status = await waitFor('the job to end', () => {
      try {
        return JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as { state: string; message?: string; workers: { restarts: number }[]; jobMaster?: { pid: number; epoch: number; restarts: number } };
      } catch {
        return undefined;
      }
    }, 90_000);
    expect(status.state, status.message).toBe('SUCCEEDED');
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0, 0]);
    expect(status.jobMaster).toMatchObject({ epoch: 3, restarts: 2 });
    for (const id of [0, 1, 2, 3]) {
      expect(recs().filter((r) => r.id === id && r.step === 'pass').map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      // The same worker process all along: not restarted, not started twice.
      expect(new Set(recs().filter((r) => r.id === id).map((r) => r.pid)).size).toBe(1);
    }
    expect(await cli.closed, cli.output().stderr).toBe(0);
    expect(testRecords<Rec>(cli.output().stdout).filter((r) => r.step === 'pass')).toHaveLength(32);
    const sid = slurmJobIdOf(home, jobId);
    await waitFor('Slurm to record the job', () => /JobState=COMPLETED/.test(slurm('scontrol', ['show', 'job', '--oneliner', sid])), 30_000);
    await waitFor('nothing left', async () => (await leftovers(jobId)).length === 0, 30_000);
  });

  it('an in-allocation job master SIGKILLed with its supervisor ends the Slurm job: nothing is left', async () => {
    const home = tempHome();
    const job = makeJob(
      // The client gives a job master it cannot see (on a Slurm node) the recovery time to come back.
      { name: 'slurm-jm-crash', workers: 4, timeouts: { jobMasterRecovery: '5s' }, worker: { module: 'w.mjs' }, cluster: 'slurm', jobMaster: { placement: 'cluster' }, slurm: { tasksPerNode: 2 } },
      { 'w.mjs': fixture('sleep-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping workers', () => testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 4, 60_000);
    killJobMasterForGood(home, jobId);
    await waitFor('Slurm to end the job and every worker to be gone', async () => (await leftovers(jobId)).length === 0, 60_000);
    expect(slurm('scontrol', ['show', 'job', '--oneliner', slurmJobIdOf(home, jobId)])).toMatch(/JobState=(FAILED|CANCELLED)/);
    // The client following the job notices that its job master is gone.
    expect(await cli.closed).toBe(4);
  });

  it('starts an MPI program with mpirun inside the allocation (slurm.launch: mpirun): ranks are worker IDs', async () => {
    const home = tempHome();
    const job = makeJob(
      // The namespace "nodes" share one /dev/shm with each other: OpenMPI must use TCP only.
      { name: 'slurm-mpirun', workers: 4, worker: { module: 'w.mjs' }, ...slurmSpec({ slurm: { tasksPerNode: 2, launch: 'mpirun', mca: { btl: 'self,tcp' } } }) },
      { 'w.mjs': fixture('mpi-rank-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const found = testRecords<Rec & { rank?: string; size?: string }>(r.stdout).filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of found) expect([x.rank, x.size]).toEqual([String(x.id), '4']);
    expect(new Set(found[0]!.peers!.map((p) => p.ip))).toEqual(new Set(cluster.nodes.map((n) => n.address)));
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('nodelist and exclude put the workers on the nodes asked, as each worker sees from inside; an unknown node is refused naming it', async () => {
    const [first, second] = cluster.nodes.map((n) => n.name) as [string, string];
    for (const [name, placement] of [['slurm-nodelist', { nodelist: [second] }], ['slurm-exclude', { exclude: first }]] as const) {
      const home = tempHome();
      const job = makeJob({ name, workers: 2, worker: { module: 'w.mjs' }, ...slurmSpec({ slurm: { tasksPerNode: 2, ...placement } }) }, { 'w.mjs': fixture('slurm-worker.mjs') });
      const r = await runCli(['submit', job], home);
      const jobId = jobIds(home)[0]!;
      expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
      const found = testRecords<Rec>(r.stdout).filter((x) => x.step === 'discovered');
      expect(found.map((x) => `${x.id}@${x.node}`).sort(), name).toEqual([`0@${second}`, `1@${second}`]);
      expect(await leftovers(jobId)).toEqual([]);
    }
    const home = tempHome();
    const job = makeJob({ name: 'slurm-nonode', workers: 1, worker: { command: 'true' }, ...slurmSpec({ slurm: { nodelist: ['nosuchnode'] } }) });
    const r = await runCli(['submit', job], home);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`slurm.nodelist is "nosuchnode"; nodes on this cluster: ${first}, ${second}`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it.each([
    ['mpirun inside the allocation', { launch: 'mpirun' }, 'client', /^mpirun -np 4 .*--mca btl 'self,tcp' /m],
    ['srun --mpi=pmix', { mpi: 'pmix' }, 'client', /^srun --ntasks=4 --mpi=pmix /m],
    // The job master in the batch step runs the workers' srun itself: only an MPI world of 4 shows its --mpi=pmix.
    ['srun --mpi=pmix from a job master in the allocation', { mpi: 'pmix' }, 'cluster', /^exec .* jobmaster /m],
  ])('a real mpi4py allreduce passes with %s: ranks are worker IDs on both nodes, slurm.mca reaches them', async (_how, launch, placement, command) => {
    const home = tempHome();
    const job = makeJob(
      {
        name: 'slurm-allreduce',
        workers: 4,
        // Debian's python3 has mpi4py; the client's PATH may start with another (test-clusters.md).
        worker: { command: ['/usr/bin/python3', 'allreduce.py'] },
        ...slurmSpec({ slurm: { tasksPerNode: 2, ...launch, mca: { btl: 'self,tcp' } } }),
        jobMaster: placement === 'client' ? { host: cluster.controllerAddress } : { placement },
      },
      { 'allreduce.py': fixture('mpi-allreduce.py') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    expect(readFileSync(path.join(home, 'jobs', jobId, 'slurm', placement === 'client' ? 'job.sbatch' : 'jobmaster.sbatch'), 'utf8')).toMatch(command);
    // Each worker's log holds its own rank's line (mpirun's tagged output is split by rank; srun writes %t).
    const hosts = new Set<string>();
    for (const id of [0, 1, 2, 3]) {
      const log = readFileSync(path.join(home, 'jobs', jobId, 'logs', `worker-${id}.log`), 'utf8');
      const lines = [...log.matchAll(/ALLREDUCE rank=(\d+) size=(\d+) worker=(\S+) sum=(\d+) host=(\S+) btl=(\S+)/g)];
      expect(lines.map(([, rank, size, worker, sum, , btl]) => ({ rank, size, worker, sum, btl }))).toEqual([{ rank: String(id), size: '4', worker: String(id), sum: '10', btl: 'self,tcp' }]);
      hosts.add(lines[0]![5]!);
    }
    expect(hosts).toEqual(new Set(cluster.nodes.map((n) => n.name)));
    // A job master in the allocation ends the Slurm job when it exits, just after the client saw the outcome.
    if (placement === 'cluster') await waitFor('nothing left', async () => (await leftovers(jobId)).length === 0, 30_000);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it.each(['client', 'cluster'])('GPUs (job master in the %s): --gpus-per-task gives each of 4 workers (2 per node, gpu gres 2 per node) its own GPU, as Slurm allocated it; a SIGKILLed worker restarts on its node with the same GPU, shared with none', async (placement) => {
    // The test nodes' GPUs are stand-ins: gres.conf File= character devices made with mknod (test/env/slurm-cluster.ts).
    const worker = `import os from 'node:os';
    import { existsSync, writeFileSync } from 'node:fs';
    export default async function (ctx) {
      const e = process.env;
      console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'gpus', restart: ctx.restartCount, node: os.hostname(), cvd: e.CUDA_VISIBLE_DEVICES ?? null, stepGpus: e.SLURM_STEP_GPUS ?? null }));
      if (ctx.workerId === 3 && ctx.restartCount === 0) process.kill(process.pid, 'SIGKILL');
      // No barrier (a failed worker fails the barriers it was part of): the others stay until worker 3 is back,
      // so the allocation is still there for its restart (the shared file system shows the mark).
      if (ctx.workerId === 3) writeFileSync(ctx.args[0], '');
      while (!existsSync(ctx.args[0])) await new Promise((r) => setTimeout(r, 200));
    }`;
    const home = tempHome();
    const mark = path.join(home, 'worker-3-back');
    const job = makeJob(
      { name: 'slurm-gpus', workers: 4, resources: { gpus: 1 }, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs', args: [mark] }, ...slurmSpec(), jobMaster: placement === 'client' ? { host: cluster.controllerAddress } : { placement } },
      { 'w.mjs': worker },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    // The workers' logs (a restart appends to its worker's): the client shows no worker output when the job master is in the allocation.
    const recs = testRecords<Rec & { restart: number; cvd: string | null; stepGpus: string | null }>(logs).filter((x) => x.step === 'gpus');
    const first = recs.filter((x) => x.restart === 0);
    expect(first.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const node of cluster.nodes.map((n) => n.name)) {
      const here = first.filter((x) => x.node === node);
      // Each task on the node sees one GPU, a different one, and it is the one Slurm allocated to its step.
      expect(here.map((x) => x.cvd).sort()).toEqual(['0', '1']);
      for (const x of here) expect(x.stepGpus).toBe(x.cvd);
    }
    // Worker 3 is its node's second task, so it had GPU 1: an --overlap step asking Slurm for a GPU would get
    // GPU 0, worker 2's. The restart runs on worker 3's node and keeps worker 3's GPU.
    const before = first.find((x) => x.id === 3)!;
    expect(before.cvd).toBe('1');
    const again = recs.filter((x) => x.restart === 1);
    expect(again.map((x) => x.id)).toEqual([3]);
    expect(again[0], JSON.stringify(recs)).toMatchObject({ node: before.node, cvd: before.cvd, stepGpus: before.stepGpus });
    const sameNode = first.filter((x) => x.node === before.node && x.id !== 3);
    expect(sameNode.map((x) => x.cvd)).not.toContain(again[0]!.cvd);
    expect(readFileSync(path.join(home, 'jobs', jobId, 'slurm', placement === 'client' ? 'job.sbatch' : 'jobmaster.sbatch'), 'utf8')).toMatch(/^#SBATCH --gpus-per-task=1$/m);
    if (placement === 'cluster') await waitFor('nothing left', async () => (await leftovers(jobId)).length === 0, 30_000).catch(() => undefined);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('GPUs: more per node than the nodes have is refused with Slurm\'s own reason', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'slurm-gpus-many', workers: 2, resources: { gpus: 3 }, worker: { command: 'true' }, timeouts: { registration: '10m' }, ...slurmSpec({ slurm: { tasksPerNode: 1 } }) });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED: the slurm launcher could not start the workers: sbatch refused the job: Batch job submission failed: Requested node configuration is not available \(the batch script is \S+\/slurm\/job\.sbatch\)/);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('every kind of directive it writes is accepted by the real sbatch --test-only', async () => {
    const { sbatchDirectives } = await import('../../src/launchers/slurm/batch-script.js');
    const { parseSpec } = await import('../../src/spec/validate.js');
    const spec = parseSpec({
      name: 'testonly',
      cluster: 'slurm',
      workers: 1,
      resources: { cpu: 2, memory: '256Mi', gpus: 1 },
      worker: { command: 'true' },
      slurm: {
        partition: 'batch',
        time: '10m',
        nodes: '1-2',
        tasksPerNode: 1,
        gres: 'gpu:1',
        constraint: 'fast',
        exclude: [cluster.nodes[1]!.name],
        nodelist: [cluster.nodes[0]!.name],
        exclusive: true,
        // This test cluster runs no accounting database, so Slurm accepts any account and QOS.
        account: 'proj1',
        qos: 'normal',
        directives: ['--mail-type=NONE', '--comment=twister2-test'],
      },
    });
    const home = tempHome();
    const lines = sbatchDirectives({ jobId: 'testonly', spec, slurm: spec.slurm!, logsDir: home });
    const script = path.join(home, 'test.sbatch');
    writeFileSync(script, ['#!/bin/bash', ...lines.map((l) => `#SBATCH ${l}`), 'true', ''].join('\n'));
    const r = spawnSync('sbatch', ['--test-only', script], { env: { ...process.env, ...cluster.env }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/to start at/);
    // And the same with memory per node instead of per CPU.
    const perNode = sbatchDirectives({ jobId: 'testonly', spec: { ...spec, slurm: { ...spec.slurm!, memoryPerNode: 512 * 2 ** 20 } }, slurm: { ...spec.slurm!, memoryPerNode: 512 * 2 ** 20 }, logsDir: home });
    writeFileSync(script, ['#!/bin/bash', ...perNode.map((l) => `#SBATCH ${l}`), 'true', ''].join('\n'));
    const r2 = spawnSync('sbatch', ['--test-only', script], { env: { ...process.env, ...cluster.env }, encoding: 'utf8' });
    expect(r2.status, r2.stderr).toBe(0);
  });
});


describe('storage on a 2-node Slurm cluster', () => {
  const storageJob = (name: string, mode: string, persistent: string) => storageJobOf(name, mode, persistent, slurmSpec());

  it('4 workers, 2 per node: memory is tmpfs and shared by the workers of a node, persistent keeps every file and log, memory and scratch gone', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('slurm-storage', 'ok', persistent)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage');
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    expect(new Set(recs.map((x) => x.host))).toEqual(new Set(cluster.nodes.map((n) => n.name)));
    for (const x of recs) {
      expect(x.fsType).toBe('tmpfs');
      expect(x.storage.memory).toBe(`/dev/shm/twister2-${jobId}`);
      expect(x.storage.scratch).toBe(`/tmp/twister2/${jobId}/scratch`);
      expect(x.env).toEqual(x.storage);
      // The other worker of its node wrote there before the barrier. (The test nodes share this machine's
      // /dev/shm, so the other node's files show up too, which separate machines would not.)
      const sameNode = recs.filter((y) => y.host === x.host).map((y) => `w-${y.id}`);
      expect(sameNode).toHaveLength(2);
      expect(x.memoryFiles).toEqual(expect.arrayContaining(sameNode));
    }
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
    for (const i of [0, 1, 2, 3]) expect(readFileSync(path.join(persistent, 'logs', jobId, `worker-${i}.log`), 'utf8')).toContain(`storage worker ${i} wrote its files`);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('`twister2 kill` (scancel): memory and scratch gone on every node, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('slurm-storage-kill', 'sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping workers', () => testRecords<{ step: string }>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 4, 120_000);
    expect(memoryLeft(jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    await cli.closed;
    expect(cli.output().stderr).toMatch(/KILLED/);
    await waitFor('the job gone from every node', async () => memoryLeft(jobId).length === 0 && (await leftovers(jobId)).length === 0, 60_000).catch(() => undefined);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(await leftovers(jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId))).toHaveLength(4);
    expect(readdirSync(path.join(persistent, 'logs', jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `worker-${i}.log`));
  });

  it('failure: a worker that fails ends the job FAILED; memory and scratch gone on every node, persistent keeps every file and log', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('slurm-storage-fail', 'fail', persistent)], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(1);
    expect(r.stderr).toMatch(/FAILED/);
    expect(r.stderr + logs).toMatch(/worker 0 fails on purpose/);
    expect(testRecords<StorageRec>(r.stdout + logs).filter((x) => x.step === 'storage').map((x) => x.id)).toEqual(expect.arrayContaining([0, 1, 2, 3]));
    await expectStorageEnded(jobId, persistent, { memory: memoryLeft, other: leftovers });
    expect(readFileSync(path.join(persistent, 'logs', jobId, 'worker-0.log'), 'utf8')).toContain('worker 0 fails on purpose');
  });

  it('a SIGKILLed worker (no exit hook of its runs) with the job master in the allocation: FAILED, its release removes memory and scratch on every node', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const job = storageJobOf('slurm-storage-sigkill-worker', 'sigkill', persistent, { ...slurmSpec(), jobMaster: { placement: 'cluster' } });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(1);
    expect(r.stderr).toMatch(/FAILED: worker 0 failed: .*SIGKILL/);
    await expectStorageEnded(jobId, persistent, { memory: memoryLeft, other: leftovers });
  });

  it('a SIGKILLed client: the workers end once they notice, memory and scratch gone on every node, no Slurm job left, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('slurm-storage-sigkill', 'sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping workers', () => testRecords<{ step: string }>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 4, 120_000);
    expect(memoryLeft(jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    cli.kill('SIGKILL');
    await cli.closed;
    await expectStorageEnded(jobId, persistent, { memory: memoryLeft, other: leftovers }, 90_000);
  });
});

describe('slurm launcher conformance', () => {
  launcherConformance({
    cluster: 'slurm',
    get spec() {
      return slurmSpec();
    },
    leftovers,
    cleanupWithinMs: 20_000,
  });
});

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launcherConformance } from '../conformance/launcher-conformance.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import { mpiLeftovers, mpiSpecFor } from '../env/mpi-hosts.js';
import { fixture, jobIds, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { expectStorageEnded, memoryLeft, persistentDir, storageJob as storageJobOf, type StorageRec } from '../helpers/storage.js';
import { expectWorkersHeldOnlyTheWorkerToken } from '../helpers/credentials.js';
import { workerTokenOf } from '../../src/job/worker-environment.js';

ensureOpenMpi();
let env: SshHosts;

function mpiSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return mpiSpecFor(env, extra);
}

function leftovers(jobId: string): string[] {
  return mpiLeftovers(env, jobId);
}

beforeAll(async () => {
  env = await startSshHosts(2, { prefix: 't2mpi' });
});
afterAll(async () => {
  await env?.stop();
});

interface Rec {
  id: number;
  step: string;
  rank?: string;
  size?: string;
  n?: number;
  peers?: { id: number; ip: string }[];
}

describe('mpi launcher on two ssh hosts', () => {
  it('runs 4 ranks as workers 0..3 on both hosts: discovery, barriers, SUCCEEDED, nothing left', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'mpi-ranks', workers: 4, worker: { module: 'w.mjs' }, ...mpiSpec() }, { 'w.mjs': fixture('mpi-rank-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/SUCCEEDED/);
    const recs = testRecords<Rec>(r.stdout);
    const found = recs.filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of found) {
      expect(x.rank).toBe(String(x.id));
      expect(x.size).toBe('4');
      expect(x.n).toBe(4);
      expect(x.peers?.map((p) => p.id)).toEqual([0, 1, 2, 3]);
    }
    const ips = found[0]!.peers!.map((p) => p.ip);
    const hostAddrs = env.hosts.map((h) => h.address);
    // Every worker runs inside one of the namespaces, and both hosts are used (2 slots each).
    expect(ips.every((ip) => hostAddrs.includes(ip))).toBe(true);
    expect(new Set(ips).size).toBe(2);
    expect(recs.filter((x) => x.step === 'barrier')).toHaveLength(8);
    // Per-rank logs exist, and mpirun's command line never carries the job token.
    const dir = path.join(home, 'jobs', jobId);
    expect(readFileSync(path.join(dir, 'logs', 'worker-3.log'), 'utf8')).toContain('"id":3');
    const mpirunLog = readFileSync(path.join(dir, 'logs', 'mpirun.log'), 'utf8');
    expect(mpirunLog).toContain('-x TWISTER2_JOB_TOKEN');
    expect(mpirunLog).not.toMatch(/TWISTER2_JOB_TOKEN=/);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('GPUs: each host\'s mpi.hosts[].gpus divided among the ranks placed on it (distinct CUDA_VISIBLE_DEVICES per host), for module and plain command ranks', async () => {
    const home = tempHome();
    const gpuHosts = env.hosts.map((h, i) => ({ host: h.address, slots: 2, gpus: i === 0 ? [0, 1] : [5, 4] }));
    const worker = `export default async function (ctx) {
      const me = (await ctx.workers()).find((p) => p.workerId === ctx.workerId);
      console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, ip: me.ip, cvd: process.env.CUDA_VISIBLE_DEVICES ?? null }));
    }`;
    const spec = mpiSpec();
    const job = makeJob({ name: 'mpi-gpus', workers: 4, resources: { gpus: 1 }, worker: { module: 'w.mjs' }, ...spec, mpi: { ...(spec.mpi as object), hosts: gpuHosts } }, { 'w.mjs': worker });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<{ id: number; ip: string; cvd: string | null }>(r.stdout);
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    const onHost = (i: number) => recs.filter((x) => x.ip === env.hosts[i]!.address).map((x) => x.cvd).sort();
    expect(onHost(0)).toEqual(['0', '1']);
    expect(onHost(1)).toEqual(['4', '5']);
    expect(leftovers(jobId)).toEqual([]);

    // A plain MPI program (no job master) gets them the same way; 2 ranks fill the first host's slots.
    const plain = makeJob({
      name: 'mpi-gpus-plain',
      workers: 2,
      resources: { gpus: 1 },
      jobMaster: { placement: 'none' },
      worker: { command: 'echo "T2TEST {\\"id\\": $OMPI_COMM_WORLD_RANK, \\"cvd\\": \\"$CUDA_VISIBLE_DEVICES\\"}"' },
      ...spec,
      mpi: { ...(spec.mpi as object), hosts: gpuHosts },
    });
    const p = await runCli(['submit', plain], home);
    expect(p.code, p.stderr).toBe(0);
    expect(testRecords<{ id: number; cvd: string }>(p.stdout).sort((a, b) => a.id - b.id).map((x) => x.cvd)).toEqual(['0', '1']);
  });

  it('GPUs: a host whose list is too short for its ranks is an error naming the host, exit 2, nothing started', async () => {
    const home = tempHome();
    const spec = mpiSpec();
    const hosts = env.hosts.map((h, i) => ({ host: h.address, slots: 2, gpus: i === 0 ? [0, 1] : [0] }));
    const job = makeJob({ name: 'mpi-gpus-short', workers: 4, resources: { gpus: 1 }, worker: { module: 'w.mjs' }, ...spec, mpi: { ...(spec.mpi as object), hosts } }, { 'w.mjs': fixture('mpi-rank-worker.mjs') });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mpi.hosts[1].gpus: mpi host "${env.hosts[1]!.address}" runs 2 ranks × 1 GPU(s) (resources.gpus) = 2 GPUs, but its gpus list has 1 [0]`);
    expect(jobIds(home)).toEqual([]);
  });

  it('an unreachable host fails fast with a message naming it, and nothing runs', async () => {
    const home = tempHome();
    const spec = mpiSpec();
    const mpi = spec.mpi as { hosts: { host: string; slots: number }[] };
    mpi.hosts = [mpi.hosts[0]!, { host: env.unusedAddress, slots: 2 }];
    const job = makeJob({ name: 'mpi-unreachable', workers: 4, worker: { module: 'w.mjs' }, ...spec }, { 'w.mjs': fixture('mpi-rank-worker.mjs') });
    const t0 = Date.now();
    const r = await runCli(['submit', job], home);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain(`mpi host "${env.unusedAddress}" is not reachable over ssh`);
    expect(leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('a wrong key fails fast with a message naming the host and ssh\'s complaint', async () => {
    const home = tempHome();
    const wrongKey = path.join(mkdtempSync(path.join(os.tmpdir(), 't2-key-')), 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const job = makeJob(
      { name: 'mpi-wrong-key', workers: 4, worker: { module: 'w.mjs' }, ...mpiSpec({ ssh: { identityFile: wrongKey, user: 'root' } }) },
      { 'w.mjs': fixture('mpi-rank-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(new RegExp(`mpi host "${env.hosts[0]!.address.replace(/\./g, '\\.')}" is not reachable over ssh \\(ssh exit 255\\): [^]*Permission denied \\(publickey`));
    expect(leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('a real mpi4py allreduce runs in the command worker with its rank\'s MPI environment', async () => {
    const home = tempHome();
    const job = makeJob(
      // The namespace "hosts" share one file system and hostname, so OpenMPI's shared-memory transport
      // (vader) of ranks on different hosts collides in the same session directory and segfaults in
      // MPI_Comm_dup; on real hosts it would not. TCP only, which also exercises mpi.mca.
      { name: 'mpi-allreduce', workers: 4, worker: { command: ['python3', 'allreduce.py'] }, ...mpiSpec({ mca: { btl: 'self,tcp' } }) },
      { 'allreduce.py': fixture('mpi-allreduce.py') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    const lines = [...logs.matchAll(/ALLREDUCE rank=(\d) size=4 worker=(\d) sum=(\d+)/g)];
    expect(lines.map((m) => m[1]).sort()).toEqual(['0', '1', '2', '3']);
    expect(lines.every((m) => m[1] === m[2] && m[3] === '10')).toBe(true);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('ranks hold the worker token in their environment, never the job secret nor a token in argv; their kill and scale are refused', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'mpi-tokens', workers: 2, worker: { command: [process.execPath, 'attack.mjs'] }, ...mpiSpec() }, { 'attack.mjs': fixture('credentials-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const dir = path.join(home, 'jobs', jobId);
    const envs = expectWorkersHeldOnlyTheWorkerToken(r, dir, 2);
    // Each rank's program ran under OpenMPI (its rank in the environment), on the hosts' side of ssh.
    expect(envs.map((e) => e.OMPI_COMM_WORLD_RANK).sort()).toEqual(['0', '1']);
    const secret = readFileSync(path.join(dir, 'token'), 'utf8').trim();
    const mpirunLog = readFileSync(path.join(dir, 'logs', 'mpirun.log'), 'utf8');
    expect(mpirunLog).not.toContain(secret);
    expect(mpirunLog).not.toContain(workerTokenOf(secret));
    expect(leftovers(jobId)).toEqual([]);
  });

  it('with no job master (placement none) a plain MPI program runs on its ranks; its exit decides the job', async () => {
    const spec = (name: string, command: string[]) => ({
      name,
      workers: 4,
      worker: { command },
      ...mpiSpec({ mca: { btl: 'self,tcp' } }),
      jobMaster: { placement: 'none' },
    });
    const home = tempHome();
    const ok = await runCli(['submit', makeJob(spec('mpi-plain', ['python3', 'allreduce.py']), { 'allreduce.py': fixture('mpi-allreduce.py') })], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(ok.code, `${ok.stderr}\n${logs}`).toBe(0);
    expect(ok.stderr).toContain('SUCCEEDED');
    // No worker registers without a job master: the CLI says the job runs, not that workers registered.
    expect(ok.stderr).toContain('job RUNNING: 4 workers started (no job master: jobMaster.placement none)');
    expect(ok.stderr).not.toContain('registered');
    const lines = [...logs.matchAll(/ALLREDUCE rank=(\d) size=4 worker=(\d) sum=(\d+)/g)];
    expect(lines.map((m) => m[1]).sort()).toEqual(['0', '1', '2', '3']);
    expect(lines.every((m) => m[1] === m[2] && m[3] === '10')).toBe(true);
    expect(logs).not.toContain('registered'); // no worker runtime, no registration
    expect(leftovers(jobId)).toEqual([]);

    const home2 = tempHome();
    const failing = spec('mpi-plain-fails', ['sh', '-c', 'if [ "$OMPI_COMM_WORLD_RANK" = 2 ]; then exit 3; fi; sleep 1']);
    const bad = await runCli(['submit', makeJob(failing)], home2);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/FAILED: worker \d exited with code \d+/);
    expect(leftovers(jobIds(home2)[0]!)).toEqual([]);
  });

  it('with no job master, ranks whose runtime is SIGKILLed (no exit hook runs) still leave no scratch dir or process', async () => {
    const home = tempHome();
    const job = {
      name: 'mpi-plain-sigkilled',
      workers: 4,
      // The command's parent is the rank's runtime (plain-main), which then cannot release its hold.
      worker: { command: ['sh', '-c', 'sleep 30 & kill -KILL $PPID; wait'] },
      ...mpiSpec({ mca: { btl: 'self,tcp' } }),
      jobMaster: { placement: 'none' },
    };
    const r = await runCli(['submit', makeJob(job)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(1);
    expect(leftovers(jobId)).toEqual([]);
  });
});


describe('storage on mpi hosts', () => {
  const storageJob = (name: string, mode: string, persistent: string) => storageJobOf(name, mode, persistent, mpiSpec());

  it('4 ranks on 2 hosts: memory is tmpfs and shared by the ranks of a host, persistent keeps every file and log, memory and scratch gone', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('mpi-storage', 'ok', persistent)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage');
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    expect(new Set(recs.map((x) => x.ip)).size).toBe(2);
    for (const x of recs) {
      expect(x.fsType).toBe('tmpfs');
      expect(x.storage.memory).toBe(`/dev/shm/twister2-${jobId}`);
      expect(x.env).toEqual(x.storage);
      // Every rank of its host wrote there before the barrier. (The test hosts are network namespaces of one
      // machine, so they share /dev/shm: ranks of the other host show up too, which real hosts would not.)
      const sameHost = recs.filter((y) => y.ip === x.ip).map((y) => `w-${y.id}`);
      expect(x.memoryFiles).toEqual(expect.arrayContaining(sameHost));
    }
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
    for (const i of [0, 1, 2, 3]) expect(readFileSync(path.join(persistent, 'logs', jobId, `worker-${i}.log`), 'utf8')).toContain(`storage worker ${i} wrote its files`);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('`twister2 kill`: memory and scratch gone on every host, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('mpi-storage-kill', 'sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping ranks', () => testRecords<{ step: string }>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 4, 90_000);
    expect(memoryLeft(jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    await cli.closed;
    expect(cli.output().stderr).toMatch(/KILLED/);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId))).toHaveLength(4);
    expect(readdirSync(path.join(persistent, 'logs', jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `worker-${i}.log`));
  });

  it('failure: a rank that fails ends the job FAILED; memory and scratch gone on every host, persistent keeps every file and log', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('mpi-storage-fail', 'fail', persistent)], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(1);
    expect(r.stderr).toMatch(/FAILED/);
    expect(r.stderr + logs).toMatch(/worker 0 fails on purpose/);
    expect(testRecords<StorageRec>(r.stdout + logs).filter((x) => x.step === 'storage').map((x) => x.id)).toEqual(expect.arrayContaining([0, 1, 2, 3]));
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
    // Every rank's log is copied. (The failing rank's last line may be missing from its log: mpirun is stopped
    // as soon as the job master hears of the failure, which can be before the line came through mpirun.)
    expect(readdirSync(path.join(persistent, 'logs', jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `worker-${i}.log`));
    expect(readFileSync(path.join(persistent, 'logs', jobId, 'worker-0.log'), 'utf8')).toContain('storage worker 0 wrote its files');
  });

  it('a SIGKILLed rank (no exit hook of its runs): FAILED, the sweep removes memory and scratch on every host, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('mpi-storage-sigkill-rank', 'sigkill', persistent)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(1);
    expect(r.stderr).toMatch(/FAILED/);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
  });

  it('a SIGKILLed client: the ranks end once they notice, memory and scratch gone on every host, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('mpi-storage-sigkill', 'sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('4 sleeping ranks', () => testRecords<{ step: string }>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 4, 90_000);
    expect(memoryLeft(jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    cli.kill('SIGKILL');
    await cli.closed;
    await expectStorageEnded(jobId, persistent, { memory: memoryLeft, other: leftovers });
  });

  it('a memory size a host cannot hold fails the job before the program runs, naming the host, the size and what is free', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'mpi-storage-huge', workers: 2, worker: { command: ['sh', '-c', 'echo T2RAN'] }, storage: { memory: { size: '100Ti' } }, ...mpiSpec() });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code).toBe(1);
    expect(r.stderr + logs).toMatch(/storage\.memory\.size is 100Ti, but \/dev\/shm on host \S+ has [0-9.]+\w* free; ask for less in storage\.memory\.size/);
    expect(logs).not.toContain('T2RAN');
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('a plain MPI program (no job master) finds its storage in the same variables', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const job = {
      name: 'mpi-plain-storage',
      workers: 2,
      worker: { command: ['sh', '-c', 'echo x > "$TWISTER2_PERSISTENT_DIR/r-$TWISTER2_WORKER_ID" && echo "T2FS $(stat -f -c %T "$TWISTER2_MEMORY_DIR") $TWISTER2_SCRATCH_DIR"'] },
      storage: { memory: { size: '1Mi' }, persistent: { dir: persistent } },
      ...mpiSpec(),
      jobMaster: { placement: 'none' },
    };
    const r = await runCli(['submit', makeJob(job)], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    expect([...logs.matchAll(/T2FS (\S+) (\S+)/g)].map((m) => [m[1], m[2]])).toEqual([0, 1].map(() => ['tmpfs', path.join(os.tmpdir(), 'twister2', jobId, 'scratch')]));
    expect(readdirSync(persistent).sort()).toEqual(['r-0', 'r-1']);
    expect(memoryLeft(jobId)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
  });
});

launcherConformance({
  cluster: 'mpi',
  get spec() {
    return mpiSpec();
  },
  leftovers: async (jobId) => leftovers(jobId),
  cleanupWithinMs: 8000,
});

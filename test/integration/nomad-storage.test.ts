import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureNomadBinary, startNomadCluster, type NomadCluster } from '../env/nomad-agent.js';
import { jobIds, jobProcesses, readLogs, runCli, scratchLeft, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { memoryLeft, storageJob as storageJobOf, type StorageRec } from '../helpers/storage.js';

/**
 * Spec `storage` on a real Nomad cluster of two client nodes (raw_exec): memory in the node's /dev/shm shared by
 * its workers, scratch under /tmp/twister2/<job>, persistent a host volume each client declares at a path of its
 * own (so a worker writing where its own node has it is seen). Memory and scratch are gone after success,
 * failure, `twister2 kill`, and workers SIGKILLed where nothing of theirs can clean: there only the allocations'
 * post-stop task does.
 */
ensureNomadBinary();
let cluster: NomadCluster;
const NODES = ['t2-storage-a', 't2-storage-b'];
const VOLUME = 'results';
/** Each node's path of the host volume. */
const volumes: Record<string, string> = {};

beforeAll(async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 't2-nomad-volumes-'));
  chmodSync(base, 0o755);
  for (const n of NODES) {
    volumes[n] = path.join(base, n);
    mkdirSync(volumes[n]);
    chmodSync(volumes[n], 0o777); // an agent running as nobody writes there too
  }
  cluster = await startNomadCluster(1, (i) => ({ name: NODES[i]!, hostVolumes: { [VOLUME]: volumes[NODES[i]!]! } }));
  process.env.NOMAD_ADDR = cluster.addr;
}, 240_000);
afterAll(async () => {
  delete process.env.NOMAD_ADDR;
  await cluster?.stop();
});

/** 4 workers, at most 2 on a node: 2 on each. */
const nomadSpec = {
  cluster: 'nomad',
  resources: { cpu: 0.05, memory: '64Mi' },
  nomad: { constraints: [{ attribute: '${node.unique.name}', operator: 'distinct_property', value: '2' }] },
};
const storageJob = (name: string, mode: string) => storageJobOf(name, mode, { hostVolume: VOLUME }, nomadSpec);

async function nomadGet(p: string): Promise<number> {
  return (await fetch(`${cluster.addr}${p}`)).status;
}

/** The job as Nomad still has it, its processes here, its scratch dir and its memory dir. */
async function leftovers(jobId: string): Promise<string[]> {
  const status = await nomadGet(`/v1/job/${jobId}`);
  const procs = jobProcesses(jobId);
  return [...(status !== 404 ? [`nomad job ${jobId}: HTTP ${status}`] : []), ...(procs.length ? [`processes: ${procs.join(' ')}`] : []), ...scratchLeft(jobId), ...memoryLeft(jobId)];
}

/** The job's files in each node's host volume, by node. */
const keptFiles = (jobId: string) => Object.fromEntries(NODES.map((n) => [n, readdirSync(volumes[n]!).filter((f) => f.startsWith(jobId)).sort()]));

/** The worker logs the post-stop tasks copied into each node's host volume, by node. */
function keptLogs(jobId: string): Record<string, string[]> {
  const list = (n: string) => {
    try {
      return readdirSync(path.join(volumes[n]!, 'logs', jobId)).sort();
    } catch {
      return [];
    }
  };
  return Object.fromEntries(NODES.map((n) => [n, list(n)]));
}

/** What each node's volume must hold: `<job>-w-<id>` of its workers, and their logs. */
function expectedKept(jobId: string, nodeOf: Map<number, string>) {
  const on = (n: string) => [...nodeOf].filter(([, node]) => node === n).map(([id]) => id).sort();
  return {
    files: Object.fromEntries(NODES.map((n) => [n, on(n).map((id) => `${jobId}-w-${id}`)])),
    logs: Object.fromEntries(NODES.map((n) => [n, on(n).map((id) => `worker-${id}.log`)])),
  };
}

const logOf = (jobId: string, node: string, id: number) => readFileSync(path.join(volumes[node]!, 'logs', jobId, `worker-${id}.log`), 'utf8');

interface Sleeping {
  id: number;
  step: string;
  pid: number;
}

/** Submits a job of sleeping storage workers; once all 4 sleep: the CLI, the job ID, where each worker runs, and their PIDs. */
async function sleepingJob(name: string) {
  const home = tempHome();
  const cli = startCli(['submit', storageJob(name, 'sleep')], home);
  const jobId = await waitFor('the job', () => jobIds(home)[0]);
  const sleeping = await waitFor('4 sleeping workers', () => {
    const s = testRecords<Sleeping>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping');
    return s.length === 4 && s;
  }, 120_000);
  const recs = testRecords<StorageRec>(readLogs(home, jobId)).filter((x) => x.step === 'storage');
  const nodeOf = new Map(recs.map((x) => [x.id, x.node!]));
  expect(memoryLeft(jobId)).toContain(`/dev/shm/twister2-${jobId}`);
  expect(scratchLeft(jobId)).toHaveLength(1);
  return { home, cli, jobId, sleeping, nodeOf };
}

describe('storage on a 2-client Nomad cluster', () => {
  it('4 workers, 2 per node: memory is tmpfs shared by a node\'s workers, scratch node-local, persistent the host volume at its path on each node with every file and log; memory and scratch gone', async () => {
    const home = tempHome();
    const r = await runCli(['submit', storageJob('nomad-storage', 'ok')], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    const recs = testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage');
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const n of NODES) expect(recs.filter((x) => x.node === n)).toHaveLength(2);
    for (const x of recs) {
      expect(x.fsType).toBe('tmpfs');
      expect(x.storage.memory).toBe(`/dev/shm/twister2-${jobId}`);
      expect(x.storage.scratch).toBe(`/tmp/twister2/${jobId}/scratch`);
      // The host volume where the worker's own node has it: each node declares it at a path of its own.
      expect(x.storage.persistent).toBe(volumes[x.node!]);
      expect(x.env).toEqual(x.storage);
      // The other worker of its node wrote there before the barrier (the test nodes share this machine's
      // /dev/shm, so the other node's files show up too, which separate machines would not).
      expect(x.memoryFiles).toEqual(expect.arrayContaining(recs.filter((y) => y.node === x.node).map((y) => `w-${y.id}`)));
    }
    const expected = expectedKept(jobId, new Map(recs.map((x) => [x.id, x.node!])));
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
    for (const x of recs) expect(logOf(jobId, x.node!, x.id)).toContain(`storage worker ${x.id} wrote its files`);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('with the job master in its own allocation (jobMaster.placement: cluster): the same files and logs, nothing left', async () => {
    const home = tempHome();
    // Without nomadSpec's job-wide constraint, which would count the job master's allocation too: 4 workers anywhere.
    const job = storageJobOf('nomad-storage-jm', 'ok', { hostVolume: VOLUME }, { cluster: 'nomad', resources: nomadSpec.resources, jobMaster: { placement: 'cluster' } });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<StorageRec>(readLogs(home, jobId)).filter((x) => x.step === 'storage');
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of recs) expect(x.storage.persistent).toBe(volumes[x.node!]);
    const expected = expectedKept(jobId, new Map(recs.map((x) => [x.id, x.node!])));
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('failure: the job is FAILED; persistent keeps every file and log (the failing worker\'s error too), memory and scratch gone', async () => {
    const home = tempHome();
    const r = await runCli(['submit', storageJob('nomad-storage-fail', 'fail')], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(1);
    expect(r.stderr).toMatch(/FAILED/);
    const recs = testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage');
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    const nodeOf = new Map(recs.map((x) => [x.id, x.node!]));
    const expected = expectedKept(jobId, nodeOf);
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
    expect(logOf(jobId, nodeOf.get(0)!, 0)).toContain('worker 0 fails on purpose');
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('`twister2 kill` (the job stopped and purged): memory and scratch gone on every node, persistent kept with every log', async () => {
    const { home, cli, jobId, nodeOf } = await sleepingJob('nomad-storage-kill');
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    await cli.closed;
    expect(cli.output().stderr).toMatch(/KILLED/);
    expect(await leftovers(jobId)).toEqual([]);
    const expected = expectedKept(jobId, nodeOf);
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
  });

  it('every worker SIGKILLed (nothing of theirs can clean up): the allocations\' post-stop task removes memory and scratch, and copies the logs', async () => {
    const { cli, jobId, sleeping, nodeOf } = await sleepingJob('nomad-storage-sigkill');
    for (const s of sleeping) process.kill(s.pid, 'SIGKILL');
    const code = await cli.closed;
    expect(code, cli.output().stderr).toBe(1);
    expect(cli.output().stderr).toMatch(/FAILED/);
    expect(await leftovers(jobId)).toEqual([]);
    const expected = expectedKept(jobId, nodeOf);
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
    for (const [id, node] of nodeOf) expect(logOf(jobId, node, id)).toContain(`storage worker ${id} wrote its files`);
  });

  it('a SIGKILLed client (no job master left): the workers purge the job, the post-stop tasks still remove memory and scratch and copy every log', async () => {
    const { cli, jobId, nodeOf } = await sleepingJob('nomad-storage-orphan');
    cli.kill('SIGKILL');
    // Nobody waits for the post-stop tasks here (the workers purge the job and end): they run after the purge.
    const expected = expectedKept(jobId, nodeOf);
    const done = async () => (await leftovers(jobId)).length === 0 && JSON.stringify(keptLogs(jobId)) === JSON.stringify(expected.logs) && jobProcesses(jobId).length === 0;
    await waitFor('nothing left of the job, every log kept', done, 60_000).catch(() => undefined);
    expect(await leftovers(jobId)).toEqual([]);
    expect(keptFiles(jobId)).toEqual(expected.files);
    expect(keptLogs(jobId)).toEqual(expected.logs);
    for (const [id, node] of nodeOf) expect(logOf(jobId, node, id)).toMatch(new RegExp(`storage worker ${id} wrote its files[^]*lost the job master`));
  });

  it('a memory size a node cannot hold fails the first worker there naming the size, the node and what is free; nothing left', async () => {
    const home = tempHome();
    const job = storageJobOf('nomad-storage-toobig', 'ok', { hostVolume: VOLUME }, { ...nomadSpec, storage: { memory: { size: '100Ti' }, persistent: { hostVolume: VOLUME } } });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(1);
    expect(r.stderr).toMatch(/storage\.memory\.size is 100Ti, but \/dev\/shm on host .* has [0-9.]+\w* free; ask for less in storage\.memory\.size/);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('a host volume no client declares fails the submit naming it and the fix; storage.persistent.dir is refused on nomad (exit 2)', async () => {
    const home = tempHome();
    const r = await runCli(['submit', storageJobOf('nomad-storage-novol', 'ok', { hostVolume: 'nowhere' }, nomadSpec)], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/storage\.persistent\.hostVolume "nowhere" cannot hold the job's files: no client node of the 2 the cluster lists declares it; declare it writable in the client config/);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
    const d = await runCli(['submit', storageJobOf('nomad-storage-dir', 'ok', { dir: '/tmp/results' }, nomadSpec)], tempHome());
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/storage\.persistent\.dir "\/tmp\/results" is for cluster "local", "mpi", "slurm", not "nomad"; use storage\.persistent\.hostVolume/);
  });
});

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launcherConformance } from '../conformance/launcher-conformance.js';
import { ensureNomadBinary, startNomadAgent, type NomadAgent } from '../env/nomad-agent.js';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, runCli, scratchLeft, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { expectWorkersHeldOnlyTheWorkerToken } from '../helpers/credentials.js';
import { Journal, type JournalRecord } from '../../src/jobmaster/journal.js';
import { NomadApi } from '../../src/launchers/nomad/nomad-api.js';
import { NomadSpecSchema } from '../../src/launchers/nomad/section.js';
import { NomadVariablesJournalStore } from '../../src/launchers/nomad/variables-journal.js';
import type { JobStatus } from '../../src/protocol/messages.js';

/**
 * The nomad launcher against a real Nomad agent (dev mode, raw_exec): workers are real local processes
 * that Nomad starts, restarts and kills.
 */
ensureNomadBinary();
let agent: NomadAgent;
const AGENT_MEMORY_MB = 6000;

beforeAll(async () => {
  agent = await startNomadAgent({ memoryMB: AGENT_MEMORY_MB });
  process.env.NOMAD_ADDR = agent.addr;
}, 120_000);
afterAll(async () => {
  delete process.env.NOMAD_ADDR;
  await agent?.stop();
});

const small = { resources: { cpu: 0.05, memory: '64Mi' } };

async function nomadGet(p: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${agent.addr}${p}`);
  return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
}

/** The job as Nomad still has it (registered, or any allocation not yet terminal) and its processes here. */
async function leftovers(jobId: string): Promise<string[]> {
  const out: string[] = [];
  const job = await nomadGet(`/v1/job/${jobId}`);
  if (job.status !== 404) out.push(`nomad job ${jobId}: HTTP ${job.status} ${(job.body as { Status?: string }).Status ?? ''}`);
  const procs = jobProcesses(jobId);
  if (procs.length) out.push(`processes: ${procs.join(' ')}`);
  // The worker token's variable and the job master's journal (Nomad Variables) go with the job.
  for (const prefix of [`nomad/jobs/${jobId}`, `twister2/jobs/${jobId}/`]) {
    const vars = await nomadGet(`/v1/vars?prefix=${encodeURIComponent(prefix)}`);
    for (const v of (vars.body as { Path: string }[] | null) ?? []) out.push(`variable ${v.Path}`);
  }
  return [...out, ...scratchLeft(jobId)];
}

interface Rec {
  id: number;
  step: string;
  index?: string;
  n?: number;
  peers?: number[];
  restart?: number;
  pid?: number;
  failed?: number;
  message?: string;
}

describe('nomad launcher on a Nomad agent', () => {
  it('runs 4 workers: IDs = NOMAD_ALLOC_INDEX, discovery, barriers, SUCCEEDED, every log reached the client, job purged', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-ids', cluster: 'nomad', workers: 4, ...small, worker: { module: 'w.mjs' } }, { 'w.mjs': fixture('nomad-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 4 workers completed/);
    // The client printed each allocation's output, streamed through Nomad's logs API.
    const recs = testRecords<Rec>(r.stdout);
    const found = recs.filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of found) {
      expect(x.index).toBe(String(x.id));
      expect(x.n).toBe(4);
      expect(x.peers).toEqual([0, 1, 2, 3]);
    }
    expect(recs.filter((x) => x.step === 'barrier')).toHaveLength(8);
    expect((await nomadGet(`/v1/job/${jobId}`)).status).toBe(404);
    expect((await nomadGet(`/v1/var/nomad/jobs/${jobId}`)).status).toBe(404);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('a SIGKILLed worker is restarted by Nomad in its allocation, rejoins with the same ID, and the job succeeds', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'nomad-restart', cluster: 'nomad', workers: 3, ...small, restart: { maxRestarts: 1 }, worker: { module: 'w.mjs', args: ['1'] } },
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
    const starts = recs.filter((x) => x.id === 1 && x.step === 'start');
    expect(starts.map((x) => x.restart)).toEqual([0, 1]);
    expect(starts[0]!.pid).not.toBe(starts[1]!.pid);
    const told = recs.filter((x) => x.step === 'peer-failed');
    expect(told.map((x) => x.id).sort()).toEqual([0, 2]);
    for (const t of told) expect(t).toMatchObject({ failed: 1, message: 'worker process killed by SIGKILL' });
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('allocations get the worker token from the job\'s Variable, never the job secret; their kill and scale are refused', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-tokens', cluster: 'nomad', workers: 2, ...small, worker: { command: [process.execPath, 'attack.mjs'] } }, { 'attack.mjs': fixture('credentials-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const envs = expectWorkersHeldOnlyTheWorkerToken(r, path.join(home, 'jobs', jobId), 2);
    expect(envs.map((e) => e.NOMAD_ALLOC_INDEX).sort()).toEqual(['0', '1']);
    expect((await nomadGet(`/v1/var/nomad/jobs/${jobId}`)).status).toBe(404); // deleted with the job
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('a job asking for more memory than the agent has fails at once with Nomad\'s placement failure', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-too-big', cluster: 'nomad', workers: 2, resources: { cpu: 0.05, memory: `${AGENT_MEMORY_MB * 2}Mi` }, timeouts: { registration: '10m' }, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED: the nomad launcher could not start the workers: Nomad could not place the job's allocations: workers: .*dimension "memory" exhausted on 1 node/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('a job Nomad\'s validation refuses is never registered: Nomad\'s message names the field', async () => {
    const home = tempHome();
    const nomad = { affinities: [{ attribute: '${node.class}', value: 'x', weight: 0 }] };
    const job = makeJob({ name: 'nomad-invalid', cluster: 'nomad', workers: 1, ...small, nomad, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Nomad refused the job as invalid: .*[Aa]ffinity.*weight/);
    const jobId = jobIds(home)[0]!;
    expect((await nomadGet(`/v1/job/${jobId}`)).status).toBe(404);
    expect(await leftovers(jobId)).toEqual([]);
  });

  it('an invalid driver config fails the job at once with the driver\'s own message; nothing is left', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-bad-driver', cluster: 'nomad', workers: 2, ...small, timeouts: { registration: '10m' }, nomad: { taskConfig: { no_such_option: true } }, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED: Nomad could not start worker \d \(allocation \w+\): Failed Validation: .*no_such_option/);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('an unreachable Nomad is named, with what to do, and nothing is left to clean up', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-nowhere', cluster: 'nomad', workers: 1, ...small, nomad: { address: 'http://127.0.0.1:9' }, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Nomad at http:\/\/127.0.0.1:9 \(ECONNREFUSED\); start a Nomad agent or set nomad.address/);
    expect(r.stderr).not.toMatch(/cleanup failed/);
  });

  it('scales 2 → 4 → 2 through the job scale endpoint', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-scale', cluster: 'nomad', workers: 2, ...small, worker: { module: 'w.mjs' } }, { 'w.mjs': fixture('scale-worker.mjs') });
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    const count = async () => ((await nomadGet(`/v1/job/${jobId}`)).body as { TaskGroups: { Count: number }[] }).TaskGroups[0]!.Count;
    await waitFor('2 workers running', async () => JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout || '{}').state === 'RUNNING', 60_000);
    expect((await runCli(['scale', jobId, '4'], home)).code).toBe(0);
    expect(await count()).toBe(4);
    await waitFor('4 workers running', async () => JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout || '{}').registered === 4, 60_000);
    expect((await runCli(['scale', jobId, '2'], home)).code).toBe(0);
    expect(await count()).toBe(2);
    // Nomad stopped the highest indexes, exactly the IDs the job master removed: 0 and 1 run on.
    const running = async () =>
      ((await nomadGet(`/v1/job/${jobId}/allocations`)).body as { Name: string; ClientStatus: string }[])
        .filter((a) => a.ClientStatus === 'running')
        .map((a) => a.Name.replace(/^.*\[(\d+)\]$/, '$1'))
        .sort();
    await waitFor('allocations 2 and 3 stopped', async () => (await running()).join() === '0,1', 30_000);
    const status = JSON.parse((await runCli(['status', jobId, '--json'], home)).stdout) as { state: string; numWorkers: number };
    expect(status).toMatchObject({ state: 'RUNNING', numWorkers: 2 });
    expect((await runCli(['kill', jobId], home)).code).toBe(0);
    await cli.closed;
    expect(await leftovers(jobId)).toEqual([]);
  });

  // Nomad restarts a service job's task whatever its exit code: a finished worker must not exit, or it would be
  // restarted, refused as "already completed", and restarted again until its restart budget is spent.
  it('nomad.type service: workers finishing 0, 3 and 6 s apart each run once; no restart, no "already completed", SUCCEEDED, purged', async () => {
    const home = tempHome();
    const worker = `export default async (ctx) => {
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, step: 'start', restart: ctx.restartCount }));
  await new Promise((r) => setTimeout(r, ctx.workerId * 3000));
};\n`;
    const job = makeJob({ name: 'nomad-service', cluster: 'nomad', workers: 3, ...small, nomad: { type: 'service' }, restart: { maxRestarts: 3 }, worker: { module: 'w.mjs' } }, { 'w.mjs': worker });
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 3 workers completed/);
    expect(testRecords<Rec>(logs).filter((x) => x.step === 'start').map((x) => `${x.id}:${x.restart}`).sort()).toEqual(['0:0', '1:0', '2:0']);
    expect(`${r.stderr}\n${logs}`).not.toMatch(/already completed/);
    expect(await leftovers(jobId)).toEqual([]);
  });
});

describe('nomad launcher conformance', () => {
  launcherConformance({ cluster: 'nomad', spec: small, leftovers, cleanupWithinMs: 20_000 });
});

describe('the job master\'s journal in Nomad Variables, on a real agent', () => {
  const keep = (r: JournalRecord[]) => r;
  const nomad = () => new NomadApi(NomadSpecSchema.parse({}), { NOMAD_ADDR: agent.addr });

  it('a second job master reads what the first wrote (large commits and snapshots in pieces) and fences it off; discard deletes every variable', async () => {
    const jobId = `journal-${process.pid}`;
    const fenced: Error[] = [];
    const first = await Journal.openIn(new NomadVariablesJournalStore(nomad(), jobId), { compact: keep, onFenced: (e) => fenced.push(e) });
    expect(first.journal.epoch).toBe(1);
    // 20 records of 6 KB of random text (no compression): one commit of 120 KB, stored in pieces.
    const big = Array.from({ length: 20 }, (_, i) => ({ t: 'worker', workerId: i, pad: randomBytes(3000).toString('hex') }));
    for (const r of big) first.journal.append(r);
    await first.journal.flushed();
    first.journal.append({ t: 'worker', workerId: 99 });
    await first.journal.flushed();
    const second = await Journal.openIn(new NomadVariablesJournalStore(nomad(), jobId), { compact: keep, onFenced: () => undefined });
    expect(second.journal.epoch).toBe(2);
    expect(second.records.filter((r) => r.t === 'worker').map((r) => r.workerId)).toEqual([...big.map((r) => r.workerId), 99]);
    expect(second.records.find((r) => r.workerId === 7)?.pad).toBe(big[7]!.pad);
    first.journal.append({ t: 'worker', workerId: 100 });
    await expect(first.journal.flushed()).rejects.toThrow(/epoch 1 was superseded by epoch 2/);
    expect(fenced).toHaveLength(1);
    const third = new NomadVariablesJournalStore(nomad(), jobId);
    const { records } = await Journal.openIn(third, { compact: keep, onFenced: () => undefined });
    expect(records.some((r) => r.workerId === 100)).toBe(false);
    // Every piece of an older snapshot was deleted once no head referred to it: the head and one snapshot's.
    const paths = ((await nomadGet(`/v1/vars?prefix=twister2/jobs/${jobId}/`)).body as { Path: string }[]).map((v) => v.Path);
    expect(paths.filter((p) => p.endsWith('/journal'))).toHaveLength(1);
    expect(new Set(paths.filter((p) => p.includes('/blob-')).map((p) => p.replace(/-\d+$/, ''))).size).toBe(1);
    await third.discard();
    expect((await nomadGet(`/v1/vars?prefix=twister2/jobs/${jobId}/`)).body ?? []).toEqual([]);
  });
});

describe('nomad launcher with the job master in the cluster', () => {
  it('runs the job master as an allocation that workers find through Nomad service discovery; purged at the end', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'nomad-in-cluster', cluster: 'nomad', workers: 3, ...small, jobMaster: { placement: 'cluster' }, worker: { module: 'w.mjs' } },
      { 'w.mjs': fixture('nomad-worker.mjs') },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(r.stderr).toMatch(/SUCCEEDED: all 3 workers completed/);
    const found = testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'discovered');
    expect(found.map((x) => x.id).sort()).toEqual([0, 1, 2]);
    await waitFor('the job purged', async () => (await leftovers(jobId)).length === 0, 30_000);
  });

  it('a job master in its allocation SIGKILLed twice is restarted there: no worker restarted, every log line once, SUCCEEDED, purged', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'nomad-jm-restarts', cluster: 'nomad', workers: 3, ...small, jobMaster: { placement: 'cluster' }, worker: { module: 'w.mjs', args: ['10', '300'] } },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    const cli = startCli(['submit', job], home);
    const jobId = await waitFor('the job directory', () => jobIds(home)[0]);
    const jobDir = path.join(home, 'jobs', jobId);
    const record = () => (JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as { jobMaster?: { pid: number } }).jobMaster;
    const passes = () => testRecords<{ id: number; step: string; n: number }>(readLogs(home, jobId)).filter((r) => r.step === 'pass');
    const killed: number[] = [];
    for (const round of [2, 6]) {
      await waitFor(`barrier ${round}`, () => passes().some((r) => r.n >= round), 60_000);
      const pid = await waitFor('the running job master', () => record()?.pid !== killed.at(-1) && record()?.pid);
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    // Its state is in Nomad Variables, where the restarted one found it (and claimed the next epoch).
    await waitFor('the third job master\'s epoch in the journal variable', async () => {
      const head = await nomadGet(`/v1/var/twister2/jobs/${jobId}/journal`);
      return (head.body as { Items?: { epoch?: string } }).Items?.epoch === '3';
    }, 30_000);
    // The client that submitted follows the job through both restarts.
    expect(await cli.closed, `${cli.output().stderr}\n${readLogs(home, jobId)}`).toBe(0);
    expect(cli.output().stderr).toMatch(/SUCCEEDED: all 3 workers completed/);
    const status = JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as JobStatus;
    expect(status.workers.map((w) => w.restarts)).toEqual([0, 0, 0]);
    expect(status.jobMaster).toMatchObject({ epoch: 3, restarts: 2 });
    // The logs were followed on from where the crashed job master had written them: no line twice, none lost.
    for (const id of [0, 1, 2]) expect(passes().filter((r) => r.id === id).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await waitFor('the job purged', async () => (await leftovers(jobId)).length === 0, 30_000);
  });
});

import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import { fixture, isRunning, jobIds, jobProcesses, makeJob, processesNaming, readLogs, runCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

ensureOpenMpi();
let env: SshHosts;

beforeAll(async () => {
  env = await startSshHosts(2, { prefix: 't2mpl' });
});
afterAll(async () => {
  await env?.stop();
});

/** Job master on the first host: jobMaster.host is left at its default, the job master listens on hosts[0]. */
function clusterSpec(): Record<string, unknown> {
  return {
    cluster: 'mpi',
    jobMaster: { placement: 'cluster' },
    mpi: {
      hosts: env.hosts.map((h) => ({ host: h.address, slots: 2 })),
      ssh: { identityFile: env.keyFile, user: 'root' },
      interfaces: env.subnet,
    },
  };
}

/** A worker that joins, passes a barrier and stays a few seconds, so the running job master can be inspected. */
const SLOW_WORKER = `
export default async function (ctx) {
  const peers = await ctx.workers();
  await ctx.barrier('ready');
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, n: peers.length, rank: process.env.OMPI_COMM_WORLD_RANK }));
  await new Promise((r) => setTimeout(r, Number(ctx.args[0] ?? 3000)));
}
`;

/** The network namespace a process runs in, as seen from host `name` (PIDs are shared with this machine). */
function netns(name: string, pid: number | 'self'): string {
  return env.exec(name, ['readlink', `/proc/${pid}/ns/net`]).stdout.trim();
}

/** Processes anywhere (PIDs are shared) whose environment names the job or whose command line names its directory. */
function leftovers(jobId: string, jobDir: string): string[] {
  return [...jobProcesses(jobId).map((p) => `process ${p} (job environment)`), ...processesNaming(jobDir)];
}

function record(home: string, jobId: string): { jobMaster?: { url: string; pid: number } } {
  return JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'job.json'), 'utf8')) as { jobMaster?: { url: string; pid: number } };
}

describe('mpi job master placement', () => {
  it('cluster: the job master runs on the first host, listens there, the job SUCCEEDS and nothing is left', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'mpi-jm-cluster', workers: 4, worker: { module: 'w.mjs', args: ['4000'] }, ...clusterSpec() }, { 'w.mjs': SLOW_WORKER });
    const r = await runCli(['submit', '--detach', job], home);
    const jobId = jobIds(home)[0]!;
    const jobDir = path.join(home, 'jobs', jobId);
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const jm = record(home, jobId).jobMaster!;
    expect(new URL(jm.url).hostname).toBe(env.hosts[0]!.address);
    // The recorded process lives in host 1's network namespace, not this machine's.
    expect(netns(env.hosts[0]!.name, jm.pid)).toBe(netns(env.hosts[0]!.name, 'self'));
    expect(netns(env.hosts[0]!.name, jm.pid)).not.toBe(readlinkSync('/proc/self/ns/net'));
    // status talks to the recorded URL from the client.
    const status = await runCli(['status', jobId, '--json'], home);
    expect(status.code, status.stderr).toBe(0);
    // logs -f follows the job to its end.
    const logs = await runCli(['logs', jobId, '-f'], home);
    const final = await waitFor('the final status', () => {
      try {
        return JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as { state: string; message?: string };
      } catch {
        return undefined;
      }
    });
    expect(final.state, `${final.message}\n${readFileSync(path.join(jobDir, 'jobmaster.log'), 'utf8')}\n${readLogs(home, jobId)}`).toBe('SUCCEEDED');
    const recs = testRecords<{ id: number; n: number; rank: string }>(logs.stdout + readLogs(home, jobId));
    expect([...new Set(recs.map((x) => x.id))].sort()).toEqual([0, 1, 2, 3]);
    await waitFor('the job master to exit', () => !isRunning(jm.pid), 15_000);
    await waitFor('nothing of the job left', () => leftovers(jobId, jobDir).length === 0, 15_000).catch(() => undefined);
    expect(leftovers(jobId, jobDir)).toEqual([]);
  });

  it('cluster: twister2 kill from the client kills the job on the hosts and the job master', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'mpi-jm-kill', workers: 4, worker: { module: 'w.mjs', args: ['300000'] }, ...clusterSpec() }, { 'w.mjs': SLOW_WORKER });
    const r = await runCli(['submit', '--detach', job], home);
    const jobId = jobIds(home)[0]!;
    const jobDir = path.join(home, 'jobs', jobId);
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const jm = record(home, jobId).jobMaster!;
    await waitFor('all ranks running', () => testRecords(readLogs(home, jobId)).length === 4, 60_000);
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    const final = JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as { state: string };
    expect(final.state).toBe('KILLED');
    await waitFor('the job master to exit', () => !isRunning(jm.pid), 15_000);
    await waitFor('nothing of the job left', () => leftovers(jobId, jobDir).length === 0, 15_000).catch(() => undefined);
    expect(leftovers(jobId, jobDir)).toEqual([]);
  });

  it('cluster: the job master SIGKILLed twice on the first host is restarted there; 4 ranks pass 8 barriers, each line logged once, SUCCEEDED, nothing left', async () => {
    const home = tempHome();
    const job = makeJob(
      { name: 'mpi-jm-restarts', workers: 4, timeouts: { heartbeat: '3s' }, worker: { module: 'w.mjs', args: ['8', '300'] }, ...clusterSpec() },
      { 'w.mjs': fixture('fault-worker.mjs') },
    );
    const r = await runCli(['submit', '--detach', job], home);
    const jobId = jobIds(home)[0]!;
    const jobDir = path.join(home, 'jobs', jobId);
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = () => testRecords<{ id: number; pid: number; step: string; n?: number }>(readLogs(home, jobId));
    const killed: number[] = [];
    for (const round of [2, 5]) {
      await waitFor(`barrier ${round}`, () => recs().some((x) => x.step === 'pass' && x.n! >= round), 60_000);
      const pid = await waitFor('the running job master', () => record(home, jobId).jobMaster!.pid !== killed.at(-1) && record(home, jobId).jobMaster!.pid, 30_000);
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    const final = await waitFor('the final status', () => {
      try {
        return JSON.parse(readFileSync(path.join(jobDir, 'status.json'), 'utf8')) as { state: string; message?: string; jobMaster?: { epoch: number; restarts: number } };
      } catch {
        return undefined;
      }
    }, 90_000);
    expect(final.state, `${final.message}\n${readLogs(home, jobId)}`).toBe('SUCCEEDED');
    expect(final.jobMaster).toMatchObject({ epoch: 3, restarts: 2 });
    for (const id of [0, 1, 2, 3]) {
      const mine = recs().filter((x) => x.id === id);
      // Every barrier passed, every line in the rank's log exactly once, by one process (no rank restarted).
      expect(mine.filter((x) => x.step === 'pass').map((x) => x.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(mine.filter((x) => x.step === 'arrive').map((x) => x.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(new Set(mine.map((x) => x.pid)).size).toBe(1);
    }
    await waitFor('nothing of the job left', () => leftovers(jobId, jobDir).length === 0, 15_000).catch(() => undefined);
    expect(leftovers(jobId, jobDir)).toEqual([]);
  });
});

describe('mpi rank placement across the namespace hosts, checked from inside each rank', () => {
  /** Each rank says where it runs: its worker ID and rank, its network namespace (which host) and the CPUs it may run on. */
  const WHERE_WORKER = `
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
export default async function (ctx) {
  const cpus = /^Cpus_allowed_list:\\s*(\\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1];
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, rank: process.env.OMPI_COMM_WORLD_RANK, netns: readlinkSync('/proc/self/ns/net'), cpus }));
  await ctx.barrier('placed');
}
`;

  it('a user hostfile with mapBy: node and bindToCore: ranks go round the hosts (rank = worker ID), each bound to a core of its own on its host', async () => {
    const home = tempHome();
    const hostfile = path.join(tempHome(), 'hostfile');
    writeFileSync(hostfile, env.hosts.map((h) => `${h.address} slots=2\n`).join(''));
    const bridge = env.subnet.replace(/\.0\/24$/, '.1');
    const job = makeJob(
      {
        name: 'mpi-map-node',
        workers: 4,
        worker: { module: 'w.mjs' },
        cluster: 'mpi',
        jobMaster: { host: bridge },
        mpi: { hostfile, mapBy: 'node', bindToCore: true, ssh: { identityFile: env.keyFile, user: 'root' }, interfaces: env.subnet },
      },
      { 'w.mjs': WHERE_WORKER },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<{ id: number; rank: string; netns: string; cpus: string }>(readLogs(home, jobId)).sort((a, b) => a.id - b.id);
    expect(recs.map((x) => x.id)).toEqual([0, 1, 2, 3]);
    for (const x of recs) expect(x.rank).toBe(String(x.id));
    // map-by node: rank 0 on the first host, 1 on the second, 2 on the first again, 3 on the second.
    const hostOf = new Map(env.hosts.map((h) => [netns(h.name, 'self'), h.name]));
    expect(recs.map((x) => hostOf.get(x.netns))).toEqual([env.hosts[0]!.name, env.hosts[1]!.name, env.hosts[0]!.name, env.hosts[1]!.name]);
    // bind-to core: one CPU each, and the two ranks of a host on different ones.
    for (const x of recs) expect(x.cpus, `rank ${x.rank}`).toMatch(/^\d+$/);
    expect(recs[0]!.cpus).not.toBe(recs[2]!.cpus);
    expect(recs[1]!.cpus).not.toBe(recs[3]!.cpus);
    expect(leftovers(jobId, path.join(home, 'jobs', jobId))).toEqual([]);
  });
});

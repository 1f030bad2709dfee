import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationError, RegistrationError, WorkerCompletedError } from '../../../src/errors.js';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import type { Launcher } from '../../../src/launchers/launcher.js';
import { JobMasterClient } from '../../../src/protocol/jobmaster-client.js';
import { JOB_TOKEN_HEADER } from '../../../src/protocol/messages.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { registration } from '../../helpers/registration.js';

/** Records what the job master asked of the cluster; the real launchers are tested end to end. */
class RecordingLauncher implements Launcher {
  calls: string[] = [];
  async start() {}
  async addWorkers(ids: number[]) {
    this.calls.push(`add ${ids.join(',')}`);
  }
  async removeWorkers(ids: number[]) {
    this.calls.push(`remove ${ids.join(',')}`);
  }
  async restartWorker(id: number, n: number) {
    this.calls.push(`restart ${id} #${n}`);
  }
  async release() {
    this.calls.push('release');
  }
}

const TOKEN = 'a-test-secret-of-enough-length';
const servers: JobMasterServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(extra: Record<string, unknown> = {}) {
  const spec = parseSpec({ name: 'unit', workers: 3, worker: { command: 'true' }, timeouts: { heartbeat: '500ms' }, ...extra });
  const launcher = new RecordingLauncher();
  const jm = new JobMaster({ jobId: 'unit-1', spec, launcher });
  const server = new JobMasterServer(jm, TOKEN);
  servers.push(server);
  const url = await server.listen('127.0.0.1', 0);
  jm.start();
  return { jm, launcher, url, client: new JobMasterClient({ url, token: TOKEN }) };
}


describe('job master', () => {
  it('refuses requests without the job secret or with a wrong one', async () => {
    const { url } = await setup();
    await expect(new JobMasterClient({ url, token: 'wrong' }).status()).rejects.toBeInstanceOf(AuthenticationError);
    const res = await fetch(`${url}/v1/job`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'T2_UNAUTHENTICATED', message: expect.stringContaining('job secret') } });
    const post = await fetch(`${url}/v1/workers`, { method: 'POST', body: JSON.stringify(registration(0)) });
    expect(post.status).toBe(401);
  });

  it('takes the job secret in its own header too, for proxies that keep Authorization for themselves', async () => {
    const { url } = await setup();
    const ok = await fetch(`${url}/v1/job`, { headers: { authorization: 'Bearer the-proxy-token', [JOB_TOKEN_HEADER]: TOKEN } });
    expect(ok.status).toBe(200);
    const wrong = await fetch(`${url}/v1/job`, { headers: { authorization: `Bearer ${TOKEN}`, [JOB_TOKEN_HEADER]: 'wrong' } });
    expect(wrong.status).toBe(401);
  });

  it('goes STARTING -> RUNNING when all joined, refuses a duplicate live ID, SUCCEEDED when all complete', async () => {
    const { jm, client, launcher } = await setup();
    const sessions = [];
    for (const id of [0, 1]) sessions.push((await client.register(registration(id))).session);
    expect(jm.state).toBe('STARTING');
    await expect(client.register(registration(1))).rejects.toThrow(RegistrationError);
    await expect(client.register(registration(1))).rejects.toThrow(/already registered by a live worker/);
    await expect(client.register(registration(7))).rejects.toThrow(/not part of this job: valid IDs are 0..2/);
    const waiting = client.workers({ waitForAll: true });
    sessions.push((await client.register(registration(2))).session);
    expect((await waiting).workers.map((w) => w.workerId).sort()).toEqual([0, 1, 2]);
    expect(jm.state).toBe('RUNNING');
    for (const [id, s] of sessions.entries()) await client.complete(id, s, true);
    const final = await jm.whenEnded();
    expect(final.state).toBe('SUCCEEDED');
    expect(launcher.calls).toEqual(['release']);
  });

  it('marks a silent worker FAILED, restarts it within budget, then fails the job naming it', async () => {
    const { jm, client, launcher } = await setup({ restart: { maxRestarts: 1 } });
    for (const id of [0, 1, 2]) await client.register(registration(id));
    // Nobody heartbeats: after 500ms every worker is silent.
    await new Promise((r) => setTimeout(r, 800));
    expect(launcher.calls.filter((c) => c.startsWith('restart')).sort()).toEqual(['restart 0 #1', 'restart 1 #1', 'restart 2 #1']);
    const again = await client.register(registration(0));
    expect(again.restartCount).toBe(1);
    const final = await jm.whenEnded();
    expect(final.state).toBe('FAILED');
    expect(final.message).toMatch(/worker \d failed: no heartbeat for 500ms; it used all 1 restart/);
  });

  it('scales up and down keeping IDs contiguous', async () => {
    const { jm, client, launcher } = await setup({ timeouts: { heartbeat: '30s' } });
    for (const id of [0, 1, 2]) await client.register(registration(id));
    await client.scale(5);
    expect(launcher.calls).toContain('add 3,4');
    expect(jm.status().workers.map((w) => w.workerId)).toEqual([0, 1, 2, 3, 4]);
    await client.scale(2);
    expect(launcher.calls).toContain('remove 2,3,4');
    expect(jm.status().workers.map((w) => w.workerId)).toEqual([0, 1]);
    expect(jm.status().numWorkers).toBe(2);
    expect(jm.state).toBe('RUNNING');
    jm.kill('test over');
    expect((await jm.whenEnded()).state).toBe('KILLED');
  });

  it('refuses completions and barriers once the job ended, so a KILLED job stays KILLED', async () => {
    const { jm, client } = await setup({ timeouts: { heartbeat: '30s' } });
    const { session } = await client.register(registration(0));
    jm.kill('stop');
    await expect(client.complete(0, session, true)).rejects.toThrow(/already ended \(KILLED\)/);
    await expect(client.barrier('late', 0, session)).rejects.toThrow(/already ended/);
    expect((await jm.whenEnded()).state).toBe('KILLED');
  });

  it('never leaves a final state: a completed worker cannot report again, extra path segments are refused', async () => {
    const { jm, client, url } = await setup({ timeouts: { heartbeat: '30s' } });
    const sessions = [];
    for (const id of [0, 1, 2]) sessions.push((await client.register(registration(id))).session);
    await client.complete(0, sessions[0]!, true);
    await expect(client.complete(0, sessions[0]!, false)).rejects.toThrow(/stale session/);
    // A restarted copy of it (a kubelet's restart) learns by the error's class that its worker is done.
    const again = await client.register(registration(0)).catch((e: Error) => e);
    expect(again).toBeInstanceOf(WorkerCompletedError);
    expect(again).toMatchObject({ code: 'T2_WORKER_COMPLETED', message: 'worker 0 already completed' });
    const res = await fetch(`${url}/v1/job/kill/now`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(404);
    expect(jm.state).toBe('RUNNING');
    await client.scale(4);
    const waiting = client.workers({ waitForAll: true, timeoutMs: 5000 }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 50));
    jm.kill('stop');
    expect(String(await waiting)).toMatch(/ended \(KILLED\) before all workers joined/);
    await client.complete(1, sessions[1]!, true).catch(() => undefined);
    expect((await jm.whenEnded()).state).toBe('KILLED');
  });

  it('wakes discovery waiters when a restarted worker rejoins a RUNNING job', async () => {
    const { jm, client } = await setup({ restart: { maxRestarts: 1 }, timeouts: { heartbeat: '30s' } });
    for (const id of [0, 1, 2]) await client.register(registration(id));
    jm.workerExited({ workerId: 2, code: null, signal: 'SIGKILL' });
    expect(jm.status().workers[2]!.state).not.toBe('RUNNING');
    const waiting = client.workers({ waitForAll: true, timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    await client.register(registration(2));
    expect((await waiting).workers).toHaveLength(3);
    jm.kill();
  });

  it('counts a replacement that dies before registering against the restart budget', async () => {
    const { jm, client, launcher } = await setup({ restart: { maxRestarts: 1 }, timeouts: { heartbeat: '30s' } });
    for (const id of [0, 1, 2]) await client.register(registration(id));
    jm.workerExited({ workerId: 1, code: 1, signal: null });
    await new Promise((r) => setTimeout(r, 20));
    expect(launcher.calls).toContain('restart 1 #1');
    expect(jm.status().workers[1]!.state).toBe('STARTING');
    jm.workerExited({ workerId: 1, code: 2, signal: null });
    const final = await jm.whenEnded();
    expect(final.state).toBe('FAILED');
    expect(final.message).toMatch(/worker 1 failed: worker process exited with code 2; it used all 1 restart/);
  });

  it('succeeds when scaling down leaves only completed workers', async () => {
    const { jm, client } = await setup({ timeouts: { heartbeat: '30s' } });
    const sessions = [];
    for (const id of [0, 1, 2]) sessions.push((await client.register(registration(id))).session);
    await client.complete(0, sessions[0]!, true);
    await client.scale(1);
    expect((await jm.whenEnded()).state).toBe('SUCCEEDED');
  });

  it('streams events: a snapshot, then worker and job changes', async () => {
    const { client, jm } = await setup({ timeouts: { heartbeat: '30s' } });
    const seen: string[] = [];
    const ac = new AbortController();
    const reading = (async () => {
      for await (const e of client.events(ac.signal)) {
        seen.push(e.type === 'worker-state' ? `${e.workerId}:${e.state}` : e.type === 'job-state' ? e.state : e.type);
        if (e.type === 'job-state' && e.state === 'KILLED') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await client.register(registration(0));
    jm.kill();
    await reading;
    // Workers still starting or running when the job ends get a final state before the job's own.
    expect(seen).toEqual(['snapshot', '0:RUNNING', '0:STOPPED', '1:STOPPED', '2:STOPPED', 'KILLED']);
  });

  it('leaves no worker RUNNING or STARTING once the job FAILED; a completed one stays COMPLETED', async () => {
    const { client, jm } = await setup({ timeouts: { heartbeat: '30s' } });
    const s0 = (await client.register(registration(0))).session;
    await client.register(registration(1));
    await client.complete(0, s0, true);
    jm.fail('a test failure');
    const states = jm.status().workers.map((w) => `${w.workerId}:${w.state}`);
    expect(states).toEqual(['0:COMPLETED', '1:STOPPED', '2:STOPPED']);
    expect(jm.status().workers[1]!.message).toBe('stopped: the job ended (FAILED)');
  });

  it('names the barrier in the job\'s final message when a worker fails after its barrier timed out', async () => {
    const { client, jm } = await setup({ timeouts: { heartbeat: '30s' } });
    const s0 = (await client.register(registration(0))).session;
    await client.register(registration(1));
    await client.register(registration(2));
    await expect(client.barrier('start', 0, s0, 100)).rejects.toMatchObject({ code: 'T2_BARRIER_TIMEOUT' });
    // A command worker whose `twister2 barrier` failed exits non-zero: the launcher reports just that.
    jm.workerExited({ workerId: 0, code: 1, signal: null });
    expect(jm.status().state).toBe('FAILED');
    expect(jm.status().message).toMatch(/worker 0 failed: worker process exited with code 1, after barrier 'start' timed out after 100ms: workers 1, 2 never arrived/);
  });

  it('holds registration deadlines while the cluster queues the job, and counts them from the allocation', async () => {
    const { jm, launcher } = await setup({ timeouts: { registration: '300ms', heartbeat: '30s' } });
    jm.queued('Slurm job 7 is PENDING (Resources)');
    expect(jm.status()).toMatchObject({ state: 'QUEUED', message: 'queued by local: Slurm job 7 is PENDING (Resources)' });
    await new Promise((r) => setTimeout(r, 1200));
    expect(jm.state).toBe('QUEUED'); // well past the registration timeout, yet not failed
    jm.allocated();
    expect(jm.state).toBe('STARTING');
    const ended = await jm.whenEnded();
    expect(ended.state).toBe('FAILED');
    expect(ended.message).toMatch(/workers 0, 1, 2 did not register within 300ms/);
    expect(launcher.calls).toContain('release');
  });

  it('a worker registering while the job still shows QUEUED moves it on', async () => {
    const { jm, client } = await setup({ timeouts: { heartbeat: '30s' } });
    jm.queued('PENDING');
    await client.register(registration(0));
    expect(jm.state).toBe('STARTING');
    jm.kill();
  });
});

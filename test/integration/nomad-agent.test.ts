import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNomadAgent, startNomadClient, type NomadAgent } from '../env/nomad-agent.js';

// Proves the Nomad test environment (test/env/nomad-agent.ts) on a real agent. The Nomad binary is built by
// scripts/build-nomad.sh, which `npm test` and `npm run test:clusters` finish before this suite (vitest.clusters.config.ts)
// starts: a cold build takes far longer than a hook may. Here ensureNomadBinary() only finds it in the cache.

interface Alloc {
  ID: string;
  NodeID: string;
  Name: string;
  ClientStatus: string;
  TaskStates?: Record<string, { State: string; Failed: boolean }>;
}

async function nomad<T>(agent: NomadAgent, method: string, p: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${agent.addr}${p}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Plain-text answer (e.g. "job not found").
  }
  return { status: res.status, json: json as T };
}

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function rawExecJob(id: string, count: number, script: string, type: 'batch' | 'service' = 'batch') {
  return {
    Job: {
      ID: id,
      Name: id,
      Type: type,
      Datacenters: ['*'],
      TaskGroups: [
        {
          Name: 'workers',
          Count: count,
          RestartPolicy: { Attempts: 0, Mode: 'fail' },
          ReschedulePolicy: { Attempts: 0, Unlimited: false },
          EphemeralDisk: { SizeMB: 10 },
          Tasks: [
            {
              Name: 'worker',
              Driver: 'raw_exec',
              Config: { command: '/bin/sh', args: ['-c', script] },
              Resources: { CPU: 20, MemoryMB: 32 },
              LogConfig: { MaxFiles: 1, MaxFileSizeMB: 1 },
            },
          ],
        },
      ],
    },
  };
}

async function allocations(agent: NomadAgent, jobId: string): Promise<Alloc[]> {
  const r = await nomad<Alloc[]>(agent, 'GET', `/v1/job/${jobId}/allocations`);
  if (r.status !== 200) throw new Error(`allocations: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function stdoutOf(agent: NomadAgent, allocId: string, task: string): Promise<string> {
  const res = await fetch(`${agent.addr}/v1/client/fs/logs/${allocId}?task=${task}&type=stdout&plain=true`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`logs of ${allocId}: HTTP ${res.status} ${await res.text()}`);
  return res.text();
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

describe('Nomad test agent', () => {
  let agent: NomadAgent;

  beforeAll(async () => {
    agent = await startNomadAgent({ memoryMB: 2048, cpuMHz: 4000 });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
  }, 60_000);

  it('reports the configured capacity on a ready, eligible node', async () => {
    expect(agent.addr).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const node = await nomad<{
      Status: string;
      SchedulingEligibility: string;
      NodeResources: { Memory: { MemoryMB: number }; Cpu: { CpuShares: number } };
    }>(
      agent,
      'GET',
      `/v1/node/${agent.nodeId}`,
    );
    expect(node.status).toBe(200);
    expect(node.json.Status).toBe('ready');
    expect(node.json.SchedulingEligibility).toBe('eligible');
    expect(node.json.NodeResources.Memory.MemoryMB).toBe(2048);
    expect(node.json.NodeResources.Cpu.CpuShares).toBe(4000);
  });

  it('runs a raw_exec batch group of 3, serves its logs, and purges the job', async () => {
    const id = `t2-env-${Date.now()}`;
    const reg = await nomad<{ EvalID: string }>(agent, 'POST', '/v1/jobs', rawExecJob(id, 3, 'echo $NOMAD_ALLOC_INDEX'));
    expect(reg.status, JSON.stringify(reg.json)).toBe(200);
    expect(reg.json.EvalID).toBeTruthy();

    const allocs = await until('3 complete allocations', 90_000, async () => {
      const list = await allocations(agent, id);
      const failed = list.find((a) => a.ClientStatus === 'failed' || a.ClientStatus === 'lost');
      if (failed) throw new Error(`allocation failed: ${JSON.stringify(failed)}`);
      return list.length === 3 && list.every((a) => a.ClientStatus === 'complete') ? list : undefined;
    });
    for (const a of allocs) expect(a.TaskStates?.worker).toMatchObject({ State: 'dead', Failed: false });

    const indexes = await Promise.all(allocs.map(async (a) => (await stdoutOf(agent, a.ID, 'worker')).trim()));
    expect(indexes.sort()).toEqual(['0', '1', '2']);

    const job = await nomad<{ Status: string }>(agent, 'GET', `/v1/job/${id}`);
    expect(job.json.Status).toBe('dead');
    const del = await nomad<unknown>(agent, 'DELETE', `/v1/job/${id}?purge=true`);
    expect(del.status).toBe(200);
    const gone = await nomad<unknown>(agent, 'GET', `/v1/job/${id}`);
    expect(gone.status).toBe(404);
  });

  it('a second agent runs beside the first, and stopping it leaves no task process behind', async () => {
    const second = await startNomadAgent();
    let pids: number[] = [];
    try {
      expect(second.addr).not.toBe(agent.addr);
      const id = `t2-env-sleep-${Date.now()}`;
      // The shell prints its PID and starts a child in a session of its own that ignores SIGINT and SIGTERM: neither
      // Nomad's signal to the task's process group nor the agent's shutdown reaches it; only stop()'s sweep does.
      const script = `echo $$; setsid sh -c 'trap "" INT TERM; echo $$; exec sleep 600' & wait`;
      const reg = await nomad<unknown>(second, 'POST', '/v1/jobs', rawExecJob(id, 2, script, 'service'));
      expect(reg.status, JSON.stringify(reg.json)).toBe(200);
      pids = await until('2 running tasks with their PIDs', 90_000, async () => {
        const list = await allocations(second, id);
        if (list.length !== 2 || !list.every((a) => a.ClientStatus === 'running')) return undefined;
        const out = await Promise.all(list.map((a) => stdoutOf(second, a.ID, 'worker')));
        const found = out.flatMap((o) => o.split(/\s+/).filter(Boolean).map(Number));
        return found.length === 4 ? found : undefined;
      });
      for (const p of pids) expect(running(p), `task process ${p}`).toBe(true);
      // The first agent does not see the second's job.
      expect((await nomad<unknown>(agent, 'GET', `/v1/job/${id}`)).status).toBe(404);
    } finally {
      await second.stop();
    }
    for (const p of pids) expect(running(p), `task process ${p} after stop()`).toBe(false);
  });

  it('a client-only agent joins as a second node: distinct_hosts runs one allocation on each; stopping it leaves no task process or directory', async () => {
    const client = await startNomadClient(agent, { name: `t2-env-client-${process.pid}` });
    let pids: number[] = [];
    const id = `t2-env-two-${Date.now()}`;
    try {
      expect(client.addr).not.toBe(agent.addr);
      const node = await nomad<{ Name: string; Status: string }>(agent, 'GET', `/v1/node/${client.nodeId}`);
      expect(node.json).toMatchObject({ Name: `t2-env-client-${process.pid}`, Status: 'ready' });
      const job = rawExecJob(id, 2, `echo $$; setsid sh -c 'trap "" INT TERM; echo $$; exec sleep 600' & wait`, 'service');
      Object.assign(job.Job, { Constraints: [{ Operand: 'distinct_hosts', RTarget: 'true' }] });
      expect((await nomad<unknown>(agent, 'POST', '/v1/jobs', job)).status).toBe(200);
      const allocs = await until('2 running allocations', 90_000, async () => {
        const list = await allocations(agent, id);
        return list.length === 2 && list.every((a) => a.ClientStatus === 'running') ? list : undefined;
      });
      expect(allocs.map((a) => a.NodeID).sort()).toEqual([agent.nodeId, client.nodeId].sort());
      // The server reads the client node's logs through its connection to that client.
      pids = await until('the tasks\' PIDs', 30_000, async () => {
        const out = await Promise.all(allocs.map((a) => stdoutOf(agent, a.ID, 'worker')));
        const found = out.flatMap((o) => o.split(/\s+/).filter(Boolean).map(Number));
        return found.length === 4 ? found : undefined;
      });
      for (const p of pids) expect(running(p), `task process ${p}`).toBe(true);
    } finally {
      await client.stop();
    }
    const onClient = (await allocations(agent, id)).find((a) => a.NodeID === client.nodeId)!;
    const clientPids = (await stdoutOf(agent, (await allocations(agent, id)).find((a) => a.NodeID === agent.nodeId)!.ID, 'worker')).split(/\s+/).filter(Boolean).map(Number);
    // The stopped client's tasks are gone with it, its directory too; the first node's tasks run on until their job is stopped.
    for (const p of pids.filter((x) => !clientPids.includes(x))) expect(running(p), `task process ${p} of ${onClient.ID} after stop()`).toBe(false);
    for (const p of clientPids) expect(running(p), `task process ${p} on the first node`).toBe(true);
    expect(existsSync(client.dataDir)).toBe(false);
    // Their setsid'd children outlive the job's stop; the first agent's stop() (afterAll) sweeps them.
    await nomad<unknown>(agent, 'DELETE', `/v1/job/${id}?purge=true`);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nomadJob } from '../../src/launchers/nomad/job-builder.js';
import { nomadSection } from '../../src/launchers/nomad/nomad-launcher.js';
import type { JobStatus } from '../../src/protocol/messages.js';
import { parseSpec } from '../../src/spec/validate.js';
import { ensureNomadBinary, startNomadCluster, type NomadCluster } from '../env/nomad-agent.js';
import { jobIds, jobProcesses, makeJob, readLogs, runCli, scratchLeft, tempHome, testRecords } from '../helpers/cli.js';

/**
 * Placement on a real Nomad cluster of two client nodes (a dev-mode agent, server and client, plus a client-only
 * agent joining it): Nomad's own constraints and affinities decide which node each worker's allocation runs on,
 * and a GPU request becomes a device block a real agent accepts and cannot place here (no GPUs).
 */
ensureNomadBinary();
let cluster: NomadCluster;
/** The client nodes' names, and the rack each carries as node meta (`${meta.rack}`). */
const NODES = ['t2-node-a', 't2-node-b'];
const RACKS = ['r1', 'r2'];

beforeAll(async () => {
  cluster = await startNomadCluster(1, (i) => ({ name: NODES[i]!, meta: { rack: RACKS[i]! } }));
  process.env.NOMAD_ADDR = cluster.addr;
}, 240_000);
afterAll(async () => {
  delete process.env.NOMAD_ADDR;
  await cluster?.stop();
});

const small = { resources: { cpu: 0.05, memory: '64Mi' } };

async function nomad(method: string, p: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${cluster.addr}${p}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** The job as Nomad still has it, its variables, its processes here and its scratch directories. */
async function leftovers(jobId: string): Promise<string[]> {
  const out: string[] = [];
  const job = await nomad('GET', `/v1/job/${jobId}`);
  if (job.status !== 404) out.push(`nomad job ${jobId}: HTTP ${job.status}`);
  const procs = jobProcesses(jobId);
  if (procs.length) out.push(`processes: ${procs.join(' ')}`);
  for (const prefix of [`nomad/jobs/${jobId}`, `twister2/jobs/${jobId}/`]) {
    const vars = await nomad('GET', `/v1/vars?prefix=${encodeURIComponent(prefix)}`);
    for (const v of (vars.body as { Path: string }[] | null) ?? []) out.push(`variable ${v.Path}`);
  }
  return [...out, ...scratchLeft(jobId)];
}

/**
 * Each worker asks Nomad for its own allocation (NOMAD_ALLOC_ID) and reports the node Nomad placed it on next to
 * TWISTER2_NODE, which the launcher sets to `${node.unique.name}`. The barrier keeps every worker's allocation
 * running together, so a placement that puts them apart is one that held them all at once.
 */
const NODE_WORKER = `export default async (ctx) => {
  const res = await fetch(ctx.args[0] + '/v1/allocation/' + process.env.NOMAD_ALLOC_ID);
  const alloc = await res.json();
  const scores = (alloc.Metrics?.ScoreMetaData ?? []).find((m) => m.NodeID === alloc.NodeID)?.Scores ?? {};
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, node: process.env.TWISTER2_NODE, allocNode: alloc.NodeName, allocNodeId: alloc.NodeID, affinity: scores['node-affinity'] ?? null }));
  await ctx.barrier('together');
};\n`;

interface NodeRec {
  id: number;
  node: string;
  allocNode: string;
  allocNodeId: string;
  /** Nomad's node-affinity score of the chosen node (1 = every affinity of weight 100 matched). */
  affinity: number | null;
}

/** Runs a job of `workers` NODE_WORKERs with these nomad settings; its records by worker ID, and what is left of it. */
async function placed(name: string, workers: number, nomadSection: Record<string, unknown>): Promise<{ recs: NodeRec[]; left: string[] }> {
  const home = tempHome();
  const job = makeJob({ name, cluster: 'nomad', workers, ...small, nomad: nomadSection, worker: { module: 'w.mjs', args: [cluster.addr] } }, { 'w.mjs': NODE_WORKER });
  const r = await runCli(['submit', job], home);
  const jobId = jobIds(home)[0]!;
  const logs = readLogs(home, jobId);
  expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
  expect(r.stderr).toMatch(new RegExp(`SUCCEEDED: all ${workers} workers completed`));
  const recs = testRecords<NodeRec>(logs).sort((a, b) => a.id - b.id);
  expect(recs.map((x) => x.id)).toEqual([...Array(workers).keys()]);
  for (const x of recs) {
    expect(x.node).toBe(x.allocNode); // the launcher's TWISTER2_NODE is the node Nomad says the allocation ran on
    expect(x.allocNodeId).toBe(cluster.agents[NODES.indexOf(x.allocNode)]?.nodeId);
  }
  // The job master recorded the same node for each worker (its registration), which `twister2 status` shows.
  const status = JSON.parse(readFileSync(path.join(home, 'jobs', jobId, 'status.json'), 'utf8')) as JobStatus;
  expect(status.workers.map((w) => w.info?.node)).toEqual(recs.map((x) => x.allocNode));
  return { recs, left: await leftovers(jobId) };
}

describe('placement on a 2-client Nomad cluster', () => {
  it('the cluster has two ready client nodes, named as asked, with their rack meta', async () => {
    const nodes = (await nomad('GET', '/v1/nodes')).body as { ID: string; Name: string; Status: string }[];
    expect(nodes.map((n) => n.Name).sort()).toEqual(NODES);
    expect(nodes.every((n) => n.Status === 'ready')).toBe(true);
    for (const [i, agent] of cluster.agents.entries()) {
      const node = (await nomad('GET', `/v1/node/${agent.nodeId}`)).body as { Name: string; Meta: Record<string, string> };
      expect(node).toMatchObject({ Name: NODES[i], Meta: { rack: RACKS[i] } });
    }
  });

  // Nomad's scheduler spreads a job's allocations a little by itself (job anti-affinity); the affinity for one node
  // makes both workers go there unless distinct_hosts forbids it, so this fails without the constraint.
  it('separate nodes: constraint distinct_hosts puts the 2 workers on the 2 different clients, even against an affinity for one', async () => {
    const { recs, left } = await placed('nomad-separate', 2, {
      constraints: [{ operator: 'distinct_hosts', value: 'true' }],
      affinities: [{ attribute: '${meta.rack}', value: RACKS[0], weight: 100 }],
    });
    expect(recs.map((x) => x.allocNode).sort()).toEqual(NODES);
    expect(left).toEqual([]);
  });

  it('separate nodes: a third worker cannot have a node of its own, and the job fails with Nomad\'s reason', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-separate-3', cluster: 'nomad', workers: 3, ...small, nomad: { constraints: [{ operator: 'distinct_hosts', value: 'true' }] }, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Nomad could not place the job's allocations: workers: allocations not placed; 2 nodes evaluated; constraint distinct_hosts filtered 2 nodes/);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });

  it('same node: a constraint on ${node.unique.name} puts all 3 workers on the second client', async () => {
    const { recs, left } = await placed('nomad-same', 3, { constraints: [{ attribute: '${node.unique.name}', value: NODES[1] }] });
    expect(recs.map((x) => x.allocNode)).toEqual([NODES[1], NODES[1], NODES[1]]);
    expect(left).toEqual([]);
  });

  it('node attributes: a constraint on node meta ${meta.rack} puts both workers on the node of that rack', async () => {
    const { recs, left } = await placed('nomad-rack', 2, { constraints: [{ attribute: '${meta.rack}', value: RACKS[0] }] });
    expect(recs.map((x) => x.allocNode)).toEqual([NODES[0], NODES[0]]);
    expect(left).toEqual([]);
  });

  it('affinity: a strong affinity for ${meta.rack} = r2 puts both workers on that node, scored by the affinity', async () => {
    const { recs, left } = await placed('nomad-affinity', 2, { affinities: [{ attribute: '${meta.rack}', value: RACKS[1], weight: 100 }] });
    expect(recs.map((x) => x.allocNode)).toEqual([NODES[1], NODES[1]]);
    // Nomad chose the node for the affinity (its node-affinity score), not by chance or bin-packing.
    expect(recs.map((x) => x.affinity)).toEqual([1, 1]);
    expect(left).toEqual([]);
  });
});

describe('GPUs on Nomad: resources.gpus is a device request', () => {
  const gpuJob = (id: string) => {
    const spec = parseSpec({ name: 'gpu', cluster: 'nomad', workers: 2, resources: { cpu: 0.05, memory: '64Mi', gpus: 1 }, worker: { command: 'true' } });
    return nomadJob({ jobId: id, spec, nomad: nomadSection(spec), env: {}, workerCommand: ['/bin/true'] });
  };

  it('the real agent validates the job with its device block, and its plan names the missing device on every node', async () => {
    const job = gpuJob(`gpu-plan-${process.pid}`);
    const task = (job.TaskGroups as { Tasks: { Resources: unknown }[] }[])[0]!.Tasks[0]!;
    expect(task.Resources).toMatchObject({ Devices: [{ Name: 'nvidia/gpu', Count: 1 }] });
    const valid = await nomad('PUT', '/v1/validate/job', { Job: job });
    expect(valid.status).toBe(200);
    expect(valid.body).toMatchObject({ ValidationErrors: null, Error: '' });
    const plan = await nomad('PUT', `/v1/job/${job.ID as string}/plan`, { Job: job, Diff: false });
    expect(plan.status).toBe(200);
    const failed = (plan.body as { FailedTGAllocs: Record<string, { NodesEvaluated: number; ConstraintFiltered?: Record<string, number> }> }).FailedTGAllocs;
    expect(failed.workers).toMatchObject({ NodesEvaluated: 2, ConstraintFiltered: { 'missing devices': 2 } });
    expect((await nomad('GET', `/v1/job/${job.ID as string}`)).status).toBe(404); // a plan registers nothing
  });

  it('twister2 submit of a job asking for a GPU fails at once, naming resources.gpus, the device and the nodes without it; nothing left', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'nomad-gpu', cluster: 'nomad', workers: 2, resources: { cpu: 0.05, memory: '64Mi', gpus: 1 }, worker: { command: 'true' } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Nomad could not place the job's allocations: workers: .*2 nodes evaluated; constraint missing devices filtered 2 nodes: no node has 1 free "nvidia\/gpu" device for each worker, which resources.gpus: 1 asks for; set resources.gpus: 0, or nomad.gpuDevice/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await leftovers(jobIds(home)[0]!)).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workerTokenOf } from '../../src/job/worker-environment.js';
import { jobIds, jobProcesses, makeJob, runCli, tempHome, testRecords } from '../helpers/cli.js';

/** A worker program that tries to kill and scale its own job with the token in its environment, then prints its environment. */
const ATTACK = `
import { execFileSync } from 'node:child_process';
const url = process.env.TWISTER2_JOB_MASTER_URL;
const headers = { authorization: 'Bearer ' + process.env.TWISTER2_JOB_TOKEN, 'content-type': 'application/json' };
const id = Number(process.env.TWISTER2_WORKER_ID);
for (const [route, body] of [['/v1/job/kill', { reason: 'a worker' }], ['/v1/job/scale', { workers: 100000 }], ['/v1/job', undefined]]) {
  const res = await fetch(url + route, { method: body ? 'POST' : 'GET', headers, ...(body ? { body: JSON.stringify(body) } : {}) });
  const answer = await res.json();
  console.log('T2TEST ' + JSON.stringify({ id, route, status: res.status, code: answer.error?.code }));
}
// The job carries on: the peers still meet at a barrier.
execFileSync('twister2', ['barrier', 'after-attack'], { stdio: 'inherit' });
console.log('ENVDUMP ' + JSON.stringify({ env: process.env, argv: process.argv }));
`;

describe('local cluster: workers hold a worker token, not the job secret', () => {
  it('refuses a command worker that kills or scales its own job with its token; the job SUCCEEDS', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'attack', workers: 2, worker: { command: [process.execPath, 'attack.mjs'] } }, { 'attack.mjs': ATTACK });
    const r = await runCli(['submit', job], home);
    expect(r.stderr).toContain('SUCCEEDED');
    expect(r.code, r.stderr).toBe(0);
    const recs = testRecords<{ id: number; route: string; status: number; code?: string }>(r.stdout);
    expect(recs).toHaveLength(6);
    for (const rec of recs) expect(rec, JSON.stringify(rec)).toMatchObject({ status: 403, code: 'T2_FORBIDDEN' });

    const [jobId] = jobIds(home);
    const jobDir = path.join(home, 'jobs', jobId!);
    const secret = readFileSync(path.join(jobDir, 'token'), 'utf8').trim();
    // The environment and argv the programs saw hold the worker token, and the job secret nowhere.
    const dumps = r.stdout.split('\n').filter((l) => l.includes('ENVDUMP '));
    expect(dumps).toHaveLength(2);
    for (const d of dumps) expect(d).toContain(workerTokenOf(secret));
    expect(r.stdout + r.stderr).not.toContain(secret);
    for (const id of [0, 1]) expect(readFileSync(path.join(jobDir, 'logs', `worker-${id}.log`), 'utf8')).not.toContain(secret);
    expect(jobProcesses(jobId!)).toEqual([]);
  });
});

const MODULE_PORTS = `
import net from 'node:net';
export default async function (ctx) {
  // The runtime's ports are free on this host: the program can listen on them.
  const servers = await Promise.all(Object.values(ctx.ports).map((p) => new Promise((ok, no) => { const s = net.createServer().once('error', no).listen(p, () => ok(s)); })));
  const extra = await new Promise((ok) => { const s = net.createServer().listen(0, () => { servers.push(s); ok(s.address().port); }); });
  await ctx.publishPorts({ extra });
  await ctx.barrier('published');
  const peers = await ctx.workers();
  console.log('T2TEST ' + JSON.stringify({ id: ctx.workerId, own: ctx.ports, extra, peers: peers.map((p) => ({ id: p.workerId, ports: p.ports })) }));
  await ctx.barrier('done');
  for (const s of servers) s.close();
}
`;

const COMMAND_PORTS = [
  '#!/bin/sh',
  'set -eu',
  'extra=$((20000 + TWISTER2_WORKER_ID))',
  'twister2 ports publish extra=$extra',
  'twister2 barrier published',
  'echo "T2TEST {\\"id\\": $TWISTER2_WORKER_ID, \\"own\\": {\\"data\\": $TWISTER2_PORT_DATA, \\"ctrl-plane\\": $TWISTER2_PORT_CTRL_PLANE}, \\"extra\\": $extra, \\"peers\\": $(twister2 workers --json)}"',
  'twister2 barrier done',
].join('\n');

interface PortsRec {
  id: number;
  own: Record<string, number>;
  extra: number;
  peers: Array<{ id?: number; workerId?: number; ports: Record<string, number> }> | { workers: Array<{ workerId: number; ports: Record<string, number> }> };
}

/** Every worker saw every peer's spec ports (as the peer itself got them) and its published one. */
function checkPorts(recs: PortsRec[], n: number, names: string[]): void {
  expect(recs.map((r) => r.id).sort()).toEqual([...Array(n).keys()]);
  const byId = new Map(recs.map((r) => [r.id, r]));
  for (const r of recs) {
    expect(Object.keys(r.own).sort()).toEqual([...names].sort());
    const peers = Array.isArray(r.peers) ? r.peers.map((p) => ({ id: p.id!, ports: p.ports })) : r.peers.workers.map((p) => ({ id: p.workerId, ports: p.ports }));
    expect(peers.map((p) => p.id).sort()).toEqual([...Array(n).keys()]);
    for (const p of peers) expect(p.ports).toEqual({ ...byId.get(p.id)!.own, extra: byId.get(p.id)!.extra });
  }
}

describe('local cluster: ports in discovery', () => {
  it('a module worker gets ctx.ports for worker.ports, publishes one more, and sees every peer\'s', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'ports-js', workers: 3, worker: { module: 'w.mjs', ports: ['data', 'ctrl'] } }, { 'w.mjs': MODULE_PORTS });
    const r = await runCli(['submit', job], home);
    expect(r.code, r.stderr).toBe(0);
    checkPorts(testRecords<PortsRec>(r.stdout), 3, ['data', 'ctrl']);
  });

  it('a command worker gets TWISTER2_PORT_<NAME>, publishes with `twister2 ports publish`, and sees every peer\'s in `twister2 workers --json`', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'ports-sh', workers: 2, worker: { command: './w.sh', ports: ['data', 'ctrl-plane'] } }, { 'w.sh': COMMAND_PORTS });
    const r = await runCli(['submit', job], home);
    expect(r.code, r.stderr).toBe(0);
    checkPorts(testRecords<PortsRec>(r.stdout), 2, ['data', 'ctrl-plane']);
  });

  it('refuses bad port names in the spec before anything starts', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'ports-bad', workers: 1, worker: { command: 'true', ports: ['Data', 'x', 'x'] } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('worker.ports');
    expect(r.stderr).toContain('listed twice');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(jobIds(home)).toEqual([]);
  });
});

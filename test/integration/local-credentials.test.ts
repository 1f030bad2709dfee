import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, jobIds, jobProcesses, makeJob, runCli, tempHome, testRecords } from '../helpers/cli.js';
import { expectWorkersHeldOnlyTheWorkerToken } from '../helpers/credentials.js';

describe('local cluster: workers hold a worker token, not the job secret', () => {
  it('refuses a command worker that kills or scales its own job with its token; the job SUCCEEDS', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'attack', workers: 2, worker: { command: [process.execPath, 'attack.mjs'] } }, { 'attack.mjs': fixture('credentials-worker.mjs') });
    const r = await runCli(['submit', job], home);
    const [jobId] = jobIds(home);
    expectWorkersHeldOnlyTheWorkerToken(r, path.join(home, 'jobs', jobId!), 2);
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

import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationError, BarrierTimeoutError } from '../../../src/errors.js';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import { workerTokenOf } from '../../../src/job/worker-environment.js';
import { Channel } from '../../../src/protocol/channel.js';
import { JobMasterClient } from '../../../src/protocol/jobmaster-client.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { noopLauncher, registration } from '../../helpers/registration.js';

const SECRET = 'the-jobs-admin-secret-0123456789';
const WORKER = workerTokenOf(SECRET);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A running job of `n` workers; counts the HTTP requests (an upgrade is one) the job master authenticated. */
async function job(n = 2) {
  const spec = parseSpec({ name: 'chan', workers: n, worker: { command: 'true' } });
  const jm = new JobMaster({ jobId: 'chan-1', spec, launcher: noopLauncher() });
  const requests = { count: 0 };
  const server = new JobMasterServer(jm, SECRET, () => requests.count++);
  cleanups.push(() => server.close());
  const url = await server.listen('127.0.0.1', 0);
  jm.start();
  return { jm, url, requests };
}

function channelClient(url: string, token = WORKER) {
  const client = new JobMasterClient({ url, token, channel: true });
  cleanups.push(() => client.close());
  return client;
}

/** A TCP relay in front of the job master whose connections the test can cut. */
async function relay(target: string) {
  const { port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(port), '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, cut: () => sockets.forEach((s) => s.destroy()) };
}

describe('the channel (protocol 2)', () => {
  it('carries a whole worker life on one connection, answering a later call while a barrier waits', async () => {
    const { jm, url, requests } = await job(2);
    const a = channelClient(url);
    const b = channelClient(url);
    const s0 = (await a.register(registration(0))).session;
    const s1 = (await b.register(registration(1))).session;
    const waiting = a.barrier('start', 0, s0);
    // Worker 0's barrier is open on its connection; its heartbeat and discovery are answered meanwhile.
    expect((await a.heartbeat(0, s0)).jobState).toBe('RUNNING');
    expect((await a.workers({ waitForAll: true, timeoutMs: 1000 })).workers.map((w) => w.workerId)).toEqual([0, 1]);
    expect((await a.publishPorts(0, s0, { data: 5000 })).ports).toEqual({ data: 5000 });
    const [r0, r1] = await Promise.all([waiting, b.barrier('start', 1, s1)]);
    expect(r0).toEqual({ name: 'start', generation: 1, numWorkers: 2 });
    expect(r1.generation).toBe(1);
    await a.complete(0, s0, true);
    await b.complete(1, s1, true);
    expect((await jm.whenEnded()).state).toBe('SUCCEEDED');
    // Two connections, one upgrade each: no call went as an HTTP request of its own.
    expect(requests.count).toBe(2);
  });

  it("answers a job master's refusal with the same error class as HTTP, and the channel stays usable", async () => {
    const { url } = await job(2);
    const c = channelClient(url);
    const s0 = (await c.register(registration(0))).session;
    await expect(c.barrier('b', 0, s0, 50)).rejects.toBeInstanceOf(BarrierTimeoutError);
    await expect(c.heartbeat(0, 'not-the-session')).rejects.toThrow(/session/);
    expect((await c.heartbeat(0, s0)).numWorkers).toBe(2);
  });

  it('refuses a wrong secret as HTTP does, without falling back', async () => {
    const { url, requests } = await job(2);
    const c = channelClient(url, 'x'.repeat(43));
    await expect(c.register(registration(0))).rejects.toBeInstanceOf(AuthenticationError);
    expect(requests.count).toBe(0);
  });

  it('sends a barrier arrival again on a new connection when the connection breaks', async () => {
    const { url } = await job(2);
    const r = await relay(url);
    const a = channelClient(r.url);
    const b = channelClient(url);
    const s0 = (await a.register(registration(0))).session;
    const s1 = (await b.register(registration(1))).session;
    const waiting = a.barrier('b', 0, s0);
    await new Promise((res) => setTimeout(res, 100));
    r.cut();
    await new Promise((res) => setTimeout(res, 300)); // the arrival is sent again after 200 ms
    const [r0, r1] = await Promise.all([waiting, b.barrier('b', 1, s1)]);
    expect([r0.generation, r1.generation]).toEqual([1, 1]);
  });

  it('fails a call that may not be repeated when its connection breaks, naming the job master', async () => {
    const { url } = await job(2);
    const r = await relay(url);
    const a = channelClient(r.url);
    const s0 = (await a.register(registration(0))).session;
    const discovery = a.workers({ waitForAll: true, timeoutMs: 5000 });
    await new Promise((res) => setTimeout(res, 100));
    r.cut();
    await expect(discovery).rejects.toThrow(`cannot reach the job master at ${r.url}: the connection to the job master was closed`);
    expect((await a.heartbeat(0, s0)).numWorkers).toBe(2); // the next call connects again
  });

  it('sends the first calls right behind the upgrade request, without waiting for the 101', async () => {
    let received = '';
    const silent = net.createServer((s) => s.on('data', (d: Buffer) => (received += d.toString())));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => silent.close(() => r())));
    const c = new Channel(`http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { authorization: 'Bearer t' });
    cleanups.push(() => c.close());
    void c.call('register', { workerId: 0 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const [head, rest] = received.split('\r\n\r\n');
    expect(head).toMatch(/^GET \/v1\/channel HTTP\/1.1\r\n/);
    expect(head).not.toMatch(/content-length|transfer-encoding/i);
    expect(rest).toBe('{"id":1,"op":"register","args":{"workerId":0}}\n');
  });

  it('falls back to HTTP requests for a job master that does not upgrade', async () => {
    const { url, requests } = await job(1);
    // A proxy that forwards plain requests only: an upgrade request is answered 404 like any unknown route.
    const proxy = http.createServer((req, res) => {
      if (req.headers.upgrade) return void res.writeHead(404).end('not here');
      const out = http.request(`${url}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(out);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => proxy.close(() => r())));
    cleanups.push(() => proxy.closeAllConnections());
    const c = channelClient(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
    const s0 = (await c.register(registration(0))).session;
    expect((await c.heartbeat(0, s0)).numWorkers).toBe(1);
    expect(requests.count).toBe(2);
  });

  it('names the field of bad arguments, and closes a connection whose framing it cannot trust', async () => {
    const { url } = await job(1);
    const { port } = new URL(url);
    const socket = net.connect(Number(port), '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    socket.setEncoding('utf8');
    let text = '';
    socket.on('data', (c: string) => (text += c));
    const closed = new Promise((r) => socket.once('close', r));
    socket.write(`GET /v1/channel HTTP/1.1\r\nhost: jm\r\nauthorization: Bearer ${WORKER}\r\nconnection: Upgrade\r\nupgrade: twister2-channel\r\n\r\n`);
    socket.write('{"id":1,"op":"heartbeat","args":{"workerId":"zero","session":"s"}}\n{"id":2,"op":"scale","args":{}}\nnot json\n{"id":3,"op":"heartbeat"}\n');
    await closed;
    const frames = text.split('\r\n\r\n')[1]!.trim().split('\n').map((l) => JSON.parse(l) as { id: number | null; error: { code: string; message: string } });
    expect(text).toMatch(/^HTTP\/1.1 101 /);
    expect(frames).toEqual([
      { id: 1, error: { code: 'T2_PROTOCOL', message: expect.stringMatching(/^bad request: workerId: /) } },
      { id: 2, error: { code: 'T2_PROTOCOL', message: 'no such channel operation: scale' } },
      { id: null, error: { code: 'T2_PROTOCOL', message: 'channel closed: a frame that is not {id, op, args} JSON' } },
    ]);
  });

  it("pushes the job's events to a channel that follows them, a snapshot first, ", async () => {
    const { jm, url } = await job(1);
    const events: { type: string; state?: string }[] = [];
    const follower = new Channel(url, { authorization: `Bearer ${WORKER}` }, { onEvent: (e) => events.push(e as (typeof events)[0]) });
    cleanups.push(() => follower.close());
    expect(await follower.call('follow', {})).toEqual({ result: { ok: true } });
    const c = channelClient(url);
    await c.register(registration(0));
    await new Promise((r) => setTimeout(r, 50));
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'worker-state', 'job-state']);
    expect(events[2]).toMatchObject({ type: 'job-state', state: 'RUNNING' });
    jm.kill('enough');
    await new Promise((r) => setTimeout(r, 50));
    expect(events.at(-1)).toMatchObject({ type: 'job-state', state: 'KILLED' });
  });

  it('cuts off a peer that keeps calling but never reads the answers, before they fill the job master', async () => {
    const { jm, url } = await job(1);
    jm.register(registration(0));
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    socket.on('error', () => undefined);
    const closed = new Promise((r) => socket.once('close', r));
    socket.write(`GET /v1/channel HTTP/1.1\r\nhost: jm\r\nauthorization: Bearer ${WORKER}\r\nconnection: Upgrade\r\nupgrade: twister2-channel\r\n\r\n`);
    socket.pause(); // reads nothing from now on
    // About 60 MB of answers (each a list of 1 worker), far beyond the kernel's buffers and the 8 MiB allowed.
    const calls = Array.from({ length: 300_000 }, (_, i) => `{"id":${i},"op":"workers","args":{}}\n`).join('');
    socket.write(calls);
    await closed;
    expect(socket.destroyed).toBe(true);
  });

  it('refuses an upgrade to anything but the channel, and protocol versions it does not speak', async () => {
    const { url } = await job(1);
    const answer = await new Promise<number>((resolve) => {
      const req = http.request(`${url}/v1/channel`, { headers: { authorization: `Bearer ${WORKER}`, connection: 'Upgrade', upgrade: 'websocket' } });
      req.once('response', (res) => resolve(res.statusCode ?? 0));
      req.end();
    });
    expect(answer).toBe(400);
    const v3 = await new Promise<string>((resolve) => {
      const req = http.request(`${url}/v1/channel`, { headers: { authorization: `Bearer ${WORKER}`, 'twister2-protocol': '3', connection: 'Upgrade', upgrade: 'twister2-channel' } });
      req.once('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.once('end', () => resolve(body));
      });
      req.end();
    });
    expect(JSON.parse(v3)).toEqual({ error: { code: 'T2_PROTOCOL', message: 'protocol version 3 is not supported; this job master speaks 1 and 2' } });
  });
});

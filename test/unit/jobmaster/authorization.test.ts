import { afterEach, describe, expect, it } from 'vitest';
import { ForbiddenError } from '../../../src/errors.js';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import { workerTokenOf } from '../../../src/job/worker-environment.js';
import { JobMasterClient } from '../../../src/protocol/jobmaster-client.js';
import { JOB_TOKEN_HEADER } from '../../../src/protocol/messages.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { noopLauncher, registration } from '../../helpers/registration.js';

const SECRET = 'the-jobs-admin-secret-0123456789';
const WORKER = workerTokenOf(SECRET);
const servers: JobMasterServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});


/** A running job of 2 workers (and a driver); worker 0 registered (its session given), worker 1 not yet. */
async function job() {
  const spec = parseSpec({ name: 'auth', workers: 2, worker: { command: 'true' }, driver: { module: 'd.mjs' } });
  const jm = new JobMaster({ jobId: 'auth-1', spec, launcher: noopLauncher() });
  const server = new JobMasterServer(jm, SECRET);
  servers.push(server);
  const url = await server.listen('127.0.0.1', 0);
  jm.start();
  const { session } = jm.register(registration(0));
  return { jm, url, session };
}

type Route = { name: string; method: 'GET' | 'POST'; path: string; body?: (session: string) => unknown; admin: boolean };

/** Every route of the v1 protocol; `admin`: only the job's admin secret may use it. */
const ROUTES: Route[] = [
  { name: 'status', method: 'GET', path: '/v1/job', admin: true },
  { name: 'scale', method: 'POST', path: '/v1/job/scale', body: () => ({ workers: 100_000 }), admin: true },
  { name: 'kill', method: 'POST', path: '/v1/job/kill', body: () => ({ reason: 'a worker tried' }), admin: true },
  { name: 'events', method: 'GET', path: '/v1/events', admin: false },
  { name: 'register', method: 'POST', path: '/v1/workers', body: () => registration(1), admin: false },
  { name: 'discovery', method: 'GET', path: '/v1/workers', admin: false },
  { name: 'discovery wait', method: 'GET', path: '/v1/workers?wait=all&timeoutMs=50', admin: false },
  { name: 'heartbeat', method: 'POST', path: '/v1/workers/0/heartbeat', body: (session) => ({ session }), admin: false },
  { name: 'ports', method: 'POST', path: '/v1/workers/0/ports', body: (session) => ({ session, ports: { data: 5000 } }), admin: false },
  { name: 'setup-failed', method: 'POST', path: '/v1/workers/1/setup-failed', body: () => ({ message: 'x' }), admin: false },
  { name: 'complete', method: 'POST', path: '/v1/workers/0/complete', body: (session) => ({ session, ok: true }), admin: false },
  { name: 'barrier', method: 'POST', path: '/v1/barriers/b', body: (session) => ({ workerId: 0, session, timeoutMs: 50 }), admin: false },
  { name: 'message to the driver', method: 'POST', path: '/v1/workers/0/messages', body: (session) => ({ session, id: 'm1', data: { n: 1 } }), admin: false },
  { name: 'inbox', method: 'POST', path: '/v1/workers/0/inbox', body: (session) => ({ session, timeoutMs: 0 }), admin: false },
];

const CALLERS = {
  admin: { authorization: `Bearer ${SECRET}` },
  worker: { authorization: `Bearer ${WORKER}` },
  wrong: { authorization: `Bearer ${'x'.repeat(43)}` },
  none: {},
} as const;

async function call(url: string, route: Route, headers: Record<string, string>, session: string): Promise<{ status: number; code?: string }> {
  const ac = new AbortController();
  const res = await fetch(url + route.path, {
    method: route.method,
    headers: { ...headers, 'content-type': 'application/json' },
    ...(route.body ? { body: JSON.stringify(route.body(session)) } : {}),
    signal: ac.signal,
  });
  if (res.headers.get('content-type') === 'text/event-stream') {
    ac.abort();
    return { status: res.status };
  }
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, ...(body.error ? { code: body.error.code } : {}) };
}

describe('the job master authorises by token: the admin secret opens every route, the worker token only the workers\'', () => {
  for (const route of ROUTES) {
    for (const [caller, headers] of Object.entries(CALLERS)) {
      it(`${route.name} (${route.method} ${route.path}) with ${caller}`, async () => {
        const { jm, url, session } = await job();
        const r = await call(url, route, headers, session);
        if (caller === 'wrong' || caller === 'none') {
          expect(r).toEqual({ status: 401, code: 'T2_UNAUTHENTICATED' });
          return;
        }
        if (caller === 'worker' && route.admin) {
          expect(r).toEqual({ status: 403, code: 'T2_FORBIDDEN' });
          // Refused before anything changed: the job runs on at its size.
          expect(jm.state).toBe('STARTING');
          expect(jm.status().numWorkers).toBe(2);
          return;
        }
        // Allowed: whatever the route itself answers, never an authorisation error.
        expect(r.code ?? 'OK').not.toMatch(/T2_UNAUTHENTICATED|T2_FORBIDDEN/);
        expect(r.status === 200 || r.code === 'T2_DISCOVERY_TIMEOUT' || r.code === 'T2_BARRIER_TIMEOUT').toBe(true);
      });
    }
  }

  it('takes the worker token in the proxy header too, and the client maps 403 to ForbiddenError', async () => {
    const { jm, url } = await job();
    const viaHeader = await fetch(`${url}/v1/job/kill`, { method: 'POST', headers: { [JOB_TOKEN_HEADER]: WORKER } });
    expect(viaHeader.status).toBe(403);
    const worker = new JobMasterClient({ url, token: WORKER });
    await expect(worker.kill()).rejects.toBeInstanceOf(ForbiddenError);
    await expect(worker.scale(100_000)).rejects.toBeInstanceOf(ForbiddenError);
    await expect(worker.status()).rejects.toBeInstanceOf(ForbiddenError);
    expect((await worker.workers()).workers.map((w) => w.workerId)).toEqual([0]);
    expect(jm.state).toBe('STARTING');
  });

  it('derives the worker token from the secret: stable, different per secret, and not the secret', () => {
    expect(workerTokenOf(SECRET)).toBe(WORKER);
    expect(WORKER).not.toBe(SECRET);
    expect(workerTokenOf(`${SECRET}x`)).not.toBe(WORKER);
    expect(WORKER).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('ports in discovery', () => {
  it('adds published ports to the worker\'s entry; peers see them', async () => {
    const { url, session } = await job();
    const worker = new JobMasterClient({ url, token: WORKER });
    await worker.publishPorts(0, session, { data: 5000 });
    await worker.publishPorts(0, session, { ctrl: 5001, data: 5002 });
    expect((await worker.workers()).workers[0]!.ports).toEqual({ data: 5002, ctrl: 5001 });
  });

  it('refuses bad names, bad ports and a stale session', async () => {
    const { url, session } = await job();
    const post = (body: unknown) => fetch(`${url}/v1/workers/0/ports`, { method: 'POST', headers: { authorization: `Bearer ${WORKER}` }, body: JSON.stringify(body) });
    expect((await post({ session, ports: { Data: 5000 } })).status).toBe(400);
    expect((await post({ session, ports: { data: 70000 } })).status).toBe(400);
    expect((await post({ session, ports: { data: '5000' } })).status).toBe(400);
    const stale = await post({ session: 'nope', ports: { data: 5000 } });
    expect(stale.status).toBe(409);
  });
});

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackageServer, parseRange } from '../../../../src/uploader/http/package-server.js';
import { PutResponseSchema } from '../../../../src/uploader/http/protocol.js';
import { ADMIN, listTree, raw, sha256, startServer, stopServers, waitFor } from './helpers.js';

afterEach(stopServers);

async function put(url: string, name: string, body: Buffer, token = ADMIN) {
  const r = await raw(url, 'PUT', `/packages/${name}`, { token, body });
  return { ...r, json: r.status < 300 ? PutResponseSchema.parse(JSON.parse(r.body.toString())) : undefined };
}

describe('package server: round trip', () => {
  it('stores with PUT, serves with GET and HEAD, removes with DELETE', async () => {
    const { url, dir } = await startServer();
    const data = randomBytes(200_000);
    const r = await put(url, 'job-1.tar.gz', data);
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ name: 'job-1.tar.gz', size: data.length, sha256: sha256(data) });
    expect(r.json!.readToken).not.toBe(ADMIN);
    expect(readdirSync(dir).sort()).toEqual(['job-1.tar.gz', 'job-1.tar.gz.meta.json']);

    for (const token of [ADMIN, r.json!.readToken]) {
      const g = await raw(url, 'GET', '/packages/job-1.tar.gz', { token });
      expect(g.status).toBe(200);
      expect(sha256(g.body)).toBe(sha256(data));
      expect(g.headers.etag).toBe(`"${sha256(data)}"`);
      expect(g.headers['accept-ranges']).toBe('bytes');
      expect(g.headers['content-length']).toBe(String(data.length));

      const h = await raw(url, 'HEAD', '/packages/job-1.tar.gz', { token });
      expect(h.status).toBe(200);
      expect(h.body.length).toBe(0);
      expect(h.headers['content-length']).toBe(String(data.length));
      expect(h.headers.etag).toBe(`"${sha256(data)}"`);
    }

    const d = await raw(url, 'DELETE', '/packages/job-1.tar.gz', { token: ADMIN });
    expect(d.status).toBe(204);
    expect(readdirSync(dir)).toEqual([]);
    expect((await raw(url, 'GET', '/packages/job-1.tar.gz', { token: ADMIN })).status).toBe(404);
    expect((await raw(url, 'HEAD', '/packages/job-1.tar.gz', { token: ADMIN })).status).toBe(404);
    expect((await raw(url, 'DELETE', '/packages/job-1.tar.gz', { token: ADMIN })).status).toBe(404);
    // Its read token died with it.
    expect((await raw(url, 'GET', '/packages/job-1.tar.gz', { token: r.json!.readToken })).status).toBe(401);
  });

  it('an overwrite answers 200 with a new read token; the old one stops working', async () => {
    const { url } = await startServer();
    const first = await put(url, 'p', Buffer.from('one'));
    const second = await put(url, 'p', Buffer.from('two!'));
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.json!.readToken).not.toBe(first.json!.readToken);
    expect((await raw(url, 'GET', '/packages/p', { token: first.json!.readToken })).status).toBe(401);
    const g = await raw(url, 'GET', '/packages/p', { token: second.json!.readToken });
    expect(g.body.toString()).toBe('two!');
    expect(g.headers.etag).toBe(`"${sha256('two!')}"`);
  });

  it('stores and serves an empty package', async () => {
    const { url } = await startServer();
    const r = await put(url, 'empty', Buffer.alloc(0));
    expect(r.json).toMatchObject({ size: 0, sha256: sha256('') });
    const g = await raw(url, 'GET', '/packages/empty', { token: r.json!.readToken });
    expect(g.status).toBe(200);
    expect(g.body.length).toBe(0);
  });
});

describe('package server: authentication', () => {
  const methods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
  const wrong: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token-at-all-000' }],
    ['the admin token with one more character', { authorization: `Bearer ${ADMIN}x` }],
    ['an empty bearer token', { authorization: 'Bearer ' }],
    ['another scheme', { authorization: `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}` }],
  ];

  it('answers 401 to every method without the right token, the same way whatever was wrong', async () => {
    const { url, dir } = await startServer();
    await put(url, 'pkg', Buffer.from('content'));
    const bodies = new Set<string>();
    for (const method of methods) {
      for (const [, headers] of wrong) {
        const r = await raw(url, method, '/packages/pkg', { headers, ...(method === 'PUT' ? { body: Buffer.from('evil') } : {}) });
        expect(r.status, `${method} with ${JSON.stringify(headers)}`).toBe(401);
        expect(r.headers['www-authenticate']).toBe('Bearer');
        if (method !== 'HEAD') bodies.add(r.body.toString());
      }
    }
    expect(bodies.size).toBe(1);
    const g = await raw(url, 'GET', '/packages/pkg', { token: ADMIN });
    expect(g.body.toString()).toBe('content');
    expect(readdirSync(dir).sort()).toEqual(['pkg', 'pkg.meta.json']);
  });

  it('answers 401, not 404 or 400, to strangers asking for missing packages, bad names or other routes', async () => {
    const { url } = await startServer();
    for (const p of ['/packages/missing', '/packages/..', '/nowhere', '/_stats']) {
      expect((await raw(url, 'GET', p, { token: 'not-the-token-at-all-000' })).status).toBe(401);
    }
  });

  it('a read token can GET and HEAD its package but not PUT, DELETE or read the stats', async () => {
    const { url, dir } = await startServer();
    const { json } = await put(url, 'pkg', Buffer.from('original'));
    const token = json!.readToken;
    expect((await raw(url, 'GET', '/packages/pkg', { token })).status).toBe(200);
    expect((await raw(url, 'HEAD', '/packages/pkg', { token })).status).toBe(200);
    expect((await raw(url, 'PUT', '/packages/pkg', { token, body: Buffer.from('replaced') })).status).toBe(401);
    expect((await raw(url, 'PUT', '/packages/other', { token, body: Buffer.from('new') })).status).toBe(401);
    expect((await raw(url, 'DELETE', '/packages/pkg', { token })).status).toBe(401);
    expect((await raw(url, 'GET', '/_stats', { token })).status).toBe(401);
    expect((await raw(url, 'GET', '/packages/pkg', { token })).body.toString()).toBe('original');
    expect(readdirSync(dir).sort()).toEqual(['pkg', 'pkg.meta.json']);
  });

  it("package A's read token does not open package B", async () => {
    const { url } = await startServer();
    const a = await put(url, 'a', Buffer.from('A'));
    const b = await put(url, 'b', Buffer.from('B'));
    expect((await raw(url, 'GET', '/packages/b', { token: a.json!.readToken })).status).toBe(401);
    expect((await raw(url, 'HEAD', '/packages/b', { token: a.json!.readToken })).status).toBe(401);
    expect((await raw(url, 'GET', '/packages/a', { token: b.json!.readToken })).status).toBe(401);
    expect((await raw(url, 'GET', '/packages/a', { token: a.json!.readToken })).body.toString()).toBe('A');
  });

  it('keeps only the digest of the read token in the sidecar, and no token in the logs', async () => {
    const { url, dir, logs } = await startServer();
    const { json } = await put(url, 'pkg', Buffer.from('x'));
    await raw(url, 'GET', '/packages/pkg', { token: json!.readToken });
    await raw(url, 'GET', '/packages/pkg?token=whatever', { token: 'wrong-token-wrong-token' });
    const sidecar = readFileSync(path.join(dir, 'pkg.meta.json'), 'utf8');
    expect(sidecar).not.toContain(json!.readToken);
    expect(sidecar).not.toContain(ADMIN);
    expect(JSON.parse(sidecar)).toMatchObject({ sha256: sha256('x'), readTokenSha256: sha256(json!.readToken) });
    await waitFor('the log lines', () => logs.length >= 3);
    expect(logs.join('\n')).toContain('GET /packages/pkg 200');
    for (const secret of [ADMIN, json!.readToken, 'wrong-token-wrong-token', 'whatever']) expect(logs.join('\n')).not.toContain(secret);
  });

  it('refuses a server token shorter than 16 characters', async () => {
    await expect(new PackageServer().start({ dir: '/tmp', token: 'short' })).rejects.toMatchObject({ code: 'T2_USAGE' });
  });
});

describe('package server: ranges', () => {
  const data = randomBytes(1000);

  it('serves a single byte range with 206 and Content-Range', async () => {
    const { url } = await startServer();
    const { json } = await put(url, 'r', data);
    const token = json!.readToken;
    const cases: [string, number, number][] = [
      ['bytes=10-19', 10, 19],
      ['bytes=990-', 990, 999],
      ['bytes=-100', 900, 999],
      ['bytes=-5000', 0, 999],
      ['bytes=500-100000', 500, 999],
      ['bytes=0-0', 0, 0],
    ];
    for (const [range, start, end] of cases) {
      const r = await raw(url, 'GET', '/packages/r', { token, headers: { range } });
      expect(r.status, range).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/1000`);
      expect(r.headers['content-length']).toBe(String(end - start + 1));
      expect(r.headers.etag).toBe(`"${sha256(data)}"`);
      expect(r.body.equals(data.subarray(start, end + 1)), range).toBe(true);
    }
  });

  it('answers 416 to unsatisfiable ranges and ignores ones it does not read', async () => {
    const { url } = await startServer();
    await put(url, 'r', data);
    for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0']) {
      const r = await raw(url, 'GET', '/packages/r', { token: ADMIN, headers: { range } });
      expect(r.status, range).toBe(416);
      expect(r.headers['content-range']).toBe('bytes */1000');
    }
    for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-3', 'bytes=-']) {
      const r = await raw(url, 'GET', '/packages/r', { token: ADMIN, headers: { range } });
      expect(r.status, range).toBe(200);
      expect(r.body.equals(data)).toBe(true);
    }
  });

  it('parseRange', () => {
    expect(parseRange(undefined, 10)).toBeUndefined();
    expect(parseRange('bytes=2-4', 10)).toEqual({ start: 2, end: 4 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange('bytes=-1', 0)).toBe('unsatisfiable');
  });
});

describe('package server: size limit and interrupted uploads', () => {
  it('accepts exactly maxBytes and refuses more with 413, leaving nothing behind', async () => {
    const { url, dir } = await startServer({ maxBytes: 10_000 });
    expect((await put(url, 'fits', randomBytes(10_000))).status).toBe(201);
    await raw(url, 'DELETE', '/packages/fits', { token: ADMIN });

    // Declared too large: refused before the body is read.
    const declared = await put(url, 'big', randomBytes(50_000));
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body.toString())).toMatchObject({ error: { code: 'T2_TOO_LARGE' } });

    // Chunked, so the server only finds out while streaming.
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(url);
      const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: '/packages/big2', headers: { authorization: `Bearer ${ADMIN}` }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write(randomBytes(4096));
      req.end();
    });
    expect(chunked).toBe(413);
    await waitFor('an empty store', () => readdirSync(dir).length === 0);
  });

  it('removes the temporary file when the client goes away mid-upload', async () => {
    const { url, dir, server } = await startServer();
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: '/packages/cut', headers: { authorization: `Bearer ${ADMIN}`, 'content-length': '10000000' }, agent: false });
    req.on('error', () => undefined);
    req.write(randomBytes(1_000_000));
    await waitFor('the temporary file', () => readdirSync(dir).length > 0);
    req.destroy();
    await waitFor('an empty store', () => readdirSync(dir).length === 0);
    expect(server.stats().puts).toBe(0);
    expect((await raw(url, 'GET', '/packages/cut', { token: ADMIN })).status).toBe(404);
  });
});

describe('package server: names and paths', () => {
  const attempts = [
    '/packages/..%2f..%2fetc%2fpasswd',
    '/packages/%2e%2e',
    '/packages/%2e%2e%2fescape',
    '/packages/a%2fb',
    '/packages/..',
    '/packages/../escape',
    '/packages/../../escape',
    '/packages/a/../../escape',
    '/packages/a\\b',
    '/packages/..\\escape',
    '/packages/%5c..%5cescape',
    '/packages//etc/passwd',
    '/packages/%2fetc%2fpasswd',
    '/packages/',
    '/packages/.hidden',
    '/packages/a..b',
    '/packages/pkg.meta.json',
    '/packages/' + 'x'.repeat(202),
    '/../escape',
    '/packages/..%00',
  ];

  it('refuses traversal attempts and odd names with 400 or 404, and writes nothing anywhere', async () => {
    const { url, root } = await startServer();
    await put(url, 'pkg', Buffer.from('x'));
    const before = listTree(root);
    for (const p of attempts) {
      for (const method of ['PUT', 'GET', 'HEAD', 'DELETE']) {
        const r = await raw(url, method, p, { token: ADMIN, ...(method === 'PUT' ? { body: Buffer.from('evil') } : {}) });
        expect([400, 404], `${method} ${p}`).toContain(r.status);
        if (method === 'GET' && r.status === 400) expect(JSON.parse(r.body.toString())).toMatchObject({ error: { code: 'T2_PROTOCOL' } });
      }
    }
    expect(listTree(root)).toEqual(before);
    // Only the top level: a recursive walk of the temp directory raced with other processes' files (and took 10 s).
    expect(readdirSync(path.dirname(root)).filter((f) => f === 'escape' || f === 'passwd')).toEqual([]);
  });

  it('accepts the names the pattern allows', async () => {
    const { url } = await startServer();
    for (const name of ['a', 'Job_1-2.tar.gz', '0', 'x'.repeat(201)]) expect((await put(url, name, Buffer.from(name))).status, name).toBe(201);
  });
});

describe('package server: stats', () => {
  it('counts GETs per package (not HEADs), PUTs and DELETEs, also over /_stats', async () => {
    const { url, server } = await startServer();
    const a = await put(url, 'a', Buffer.from('A'));
    await put(url, 'b', Buffer.from('BB'));
    for (let i = 0; i < 3; i++) await raw(url, 'GET', '/packages/a', { token: a.json!.readToken });
    await raw(url, 'GET', '/packages/a', { token: ADMIN, headers: { range: 'bytes=0-0' } });
    await raw(url, 'HEAD', '/packages/a', { token: ADMIN });
    await raw(url, 'GET', '/packages/b', { token: ADMIN });
    await raw(url, 'GET', '/packages/b', { token: 'wrong-token-wrong-token' });
    await raw(url, 'DELETE', '/packages/b', { token: ADMIN });
    const expected = { gets: { a: 4, b: 1 }, puts: 2, deletes: 1 };
    expect(server.stats()).toEqual(expected);
    const r = await raw(url, 'GET', '/_stats', { token: ADMIN });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual(expected);
  });

  it('copes with package names that are also Object.prototype keys', async () => {
    const { url, server } = await startServer();
    await put(url, 'constructor', Buffer.from('c'));
    await raw(url, 'GET', '/packages/constructor', { token: ADMIN });
    expect(server.stats().gets).toEqual({ constructor: 1 });
  });
});

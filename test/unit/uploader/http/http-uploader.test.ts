import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import got from 'got';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UploadError } from '../../../../src/errors.js';
import { HttpUploader } from '../../../../src/uploader/http/http-uploader.js';
import { PackageRefSchema, type PackageToUpload } from '../../../../src/uploader/uploader.js';
import { ADMIN, raw, sha256, startServer, stopServers, waitFor } from './helpers.js';

const others: http.Server[] = [];
afterEach(async () => {
  await stopServers();
  await Promise.all(others.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function makePackage(jobId: string, size: number): PackageToUpload & { data: Buffer } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-upl-'));
  const data = randomBytes(size);
  const file = path.join(dir, 'package.tar.gz');
  writeFileSync(file, data);
  return { jobId, file, sha256: sha256(data), size, data };
}

let five: ReturnType<typeof makePackage>;
beforeAll(() => {
  five = makePackage('job-5mb', 5 * 1024 * 1024);
});

describe('HttpUploader against the package server', () => {
  it('uploads 5 MB with progress up to the size; the ref downloads byte-identical with its read token', async () => {
    const { url, dir } = await startServer();
    const uploader = new HttpUploader({ url: `${url}/`, token: ADMIN });
    const progress: number[] = [];
    const ref = await uploader.upload(five, { onProgress: (sent, total) => (expect(total).toBe(five.size), progress.push(sent)) });

    expect(PackageRefSchema.parse(ref)).toEqual(ref);
    expect(ref).toMatchObject({ kind: 'http', url: `${url}/packages/job-5mb.tar.gz`, sha256: five.sha256, size: five.size });
    if (ref.kind !== 'http') throw new Error('unreachable');
    expect(ref.token).toBeTruthy();
    expect(ref.token).not.toBe(ADMIN);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toBe(five.size);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(readdirSync(dir).sort()).toEqual(['job-5mb.tar.gz', 'job-5mb.tar.gz.meta.json']);

    const body = await got(ref.url, { headers: { authorization: `Bearer ${ref.token}` }, responseType: 'buffer' }).buffer();
    expect(body.equals(five.data)).toBe(true);
  });

  it('rejects when aborted mid-upload and leaves nothing stored', async () => {
    const { url, dir, server } = await startServer();
    const pkg = makePackage('job-abort', 20 * 1024 * 1024);
    const ac = new AbortController();
    const uploader = new HttpUploader({ url, token: ADMIN });
    let last = 0;
    const p = uploader.upload(pkg, {
      signal: ac.signal,
      onProgress: (sent) => {
        last = sent;
        if (sent >= 1024 * 1024) ac.abort(new Error('test says stop'));
      },
    });
    await expect(p).rejects.toThrow(UploadError);
    await expect(p).rejects.toThrow(/aborted \(test says stop\)/);
    expect(last).toBeLessThan(pkg.size);
    await waitFor('an empty store', () => readdirSync(dir).length === 0);
    expect(server.stats().puts).toBe(0);
    expect((await raw(url, 'HEAD', '/packages/job-abort.tar.gz', { token: ADMIN })).status).toBe(404);
    // Nothing was stored, so there is nothing to delete.
    await uploader.delete();
  });

  it('delete() removes the package, and a second delete() is fine', async () => {
    const { url, dir, server } = await startServer();
    const uploader = new HttpUploader({ url, token: ADMIN });
    const ref = await uploader.upload(five);
    await uploader.delete();
    expect(readdirSync(dir)).toEqual([]);
    expect(server.stats().deletes).toBe(1);
    expect((await raw(url, 'GET', new URL(ref.kind === 'http' ? ref.url : '').pathname, { token: ADMIN })).status).toBe(404);
    await uploader.delete();
    // Gone behind its back: a 404 is not an error either.
    const again = new HttpUploader({ url, token: ADMIN });
    await again.upload(five);
    await raw(url, 'DELETE', '/packages/job-5mb.tar.gz', { token: ADMIN });
    await again.delete();
  });

  it('refuses a package whose stored sha256 differs, and removes what it stored', async () => {
    const { url, dir } = await startServer();
    const wrong = { ...five, sha256: 'f'.repeat(64) };
    await expect(new HttpUploader({ url, token: ADMIN }).upload(wrong)).rejects.toThrow(/sha256/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names the URL and the status, never the token, when the token is wrong', async () => {
    const { url } = await startServer();
    const token = 'a-wrong-admin-token-for-this-test';
    const err = (await new HttpUploader({ url, token }).upload(five).catch((e: unknown) => e)) as UploadError;
    expect(err).toBeInstanceOf(UploadError);
    expect(err).toMatchObject({ code: 'T2_UPLOAD', status: 401, url: `${url}/packages/job-5mb.tar.gz` });
    expect(err.message).toContain(`${url}/packages/job-5mb.tar.gz`);
    expect(err.message).toContain('401');
    expect(inspect(err, { depth: 10 })).not.toContain(token);
  });

  it('reports 413 when the package is over the server limit', async () => {
    const { url, dir } = await startServer({ maxBytes: 1024 * 1024 });
    await expect(new HttpUploader({ url, token: ADMIN }).upload(five)).rejects.toMatchObject({ code: 'T2_UPLOAD', status: 413 });
    await waitFor('an empty store', () => readdirSync(dir).length === 0);
  });
});

describe('HttpUploader against any server that accepts PUT', () => {
  async function plainServer(lengthOnHead?: number) {
    const stored = new Map<string, Buffer>();
    const s = http.createServer((req, res) => {
      const key = req.url ?? '';
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          stored.set(key, Buffer.concat(chunks));
          res.writeHead(201, { 'content-type': 'text/plain' }).end('created\n');
        });
        return;
      }
      const body = stored.get(key);
      if (!body) return void res.writeHead(404).end();
      if (req.method === 'HEAD') return void res.writeHead(200, { 'content-length': lengthOnHead ?? body.length }).end();
      if (req.method === 'DELETE') return void (stored.delete(key), res.writeHead(204).end());
      res.writeHead(200).end(body);
    });
    others.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/dav`, stored };
  }

  it('returns a ref without a token; the read access is that server\'s business', async () => {
    const { url, stored } = await plainServer();
    const uploader = new HttpUploader({ url, token: ADMIN });
    const ref = await uploader.upload(five);
    expect(ref).toEqual({ kind: 'http', url: `${url}/packages/job-5mb.tar.gz`, sha256: five.sha256, size: five.size });
    expect(stored.get('/dav/packages/job-5mb.tar.gz')?.equals(five.data)).toBe(true);
    await uploader.delete();
    expect(stored.size).toBe(0);
  });

  it('refuses the upload when the server reports another size on HEAD', async () => {
    const { url } = await plainServer(12);
    await expect(new HttpUploader({ url, token: ADMIN }).upload(five)).rejects.toThrow(/holds 12 bytes/);
  });

  it('sends no byte of the body when the server refuses the upload on its headers (Expect: 100-continue)', async () => {
    let received = 0;
    const s = http.createServer();
    s.on('checkContinue', (req, res) => {
      req.on('data', (c: Buffer) => (received += c.length));
      res.writeHead(413, { connection: 'close' }).end();
    });
    others.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    await expect(new HttpUploader({ url, token: ADMIN }).upload(five)).rejects.toMatchObject({ code: 'T2_UPLOAD', status: 413 });
    expect(received).toBe(0);
  });

  it('sends the body anyway to a server that never answers 100 Continue', async () => {
    // A bare HTTP/1.1 server that ignores Expect: it reads the headers and Content-Length bytes, then answers.
    const bodies: Buffer[] = [];
    const s = net.createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length - end - 4 < length) return;
        if (head.startsWith('PUT ')) bodies.push(buf.subarray(end + 4, end + 4 + length));
        sock.end(head.startsWith('PUT ') ? 'HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
      const ref = await new HttpUploader({ url, token: ADMIN }).upload(five);
      expect(ref).toMatchObject({ kind: 'http', size: five.size });
      expect(bodies.length).toBe(1);
      expect(bodies[0]!.equals(five.data)).toBe(true);
    } finally {
      await new Promise((r) => s.close(r));
    }
  });
});

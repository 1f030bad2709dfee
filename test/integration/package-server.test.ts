import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import got from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpUploader } from '../../src/uploader/http/http-uploader.js';
import { CLI, ROOT } from '../helpers/cli.js';

/** `twister2 package-server` as its own process, through the built CLI. */
const TOKEN = 'integration-package-server-token';

interface Running {
  stdout: () => string;
  stderr: () => string;
  closed: Promise<number | null>;
  kill: (sig: NodeJS.Signals) => void;
  pid: number;
}

const children: Running[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function startServer(args: { dir: string; host?: string; port?: number; maxSize?: string }, env: NodeJS.ProcessEnv): Running {
  const a = { host: '127.0.0.1', port: 0, maxSize: '2Gi', ...args };
  const base = { ...process.env };
  delete base.TWISTER2_PACKAGE_SERVER_TOKEN;
  const argv = [CLI, 'package-server', '--dir', a.dir, '--host', a.host, '--port', String(a.port), '--max-size', a.maxSize];
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const r: Running = { stdout: () => stdout, stderr: () => stderr, closed, kill: (sig) => void child.kill(sig), pid: child.pid ?? 0 };
  children.push(r);
  return r;
}

async function listening(r: Running): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /listening on (http:\/\/\S+), storing in /.exec(r.stdout());
    if (m) return m[1]!;
    if (Date.now() > deadline) throw new Error(`no listening line; stderr: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

const tmp = (prefix: string) => mkdtempSync(path.join(os.tmpdir(), prefix));

describe('twister2 package-server', () => {
  it('refuses to start without a token, with a short token or a bad --max-size (exit 2)', async () => {
    const dir = path.join(tmp('t2-ps-'), 'store');
    const missing = startServer({ dir }, {});
    expect(await missing.closed).toBe(2);
    expect(missing.stderr()).toContain('TWISTER2_PACKAGE_SERVER_TOKEN');

    const short = startServer({ dir }, { TWISTER2_PACKAGE_SERVER_TOKEN: 'short-token' });
    expect(await short.closed).toBe(2);
    expect(short.stderr()).toMatch(/at least 16 characters/);
    expect(short.stderr()).not.toContain('short-token');

    const size = startServer({ dir, maxSize: 'lots' }, { TWISTER2_PACKAGE_SERVER_TOKEN: TOKEN });
    expect(await size.closed).toBe(2);
    expect(size.stderr()).toContain('--max-size');
    expect(existsSync(dir)).toBe(false);
  });

  it('creates its directory, serves uploads, enforces --max-size, logs no token and stops on SIGTERM with 0', async () => {
    const dir = path.join(tmp('t2-ps-'), 'new', 'store');
    const server = startServer({ dir, maxSize: '64Ki' }, { TWISTER2_PACKAGE_SERVER_TOKEN: TOKEN });
    const url = await listening(server);
    expect(server.stdout()).toBe(`twister2 package-server listening on ${url}, storing in ${dir}\n`);
    expect(existsSync(dir)).toBe(true);

    const data = randomBytes(60 * 1024);
    const file = path.join(tmp('t2-ps-pkg-'), 'p.tar.gz');
    writeFileSync(file, data);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const uploader = new HttpUploader({ url, token: TOKEN });
    const ref = await uploader.upload({ jobId: 'job-int', file, sha256, size: data.length });
    if (ref.kind !== 'http' || !ref.token) throw new Error('expected an http ref with a read token');
    const body = await got(ref.url, { headers: { authorization: `Bearer ${ref.token}` } }).buffer();
    expect(body.equals(data)).toBe(true);

    const big = path.join(tmp('t2-ps-pkg-'), 'big.tar.gz');
    writeFileSync(big, randomBytes(65 * 1024));
    await expect(new HttpUploader({ url, token: TOKEN }).upload({ jobId: 'job-big', file: big, sha256, size: 65 * 1024 })).rejects.toMatchObject({ status: 413 });

    const stats = await got(`${url}/_stats`, { headers: { authorization: `Bearer ${TOKEN}` } }).json();
    expect(stats).toEqual({ gets: { 'job-int.tar.gz': 1 }, puts: 1, deletes: 0 });
    await uploader.delete();
    expect(readdirSync(dir)).toEqual([]);

    server.kill('SIGTERM');
    expect(await server.closed).toBe(0);
    expect(server.stderr()).toContain('PUT /packages/job-int.tar.gz 201');
    for (const secret of [TOKEN, ref.token]) {
      expect(server.stderr()).not.toContain(secret);
      expect(server.stdout()).not.toContain(secret);
    }
  });

  it('stops on SIGINT with 0 even while an upload is open, leaving no temporary file', async () => {
    const dir = tmp('t2-ps-');
    const server = startServer({ dir }, { TWISTER2_PACKAGE_SERVER_TOKEN: TOKEN });
    const url = await listening(server);
    const u = new URL(url);
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: '/packages/slow', headers: { authorization: `Bearer ${TOKEN}` } });
      req.on('error', () => resolve());
      req.write(randomBytes(1024), (err) => (err ? reject(err) : setTimeout(resolve, 200)));
    });
    server.kill('SIGINT');
    expect(await server.closed).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('exits 2 naming the address when the port is taken', async () => {
    const first = startServer({ dir: tmp('t2-ps-') }, { TWISTER2_PACKAGE_SERVER_TOKEN: TOKEN });
    const port = Number(new URL(await listening(first)).port);
    const second = startServer({ dir: tmp('t2-ps-'), port }, { TWISTER2_PACKAGE_SERVER_TOKEN: TOKEN });
    expect(await second.closed).toBe(2);
    expect(second.stderr()).toContain(`127.0.0.1:${port}`);
    expect(second.stderr()).toMatch(/EADDRINUSE/);
  });
});

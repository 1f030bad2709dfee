import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PackageServer, type PackageServerOptions } from '../../../../src/uploader/http/package-server.js';

export const ADMIN = 'admin-token-for-the-unit-tests-0123456789';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RawOptions {
  token?: string | undefined;
  body?: Buffer | undefined;
  headers?: Record<string, string>;
}

/** A request with the path sent exactly as written: fetch and got would normalise `..` and `%2e%2e` away. */
export function raw(base: string, method: string, rawPath: string, opts: RawOptions = {}): Promise<RawResponse> {
  const u = new URL(base);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body) headers['content-length'] = String(opts.body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: rawPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface Started {
  server: PackageServer;
  url: string;
  /** The storage directory, inside `root`, so writes outside it can be seen. */
  dir: string;
  root: string;
  logs: string[];
}

const running: PackageServer[] = [];

export async function startServer(opts: Partial<PackageServerOptions> = {}): Promise<Started> {
  const root = mkdtempSync(path.join(os.tmpdir(), 't2-pkgsrv-'));
  const dir = path.join(root, 'store');
  mkdirSync(dir);
  const logs: string[] = [];
  const server = new PackageServer();
  running.push(server);
  const url = await server.start({ dir, token: ADMIN, log: (l) => logs.push(l), ...opts });
  return { server, url, dir, root, logs };
}

export async function stopServers(): Promise<void> {
  await Promise.all(running.splice(0).map((s) => s.close()));
}

/** Everything under `root`, as relative paths. */
export function listTree(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).sort();
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

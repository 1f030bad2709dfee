import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../../errors.js';
import { HttpError, linger, send, toHttpError, tooLarge, unauthorized } from './http-answers.js';
import { PACKAGES_PREFIX, bearerToken, packageFileIn, parseRange, pathOf } from './package-request.js';
import { PackageStore } from './package-store.js';
import { isValidPackageName, type PackageServerStats, type PutResponse } from './protocol.js';
import { receiveBody } from './request-body.js';

export type { PackageServerStats } from './protocol.js';
export { parseRange } from './package-request.js';

export interface PackageServerOptions {
  /** Where packages are stored; created if missing. */
  dir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The admin token: may upload, download, delete and read the stats. At least 16 characters. */
  token: string;
  /** The largest package accepted; larger uploads get 413. Default 2 GiB. */
  maxBytes?: number;
  /** One line per request (method, path, status, bytes, time). Never holds a token. */
  log?: (line: string) => void;
}

const DEFAULT_MAX_BYTES = 2 * 2 ** 30;

/**
 * twister2's own package server: stores job packages in one directory and serves them to workers.
 *
 *   PUT    /packages/<name>  admin token; streams the body to disk, answers { name, size, sha256, readToken }
 *   GET    /packages/<name>  admin token or that package's read token; single byte ranges, ETag = sha256
 *   HEAD   /packages/<name>  as GET, without the body
 *   DELETE /packages/<name>  admin token; 404 if absent
 *   GET    /_stats           admin token; { gets: { <name>: n }, puts, deletes }
 *
 * Each upload gets a fresh random read token; only its sha256 is stored (in `<name>.meta.json`), so
 * neither the directory nor the logs hold a credential. Tokens are compared as sha256 digests in
 * constant time, like the job master does.
 *
 * This class does the HTTP side (routing, tokens, headers, ranges); PackageStore keeps the files.
 */
export class PackageServer {
  private server: http.Server | undefined;
  /** Replaced by start(), which knows the directory; nothing reaches it before. */
  private store = new PackageStore('');
  private maxBytes = DEFAULT_MAX_BYTES;
  private adminDigest: Buffer = Buffer.alloc(32);
  private log: ((line: string) => void) | undefined;
  private baseUrl: string | undefined;
  private readonly gets = new Map<string, number>();
  private puts = 0;
  private deletes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Requests that asked for `100 Continue` and were not sent it: their client has not sent the body. */
  private readonly continuePending = new WeakSet<http.IncomingMessage>();

  /** Starts listening and returns the base URL, e.g. http://127.0.0.1:41234. */
  async start(opts: PackageServerOptions): Promise<string> {
    if (this.server) throw new Error('PackageServer.start() was already called');
    if (typeof opts.token !== 'string' || opts.token.length < 16) throw new UsageError('the package server token must have at least 16 characters');
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new UsageError(`maxBytes must be a whole number of bytes, got ${maxBytes}`);
    this.store = new PackageStore(path.resolve(opts.dir));
    this.maxBytes = maxBytes;
    this.adminDigest = digest(opts.token);
    this.log = opts.log;
    await this.store.prepare();

    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const p = this.handle(req, res);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    };
    const server = http.createServer(onRequest);
    // `Expect: 100-continue`: the upload is checked (token, name, size) before the client sends its body.
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.continuePending.add(req);
      onRequest(req, res);
    });
    // Uploads of gigabytes may take long: no limit on the whole request, but a stalled socket is dropped.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.timeout = 120_000;
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.baseUrl = `http://${h}:${addr.port}`;
    return this.baseUrl;
  }

  get url(): string | undefined {
    return this.baseUrl;
  }

  /** Stops listening, cuts open connections and waits until interrupted uploads cleaned up after themselves. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
    await Promise.allSettled([...this.inFlight]);
  }

  stats(): PackageServerStats {
    return { gets: Object.fromEntries(this.gets), puts: this.puts, deletes: this.deletes };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const pathname = pathOf(req.url ?? '/');
    res.once('close', () => {
      // The path only: a query string is never logged, and tokens only ever travel in a header.
      const shown = pathname.replace(/[^\x21-\x7e]/g, '?').slice(0, 300);
      this.log?.(`${req.method ?? '?'} ${shown} ${res.statusCode}${res.writableFinished ? '' : ' (interrupted)'} ${Date.now() - started}ms`);
    });
    try {
      await this.route(req, res, pathname);
    } catch (err) {
      const e = toHttpError(err);
      if (!res.headersSent && !res.destroyed) {
        // No body on its way: close after the answer, so that a body sent late is not read as a request.
        if (this.continuePending.has(req)) res.shouldKeepAlive = false;
        else if (!req.complete) linger(req);
        send(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
      } else if (!res.writableEnded) {
        res.destroy();
      }
      if (e.status === 500) this.log?.(`error: ${e.message}`);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): Promise<void> {
    const method = req.method ?? '';
    const token = bearerToken(req.headers.authorization);
    if (!token) throw unauthorized();
    const tokenDigest = digest(token);
    const admin = timingSafeEqual(tokenDigest, this.adminDigest);
    // Whoever is not the admin learns nothing but 401 unless they hold the read token of a package they name correctly.
    const adminOnly = (e: HttpError): HttpError => (admin ? e : unauthorized());

    if (pathname === '/_stats') {
      if (!admin) throw unauthorized();
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'T2_PROTOCOL', `${method} is not allowed on /_stats`, { allow: 'GET, HEAD' });
      send(res, 200, this.stats());
      return;
    }
    if (!pathname.startsWith(PACKAGES_PREFIX)) throw adminOnly(new HttpError(404, 'T2_PROTOCOL', 'no such route; packages live under /packages/<name>'));
    // The raw (still percent-encoded) name is checked: `%`, `/` and `\` are not in the alphabet, so
    // encoded dots or slashes, absolute paths and backslashes are all refused before any decoding.
    const name = pathname.slice(PACKAGES_PREFIX.length);
    if (!isValidPackageName(name)) {
      throw adminOnly(new HttpError(400, 'T2_PROTOCOL', 'bad package name: use 1-201 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, without ".."'));
    }
    const file = packageFileIn(this.store.dir, name);
    if (file === undefined) throw new HttpError(400, 'T2_PROTOCOL', 'bad package name');

    switch (method) {
      case 'GET':
      case 'HEAD':
        return this.download(req, res, name, file, tokenDigest, admin);
      case 'PUT':
        if (!admin) throw unauthorized();
        return this.upload(req, res, name, file);
      case 'DELETE':
        if (!admin) throw unauthorized();
        return this.remove(res, name, file);
      default:
        throw adminOnly(new HttpError(405, 'T2_PROTOCOL', `${method} is not allowed on a package`, { allow: 'GET, HEAD, PUT, DELETE' }));
    }
  }

  private async download(req: http.IncomingMessage, res: http.ServerResponse, name: string, file: string, tokenDigest: Buffer, admin: boolean): Promise<void> {
    const opened = await this.store.open(name, file, (meta) => admin || timingSafeEqual(tokenDigest, Buffer.from(meta.readTokenSha256, 'hex')));
    if (opened === 'denied' || (opened === undefined && !admin)) throw unauthorized();
    if (opened === undefined) throw new HttpError(404, 'T2_NOT_FOUND', `no package named ${name}`);
    const { meta, fh } = opened;
    let handedOff = false;
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size !== meta.size) throw new Error(`package ${name} does not match its sidecar (size ${st.size}, expected ${meta.size})`);
      const headers: Record<string, string | number> = {
        'accept-ranges': 'bytes',
        etag: `"${meta.sha256}"`,
        'last-modified': st.mtime.toUTCString(),
        'content-type': 'application/octet-stream',
        'cache-control': 'private, no-store',
      };
      const range = parseRange(req.headers.range, meta.size);
      if (range === 'unsatisfiable') {
        throw new HttpError(416, 'T2_RANGE', `range not satisfiable for a package of ${meta.size} bytes`, { 'content-range': `bytes */${meta.size}` });
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? meta.size - 1;
      headers['content-length'] = range ? end - start + 1 : meta.size;
      if (range) headers['content-range'] = `bytes ${start}-${end}/${meta.size}`;
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      this.gets.set(name, (this.gets.get(name) ?? 0) + 1);
      if (end < start) {
        res.end(); // an empty package
        return;
      }
      handedOff = true;
      // The stream closes the handle when it ends or is destroyed (a client that goes away).
      await pipeline(fh.createReadStream({ start, end }), res).catch(() => undefined);
    } finally {
      if (!handedOff) await fh.close().catch(() => undefined);
    }
  }

  private async upload(req: http.IncomingMessage, res: http.ServerResponse, name: string, file: string): Promise<void> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.maxBytes) throw tooLarge(this.maxBytes);
    // A fresh read token per upload; the store keeps only its digest.
    const readToken = randomBytes(32).toString('base64url');
    if (this.continuePending.delete(req)) res.writeContinue();
    const { meta, replaced } = await this.store.put(name, file, digest(readToken).toString('hex'), (tmp) => receiveBody(req, tmp, this.maxBytes));
    this.puts++;
    const body: PutResponse = { name, size: meta.size, sha256: meta.sha256, readToken };
    send(res, replaced ? 200 : 201, body);
  }

  private async remove(res: http.ServerResponse, name: string, file: string): Promise<void> {
    if (!(await this.store.remove(name, file))) throw new HttpError(404, 'T2_NOT_FOUND', `no package named ${name}`);
    this.deletes++;
    res.writeHead(204);
    res.end();
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

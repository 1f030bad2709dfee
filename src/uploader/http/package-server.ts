import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../../errors.js';
import { META_SUFFIX, PackageMetaSchema, isValidPackageName, type PackageMeta, type PackageServerStats, type PutResponse } from './protocol.js';

export type { PackageServerStats } from './protocol.js';

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
const PREFIX = '/packages/';
/** Temporary files start with a dot, which no package name can, so no URL ever reaches one. */
const TMP_PREFIX = '.upload-';
/** How long a refused upload may keep sending before its connection is cut (so the client can read the 413). */
const LINGER_MS = 2000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const unauthorized = () =>
  new HttpError(401, 'T2_UNAUTHENTICATED', 'missing or wrong token (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer' });

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
 */
export class PackageServer {
  private server: http.Server | undefined;
  private dir = '';
  private maxBytes = DEFAULT_MAX_BYTES;
  private adminDigest: Buffer = Buffer.alloc(32);
  private log: ((line: string) => void) | undefined;
  private baseUrl: string | undefined;
  private readonly gets = new Map<string, number>();
  private puts = 0;
  private deletes = 0;
  /** Per-name queue: a commit (rename + sidecar) and the open of a download never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly inFlight = new Set<Promise<void>>();

  /** Starts listening and returns the base URL, e.g. http://127.0.0.1:41234. */
  async start(opts: PackageServerOptions): Promise<string> {
    if (this.server) throw new Error('PackageServer.start() was already called');
    if (typeof opts.token !== 'string' || opts.token.length < 16) throw new UsageError('the package server token must have at least 16 characters');
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new UsageError(`maxBytes must be a whole number of bytes, got ${maxBytes}`);
    this.dir = path.resolve(opts.dir);
    this.maxBytes = maxBytes;
    this.adminDigest = digest(opts.token);
    this.log = opts.log;
    await mkdir(this.dir, { recursive: true });
    await this.removeStaleTemps();

    const server = http.createServer((req, res) => {
      const p = this.handle(req, res);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
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
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const pathname = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
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
        if (!req.complete) linger(req, res);
        send(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
      } else if (!res.writableEnded) {
        res.destroy();
      }
      if (e.status === 500) this.log?.(`error: ${e.message}`);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): Promise<void> {
    const method = req.method ?? '';
    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
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
    if (!pathname.startsWith(PREFIX)) throw adminOnly(new HttpError(404, 'T2_PROTOCOL', 'no such route; packages live under /packages/<name>'));
    // The raw (still percent-encoded) name is checked: `%`, `/` and `\` are not in the alphabet, so
    // encoded dots or slashes, absolute paths and backslashes are all refused before any decoding.
    const name = pathname.slice(PREFIX.length);
    if (!isValidPackageName(name)) {
      throw adminOnly(new HttpError(400, 'T2_PROTOCOL', 'bad package name: use 1-201 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, without ".."'));
    }
    const file = this.inside(name);

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

  /** Second guard after the name check: the resolved path must be a direct child of the storage directory. */
  private inside(name: string): string {
    const file = path.resolve(this.dir, name);
    const prefix = this.dir.endsWith(path.sep) ? this.dir : this.dir + path.sep;
    if (!file.startsWith(prefix) || file.length === prefix.length || file.slice(prefix.length).includes(path.sep)) {
      throw new HttpError(400, 'T2_PROTOCOL', 'bad package name');
    }
    return file;
  }

  private async download(req: http.IncomingMessage, res: http.ServerResponse, name: string, file: string, tokenDigest: Buffer, admin: boolean): Promise<void> {
    // The sidecar and the file are opened together under the lock, so an overwrite in progress can
    // never pair one upload's token or checksum with another upload's bytes. The open handle keeps
    // serving the old bytes even if a new upload replaces the file meanwhile.
    const opened = await this.withLock(name, async () => {
      const meta = await this.readMeta(file);
      if (!meta) return undefined;
      if (!admin && !timingSafeEqual(tokenDigest, Buffer.from(meta.readTokenSha256, 'hex'))) return 'denied' as const;
      try {
        return { meta, fh: await open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
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
    if (declared !== undefined && Number(declared) > this.maxBytes) throw this.tooLarge();
    const rand = randomBytes(8).toString('hex');
    const tmp = path.join(this.dir, `${TMP_PREFIX}${rand}.tmp`);
    const metaTmp = path.join(this.dir, `${TMP_PREFIX}${rand}.meta.tmp`);
    const hash = createHash('sha256');
    let size = 0;
    let over = false;
    const maxBytes = this.maxBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > maxBytes) {
          over = true;
          cb(new Error('too large'));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // req is piped rather than put in the pipeline: a pipeline would destroy the request (and the
    // socket) on a 413, and the client would see a reset instead of the answer.
    const onAbort = () => {
      if (!req.complete) meter.destroy(new Error('the client went away during the upload'));
    };
    req.once('close', onAbort);
    req.once('error', onAbort);
    req.pipe(meter);
    try {
      await pipeline(meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      req.unpipe(meter);
      await rm(tmp, { force: true });
      if (over) throw this.tooLarge();
      throw err;
    } finally {
      req.off('close', onAbort);
      req.off('error', onAbort);
    }

    const sha256 = hash.digest('hex');
    const readToken = randomBytes(32).toString('base64url');
    const meta: PackageMeta = { name, size, sha256, readTokenSha256: digest(readToken).toString('hex'), storedAt: new Date().toISOString() };
    const sidecar = file + META_SUFFIX;
    let existed = false;
    try {
      await writeFile(metaTmp, JSON.stringify(meta), { flag: 'wx', mode: 0o600 });
      await this.withLock(name, async () => {
        // Sidecar out, file in, sidecar in: a crash in between leaves the package invisible, never mismatched.
        existed = await removeIfPresent(sidecar);
        await rename(tmp, file);
        await rename(metaTmp, sidecar);
      });
    } finally {
      await rm(tmp, { force: true });
      await rm(metaTmp, { force: true });
    }
    this.puts++;
    const body: PutResponse = { name, size, sha256, readToken };
    send(res, existed ? 200 : 201, body);
  }

  private tooLarge(): HttpError {
    return new HttpError(413, 'T2_TOO_LARGE', `package larger than the server's limit of ${this.maxBytes} bytes`);
  }

  private async remove(res: http.ServerResponse, name: string, file: string): Promise<void> {
    const found = await this.withLock(name, async () => {
      // The sidecar first: once it is gone the read token opens nothing.
      const hadMeta = await removeIfPresent(file + META_SUFFIX);
      const hadFile = await removeIfPresent(file);
      return hadMeta || hadFile;
    });
    if (!found) throw new HttpError(404, 'T2_NOT_FOUND', `no package named ${name}`);
    this.deletes++;
    res.writeHead(204);
    res.end();
  }

  private async readMeta(file: string): Promise<PackageMeta | undefined> {
    let text: string;
    try {
      text = await readFile(file + META_SUFFIX, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const parsed = PackageMetaSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`the sidecar of ${path.basename(file)} is damaged`);
    return parsed.data;
  }

  private async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }

  /** Uploads cut short by a crash leave temporary files; nobody can reach them, so they go. */
  private async removeStaleTemps(): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith(TMP_PREFIX)) await rm(path.join(this.dir, entry), { force: true });
    }
  }
}

/**
 * One `bytes=` range: `a-b`, `a-` or `-n`. Anything else (several ranges, other units, a > b) is
 * ignored as RFC 9110 allows, and the whole package is sent.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) };
}

/**
 * An error answer to a request whose body was not read (a refused or oversized upload): the body is
 * discarded for a moment so the client reads the answer instead of a reset, then the connection is cut,
 * rather than draining gigabytes nobody wants.
 */
function linger(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.shouldKeepAlive = false;
  res.setHeader('connection', 'close');
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function removeIfPresent(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  return new HttpError(500, 'T2_INTERNAL', err instanceof Error ? err.message : String(err));
}

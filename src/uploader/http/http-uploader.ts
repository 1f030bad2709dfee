import { createReadStream } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { PassThrough } from 'node:stream';
import got, { type Response } from 'got';
import { UploadError } from '../../errors.js';
import type { PackageRef, PackageToUpload, UploadOptions, Uploader } from '../uploader.js';
import { ErrorBodySchema, PutResponseSchema, isValidPackageName, type PutResponse } from './protocol.js';

export interface HttpUploaderOptions {
  /** The server's base URL, e.g. http://10.0.0.1:8080; packages go to `<url>/packages/<jobId>.tar.gz`. */
  url: string;
  /** The server's admin token. It is sent to the server only: never put in the PackageRef, an error or a log. */
  token: string;
}

/** Connection and answer deadlines; the upload itself may take as long as it needs while bytes flow. */
const TIMEOUTS = { lookup: 10_000, connect: 15_000, secureConnect: 15_000, socket: 60_000, response: 120_000 };

/** How long to wait for `100 Continue` before sending the body anyway, for servers that ignore `Expect` (curl waits 1 s). */
const CONTINUE_WAIT_MS = 2000;

/**
 * Uploads the package with one streaming PUT. Against twister2's package server (`twister2
 * package-server`) the answer holds the stored sha256, checked against the package's, and a per-upload
 * read token that goes into the PackageRef in place of the admin token.
 *
 * Any other server that accepts PUT works too (a WebDAV share, nginx with dav_methods, a presigning
 * proxy): if the answer is not the package server's JSON the ref carries no token, and whether workers
 * may read the URL is that server's business (network rules, an open directory, ...). The stored size is
 * then checked with a HEAD when the server answers one; the workers still verify the sha256.
 */
export class HttpUploader implements Uploader {
  private readonly base: string;
  private stored: string | undefined;

  constructor(private readonly opts: HttpUploaderOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new UploadError(`the package server URL ${JSON.stringify(opts.url)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UploadError(`the package server URL must be http(s), got ${parsed.protocol}`);
    this.base = opts.url.replace(/\/+$/, '');
  }

  adopt(jobId: string): void {
    this.stored = this.packageUrl(jobId);
  }

  private packageUrl(jobId: string): string {
    return `${this.base}/packages/${jobId}.tar.gz`;
  }

  async upload(pkg: PackageToUpload, opts: UploadOptions = {}): Promise<PackageRef> {
    const name = `${pkg.jobId}.tar.gz`;
    const url = this.packageUrl(pkg.jobId);
    const shown = redactUrl(url);
    if (!isValidPackageName(name)) throw new UploadError(`the job ID ${JSON.stringify(pkg.jobId)} cannot name a package on the server`, shown);
    const { signal, onProgress } = opts;
    if (signal?.aborted) throw aborted(shown, signal);

    let sent = 0;
    let res: Response<string>;
    // The body waits for the server's `100 Continue`: a refused upload (token, size) is then answered before any of
    // it is sent. Sent at once, it raced the answer: a server closing the connection on unread bytes sends a reset,
    // which can reach the client before it reads the 413 and leave it with ECONNRESET instead.
    const file = createReadStream(pkg.file);
    const body = new PassThrough();
    let release: NodeJS.Timeout | undefined;
    const sendBody = () => {
      clearTimeout(release);
      if (!file.destroyed && !body.destroyed) file.pipe(body);
    };
    file.once('error', (err) => body.destroy(err));
    try {
      const request = got.put(url, {
        body,
        headers: { ...this.auth(), 'content-type': 'application/gzip', 'content-length': String(pkg.size), expect: '100-continue' },
        signal,
        timeout: TIMEOUTS,
        retry: { limit: 0 },
        followRedirect: false,
        throwHttpErrors: false,
        responseType: 'text',
      });
      request.on('request', (req: ClientRequest) => {
        req.once('continue', sendBody);
        req.once('response', () => clearTimeout(release)); // refused: the body stays unsent
        release = setTimeout(sendBody, CONTINUE_WAIT_MS);
      });
      request.on('uploadProgress', (p) => {
        if (p.transferred > sent && onProgress) onProgress(Math.min(p.transferred, pkg.size), pkg.size);
        sent = Math.max(sent, p.transferred);
      });
      res = await request;
    } catch (err) {
      if (signal?.aborted) throw aborted(shown, signal);
      throw this.failure(`cannot upload the job package to the package server at ${shown}`, shown, err);
    } finally {
      clearTimeout(release);
      file.destroy();
      body.destroy();
    }
    if (res.statusCode < 200 || res.statusCode > 299) throw this.statusError('upload the job package to', shown, res, pkg.size);
    if (sent < pkg.size) onProgress?.(pkg.size, pkg.size);
    this.stored = url;

    const answer = parseAnswer(res.body);
    if (answer) {
      if (answer.sha256 !== pkg.sha256 || answer.size !== pkg.size) {
        await this.delete().catch(() => undefined);
        throw new UploadError(
          `the package server at ${shown} stored ${answer.size} bytes with sha256 ${answer.sha256}, but the package has ${pkg.size} bytes with sha256 ${pkg.sha256}: it changed on the way or on disk`,
          shown,
          res.statusCode,
        );
      }
      return { kind: 'http', url, token: answer.readToken, sha256: pkg.sha256, size: pkg.size };
    }
    await this.checkSize(url, shown, pkg.size);
    return { kind: 'http', url, sha256: pkg.sha256, size: pkg.size };
  }

  /** Removes the uploaded package. Nothing uploaded or already gone (404, 410) is fine. */
  async delete(): Promise<void> {
    const url = this.stored;
    if (!url) return;
    const shown = redactUrl(url);
    let res: Response<string>;
    try {
      res = await got.delete(url, { headers: this.auth(), timeout: TIMEOUTS, retry: { limit: 2 }, followRedirect: false, throwHttpErrors: false, responseType: 'text' });
    } catch (err) {
      throw this.failure(`cannot delete the job package from the package server at ${shown}`, shown, err);
    }
    if (res.statusCode !== 404 && res.statusCode !== 410 && (res.statusCode < 200 || res.statusCode > 299)) {
      throw this.statusError('delete the job package at', shown, res);
    }
    this.stored = undefined;
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${this.opts.token}` };
  }

  /** For servers other than twister2's: a HEAD that reports another size means the upload went wrong. */
  private async checkSize(url: string, shown: string, size: number): Promise<void> {
    let res: Response<string>;
    try {
      res = await got.head(url, { headers: this.auth(), timeout: { request: 15_000 }, retry: { limit: 0 }, followRedirect: false, throwHttpErrors: false });
    } catch {
      return; // No HEAD: nothing to check here; the workers verify the sha256.
    }
    const length = res.headers['content-length'];
    if (res.statusCode === 200 && length !== undefined && Number(length) !== size) {
      throw new UploadError(`the server at ${shown} holds ${length} bytes after the upload, but the package has ${size}`, shown, res.statusCode);
    }
  }

  private statusError(what: string, shown: string, res: Response<string>, size?: number): UploadError {
    const status = res.statusCode;
    const detail = this.serverMessage(res.body);
    const suffix = detail ? `: ${detail}` : '';
    if (status === 401 || status === 403) {
      return new UploadError(`the package server at ${shown} refused the token (HTTP ${status})${suffix}`, shown, status, {
        hint: 'Check that the client holds the admin token the package server was started with (TWISTER2_PACKAGE_SERVER_TOKEN).',
      });
    }
    if (status === 413) {
      const s = size === undefined ? '' : ` (${size} bytes)`;
      return new UploadError(`the job package${s} is larger than the package server at ${shown} accepts (HTTP 413)${suffix}`, shown, status, {
        hint: 'Make the package smaller, or start the server with a larger --max-size.',
      });
    }
    return new UploadError(`cannot ${what} ${shown}: HTTP ${status}${suffix}`, shown, status);
  }

  /** The server's own error message, only from the package server's JSON shape and with the token masked. */
  private serverMessage(body: string): string | undefined {
    try {
      const parsed = ErrorBodySchema.safeParse(JSON.parse(body));
      if (!parsed.success) return undefined;
      return parsed.data.error.message.split(this.opts.token).join('***').slice(0, 300);
    } catch {
      return undefined;
    }
  }

  /** Network errors keep only their code and message: got's error objects carry the request headers, token included. */
  private failure(what: string, shown: string, err: unknown): UploadError {
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e.code === 'string' ? e.code : undefined;
    const message = (typeof e.message === 'string' ? e.message : String(err)).split(this.opts.token).join('***');
    const cause = Object.assign(new Error(message), code ? { code } : {});
    return new UploadError(`${what}: ${code && !message.includes(code) ? `${code} ` : ''}${message}`, shown, undefined, { cause });
  }
}

function parseAnswer(body: string): PutResponse | undefined {
  try {
    const parsed = PutResponseSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function aborted(shown: string, signal: AbortSignal): UploadError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new UploadError(`the upload of the job package to ${shown} was aborted (${why})`, shown, undefined, { cause: reason });
}

/** URLs in messages never show user:password. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

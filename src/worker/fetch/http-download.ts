import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import got from 'got';
import { redact } from './redact-url.js';

export interface DownloadOptions {
  url: string;
  token?: string | undefined;
  sha256: string;
  size: number;
  /** Attempts in all, with backoff between them. */
  attempts?: number;
  /** Called before each retry, e.g. to log it. */
  onRetry?: (attempt: number, reason: string) => void;
}

/**
 * Downloads to `dest`, resuming a partial file with a Range request where the server allows it, and
 * verifies the sha256. A corrupt download is deleted and fetched again. Errors name the URL without
 * its query string (a presigned URL's query is a credential).
 */
export async function downloadVerified(dest: string, opts: DownloadOptions): Promise<void> {
  const attempts = opts.attempts ?? 5;
  let last = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      await downloadOnce(dest, opts);
      const actual = await sha256Of(dest);
      if (actual === opts.sha256) return;
      await rm(dest, { force: true });
      last = `checksum mismatch: expected sha256 ${opts.sha256}, got ${actual}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (attempt < attempts) {
      opts.onRetry?.(attempt, last);
      await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
    }
  }
  await rm(dest, { force: true });
  throw new Error(`cannot fetch the job package from ${redact(opts.url)} after ${attempts} attempts: ${last}`);
}

async function downloadOnce(dest: string, opts: DownloadOptions): Promise<void> {
  const have = await stat(dest).then((s) => s.size, () => 0);
  if (have >= opts.size && have > 0) return; // complete already; the checksum decides
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (have > 0) headers.range = `bytes=${have}-`;
  const stream = got.stream(opts.url, { headers, retry: { limit: 0 }, throwHttpErrors: false, timeout: { connect: 10_000, response: 30_000 } });
  const status = await new Promise<number>((resolve, reject) => {
    stream.once('response', (res: { statusCode: number }) => resolve(res.statusCode));
    stream.once('error', reject);
  });
  if (status >= 400) {
    stream.destroy();
    throw new Error(`HTTP ${status}`);
  }
  // 206: the server resumed where we were; 200: it sent the whole file, so start over.
  await pipeline(stream, createWriteStream(dest, { flags: status === 206 ? 'a' : 'w' }));
}

export async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

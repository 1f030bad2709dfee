import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Twister2Error } from '../../src/errors.js';
import { S3Uploader, type S3UploaderOptions } from '../../src/uploader/s3/s3-uploader.js';
import { startS3Server, type S3Server } from '../env/s3-server.js';
import { s3cmd, s3ls, s3multipartUploads } from '../env/s3cmd.js';

const MiB = 1024 * 1024;
const bucket = 'twister2-test';

let server: S3Server;
let dir: string;
let big: { file: string; sha256: string; size: number };
let small: { file: string; sha256: string; size: number };

function randomFile(name: string, size: number): { file: string; sha256: string; size: number } {
  const file = path.join(dir, name);
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  for (let left = size; left > 0; left -= MiB) {
    const b = randomBytes(Math.min(MiB, left));
    hash.update(b);
    chunks.push(b);
  }
  writeFileSync(file, Buffer.concat(chunks));
  return { file, sha256: hash.digest('hex'), size };
}

async function sha256OfStream(body: ReadableStream<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

function uploader(extra: Partial<S3UploaderOptions> = {}): S3Uploader {
  return new S3Uploader({
    bucket,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    partSizeBytes: 8 * MiB,
    ...extra,
  });
}

/** Everything a caller could print about an error: message, stack, hint, properties, causes. */
function everything(err: unknown): string {
  return `${inspect(err, { depth: 10, showHidden: true })}\n${JSON.stringify(err)}\n${String((err as { hint?: unknown }).hint)}`;
}

let jobCounter = 0;
const newJobId = () => `job-${process.pid}-${++jobCounter}`;

describe('S3Uploader against moto S3 server', () => {
  beforeAll(async () => {
    server = await startS3Server();
    const mb = s3cmd(server, ['mb', `s3://${bucket}`]);
    expect(mb.code, mb.stderr).toBe(0);
    dir = mkdtempSync(path.join(os.tmpdir(), 't2-s3-test-'));
    big = randomFile('big.tar.gz', 50 * MiB);
    small = randomFile('small.tar.gz', 1 * MiB + 17);
  }, 900_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('uploads 50 MiB in parts, workers download it with the presigned URL alone (and resume with Range), delete removes it', async () => {
    const jobId = newJobId();
    const log: string[] = [];
    const up = uploader({ log: (l) => log.push(l) });
    const progress: number[] = [];
    const ref = await up.upload({ jobId, file: big.file, sha256: big.sha256, size: big.size }, { onProgress: (sent, total) => {
      expect(total).toBe(big.size);
      progress.push(sent);
    } });

    expect(ref.kind).toBe('http');
    if (ref.kind !== 'http') return;
    expect(ref).toMatchObject({ sha256: big.sha256, size: big.size });
    expect(ref.token).toBeUndefined();
    expect(progress.at(-1)).toBe(big.size);
    expect(progress.length).toBeGreaterThanOrEqual(7); // one event per part at least
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    const key = `twister2/${jobId}/package.tar.gz`;
    expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([key]);

    // The presigned URL carries no secret; plain fetch, no credentials.
    expect(ref.url).not.toContain(server.secretAccessKey);
    const res = await fetch(ref.url);
    expect(res.status).toBe(200);
    // Uploaded as a multipart upload of 7 parts (S3's ETag for those is "<md5 of md5s>-<parts>"), sha256 kept as metadata.
    expect(res.headers.get('etag')).toMatch(/-7"$/);
    expect(res.headers.get('x-amz-meta-sha256')).toBe(big.sha256);
    expect(await sha256OfStream(res.body!)).toEqual({ sha256: big.sha256, size: big.size });

    // A worker resumes a broken download with Range.
    const start = 20 * MiB + 3;
    const ranged = await fetch(ref.url, { headers: { Range: `bytes=${start}-` } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes ${start}-${big.size - 1}/${big.size}`);
    const got = Buffer.from(await ranged.arrayBuffer());
    const fh = await open(big.file);
    const want = Buffer.alloc(big.size - start);
    await fh.read(want, 0, want.length, start);
    await fh.close();
    expect(got.equals(want)).toBe(true);

    await up.delete();
    expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([]);
    expect((await fetch(ref.url)).status).toBe(404);
    await up.delete(); // idempotent

    expect(log.length).toBeGreaterThan(0);
    for (const line of log) {
      expect(line).not.toContain(server.secretAccessKey);
      expect(line).not.toContain(server.accessKeyId);
      expect(line).not.toContain('X-Amz-Signature');
    }
  });

  it('a small package goes up in one PUT; keep: true leaves it after delete()', async () => {
    const jobId = newJobId();
    const up = uploader({ keep: true, prefix: 'kept' });
    const progress: number[] = [];
    const ref = await up.upload({ jobId, file: small.file, sha256: small.sha256, size: small.size }, { onProgress: (s) => progress.push(s) });
    expect(progress.at(-1)).toBe(small.size);
    const key = `kept/${jobId}/package.tar.gz`;
    await up.delete();
    expect(s3ls(server, `s3://${bucket}/kept/`)).toContain(key);
    if (ref.kind !== 'http') throw new Error('expected an http ref');
    const res = await fetch(ref.url);
    expect(res.headers.get('etag')).not.toMatch(/-\d+"$/);
    expect(await sha256OfStream(res.body!)).toEqual({ sha256: small.sha256, size: small.size });
    expect(s3cmd(server, ['del', `s3://${bucket}/${key}`]).code).toBe(0);
  });

  it('uses the default credential chain when no credentials are given', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', server.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', server.secretAccessKey);
    vi.stubEnv('AWS_SESSION_TOKEN', '');
    try {
      const jobId = newJobId();
      const up = uploader({ credentials: undefined });
      const ref = await up.upload({ jobId, file: small.file, sha256: small.sha256, size: small.size });
      if (ref.kind !== 'http') throw new Error('expected an http ref');
      expect((await fetch(ref.url)).status).toBe(200);
      await up.delete();
      expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([]);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  describe('with authentication enforced', () => {
    beforeAll(() => server.setAuthEnforced(true));
    afterAll(() => server.setAuthEnforced(false));

    it('the right credentials sign a multipart upload and a delete that a checking server accepts', async () => {
      const jobId = newJobId();
      const up = uploader();
      await up.upload({ jobId, file: big.file, sha256: big.sha256, size: big.size });
      expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([`twister2/${jobId}/package.tar.gz`]);
      await up.delete();
      expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([]);
    });

    it('wrong secret: a clear access error naming bucket, key and endpoint, without any credential', async () => {
      const wrongSecret = 'WrongSecret/abcdefghijklmnopqrstuvwxyz0123456';
      const jobId = newJobId();
      const log: string[] = [];
      const up = uploader({ credentials: { accessKeyId: server.accessKeyId, secretAccessKey: wrongSecret }, log: (l) => log.push(l) });
      const err = await up.upload({ jobId, file: big.file, sha256: big.sha256, size: big.size }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Twister2Error.is(err, 'T2_S3_ACCESS')).toBe(true);
      const e = err as Twister2Error;
      expect(e.userError).toBe(true);
      expect(e.message).toContain('SignatureDoesNotMatch');
      expect(e.message).toContain(`s3://${bucket}/twister2/${jobId}/package.tar.gz`);
      expect(e.message).toContain(server.endpoint);
      expect(e.hint).toMatch(/credentials/);
      const all = everything(err) + log.join('\n');
      expect(all).not.toContain(wrongSecret);
      expect(all).not.toContain(server.secretAccessKey);
      expect(all).not.toContain(server.accessKeyId);
      expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([]);
    });
  });

  it('a missing bucket: an S3 error naming the bucket', async () => {
    const err = await uploader({ bucket: 'no-such-bucket-t2' })
      .upload({ jobId: newJobId(), file: small.file, sha256: small.sha256, size: small.size })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(Twister2Error.is(err, 'T2_S3')).toBe(true);
    expect((err as Error).message).toContain('NoSuchBucket');
    expect((err as Error).message).toContain('s3://no-such-bucket-t2/');
  });

  it('abort mid-upload rejects and leaves neither an object nor an incomplete multipart upload', async () => {
    const jobId = newJobId();
    const key = `twister2/${jobId}/package.tar.gz`;
    const ac = new AbortController();
    const log: string[] = [];
    const up = uploader({ log: (l) => log.push(l) });
    let sentAtAbort = -1;
    let inProgressAtAbort: unknown[] = [];
    const err = await up
      .upload({ jobId, file: big.file, sha256: big.sha256, size: big.size }, {
        signal: ac.signal,
        onProgress: (sent) => {
          if (sentAtAbort < 0 && sent > 0) {
            sentAtAbort = sent;
            inProgressAtAbort = s3multipartUploads(server, bucket).filter((u) => u.key === key);
            ac.abort();
          }
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(Twister2Error.is(err, 'T2_S3_UPLOAD_ABORTED')).toBe(true);
    expect(sentAtAbort).toBeGreaterThan(0);
    expect(sentAtAbort).toBeLessThan(big.size);
    expect(inProgressAtAbort).toHaveLength(1); // there was something to clean up
    expect(log.at(-1)).toMatch(/aborted; removed what was sent/);
    expect(s3ls(server, `s3://${bucket}/twister2/${jobId}/`)).toEqual([]);
    expect(s3multipartUploads(server, bucket).filter((u) => u.key === key)).toEqual([]);
    await up.delete();
  });

  it('the multipart listing helper sees an upload in progress (so the abort check above means something)', async () => {
    const key = `probe/${newJobId()}`;
    const client = new S3Client({
      endpoint: server.endpoint,
      region: server.region,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    });
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    expect(s3multipartUploads(server, bucket)).toContainEqual({ key, uploadId: UploadId });
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
    expect(s3multipartUploads(server, bucket).filter((u) => u.key === key)).toEqual([]);
    client.destroy();
  });
});

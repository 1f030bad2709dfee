import { createReadStream, type ReadStream } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { S3AccessError, S3Error, S3UploadAbortedError, UsageError } from '../../errors.js';
import { isSafeJobId, type PackageRef, type PackageToUpload, type UploadOptions, type Uploader } from '../uploader.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3UploaderOptions {
  bucket: string;
  /** Key prefix; the package goes to `<prefix><jobId>/package.tar.gz`. A missing trailing '/' is added. */
  prefix?: string;
  /** An S3-compatible endpoint (MinIO, Ceph, moto...); AWS's regional endpoint when absent. */
  endpoint?: string;
  region?: string;
  /** `https://host/bucket/key` instead of `https://bucket.host/key`; most S3-compatible servers need it. */
  forcePathStyle?: boolean;
  /** Without them, the SDK's default chain: environment, ~/.aws files, SSO, web identity, ECS/EC2 metadata. */
  credentials?: S3Credentials;
  /** How long the presigned GET URL that workers get stays valid (SigV4 allows at most 7 days). */
  presignExpirySeconds?: number;
  /** Leave the object in the bucket when the job ends. */
  keep?: boolean;
  /** Multipart part size; S3 requires at least 5 MiB. Files no larger than one part go up in a single PUT. */
  partSizeBytes?: number;
  /** One line per step. Never receives a credential or a presigned URL. */
  log?: (line: string) => void;
}

const MiB = 1024 * 1024;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
/** How many parts go up at once. */
const QUEUE_SIZE = 4;
/** S3 error codes that mean "these credentials may not do this": fixable by the user. */
const ACCESS_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AuthorizationHeaderMalformed',
  'InvalidClientTokenId',
  'CredentialsProviderError',
  'AllAccessDisabled',
  'AccountProblem',
]);

/** Per-upload bookkeeping, filled by a client middleware, so an aborted upload can be cleaned up completely. */
interface Flight {
  /** Aborts every request of this upload that is on the wire. */
  readonly signal: AbortSignal;
  readonly uploadIds: Set<string>;
  inflight: number;
  onIdle: (() => void) | undefined;
}

/**
 * Puts the package into an S3 bucket (or an S3-compatible store) and hands workers a presigned GET URL: workers
 * never hold credentials. Big packages go up as a multipart upload, `QUEUE_SIZE` parts at a time.
 */
export class S3Uploader implements Uploader {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly endpointName: string;
  private readonly secrets: string[];
  private readonly presignExpirySeconds: number;
  private readonly partSize: number;
  private readonly keep: boolean;
  private readonly log: (line: string) => void;
  private key: string | undefined;
  private deleted = false;
  private flight: Flight | undefined;

  constructor(opts: S3UploaderOptions) {
    if (!opts.bucket) throw new UsageError('S3 uploader: the bucket name is empty');
    const partSize = opts.partSizeBytes ?? 8 * MiB;
    if (!Number.isInteger(partSize) || partSize < 5 * MiB) throw new UsageError(`S3 uploader: partSizeBytes must be an integer of at least 5 MiB (${5 * MiB}), got ${partSize}`);
    const expiry = opts.presignExpirySeconds ?? 86_400;
    if (!Number.isInteger(expiry) || expiry < 1 || expiry > MAX_PRESIGN_SECONDS) {
      throw new UsageError(`S3 uploader: presignExpirySeconds must be an integer from 1 to ${MAX_PRESIGN_SECONDS} (7 days), got ${expiry}`);
    }
    const region = opts.region ?? 'us-east-1';
    let prefix = (opts.prefix ?? 'twister2/').replace(/^\/+/, '');
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';

    this.bucket = opts.bucket;
    this.prefix = prefix;
    this.partSize = partSize;
    this.presignExpirySeconds = expiry;
    this.keep = opts.keep ?? false;
    this.log = opts.log ?? (() => undefined);
    this.endpointName = opts.endpoint ?? `https://s3.${region}.amazonaws.com`;
    const c = opts.credentials;
    this.secrets = c ? [c.secretAccessKey, c.sessionToken ?? '', c.accessKeyId].filter((s) => s.length >= 4) : [];

    const config: S3ClientConfig = {
      region,
      forcePathStyle: opts.forcePathStyle ?? false,
      // S3-compatible servers often lack the newer CRC checksums; send and check them only where S3 demands them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (opts.endpoint !== undefined) config.endpoint = opts.endpoint;
    if (c) config.credentials = { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) };
    this.client = new S3Client(config);
    this.trackRequests();
  }

  adopt(jobId: string): void {
    this.key = this.keyOf(jobId);
    this.deleted = false;
  }

  private keyOf(jobId: string): string {
    // `..` or a separator in the key: servers and proxies that normalise the path would put it outside the prefix, or the bucket.
    if (!isSafeJobId(jobId)) throw new UsageError(`S3 uploader: the job ID ${JSON.stringify(jobId)} cannot name a key under s3://${this.bucket}/${this.prefix}`);
    return `${this.prefix}${jobId}/package.tar.gz`;
  }

  async upload(pkg: PackageToUpload, opts: UploadOptions = {}): Promise<PackageRef> {
    const { signal, onProgress } = opts;
    const key = this.keyOf(pkg.jobId);
    this.key = key;
    this.deleted = false;
    if (signal?.aborted) throw this.abortedError(key, signal);

    const cancel = new AbortController();
    const flight: Flight = { signal: cancel.signal, uploadIds: new Set(), inflight: 0, onIdle: undefined };
    this.flight = flight;
    const body = createReadStream(pkg.file);
    let upload: Upload;
    try {
      upload = this.newUpload(key, body, pkg);
    } catch (err) {
      body.destroy();
      this.flight = undefined;
      throw this.toError(err, 'upload', key);
    }
    let sent = 0;
    const progress = (n: number) => {
      const v = Math.min(n, pkg.size);
      if (v <= sent) return;
      sent = v;
      onProgress?.(sent, pkg.size);
    };
    upload.on('httpUploadProgress', (p) => progress(p.loaded ?? 0));
    const onAbort = () => {
      cancel.abort();
      void upload.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const parts = Math.max(1, Math.ceil(pkg.size / this.partSize));
    this.log(`uploading ${this.where(key)} (${pkg.size} bytes, ${parts === 1 ? 'single PUT' : `${parts} parts of ${this.partSize} bytes`})`);

    let failure: unknown;
    try {
      await upload.done();
    } catch (err) {
      failure = err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      body.destroy();
    }
    if (signal?.aborted) {
      cancel.abort();
      await this.cleanUpAbortedUpload(key, flight);
      throw this.abortedError(key, signal);
    }
    this.flight = undefined;
    if (failure !== undefined) throw this.toError(failure, 'upload', key);
    progress(pkg.size);

    let url: string;
    try {
      url = await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: this.presignExpirySeconds });
    } catch (err) {
      throw this.toError(err, 'presign GET', key);
    }
    this.log(`uploaded ${this.where(key)}; workers get a presigned GET URL valid for ${this.presignExpirySeconds} s`);
    return { kind: 'http', url, sha256: pkg.sha256, size: pkg.size };
  }

  async delete(): Promise<void> {
    const key = this.key;
    if (key === undefined || this.deleted) return;
    if (this.keep) {
      this.log(`keeping ${this.where(key)}`);
      return;
    }
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const e = this.toError(err, 'delete', key);
      if (e.s3Code !== 'NoSuchKey' && e.status !== 404) throw e;
    }
    this.deleted = true;
    this.log(`deleted ${this.where(key)}`);
  }

  private newUpload(key: string, body: ReadStream, pkg: PackageToUpload): Upload {
    return new Upload({
      client: this.client,
      queueSize: QUEUE_SIZE,
      partSize: this.partSize,
      leavePartsOnError: false,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: pkg.size,
        ContentType: 'application/gzip',
        Metadata: { sha256: pkg.sha256 },
      },
    });
  }

  /**
   * Counts this upload's requests, remembers the multipart upload IDs S3 hands out, and ties every request to the
   * upload's abort signal, so that an abort stops the parts on the wire and leaves nothing behind.
   */
  private trackRequests(): void {
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const flight = this.flight;
        if (!flight) return next(args);
        flight.inflight++;
        try {
          const result = await next(args);
          const uploadId = (result.output as { UploadId?: unknown }).UploadId;
          if (context.commandName === 'CreateMultipartUploadCommand' && typeof uploadId === 'string') flight.uploadIds.add(uploadId);
          return result;
        } finally {
          flight.inflight--;
          if (flight.inflight === 0) flight.onIdle?.();
        }
      },
      { step: 'initialize', name: 'twister2UploadTracker', priority: 'high' },
    );
    // lib-storage does not pass its abort signal to the requests it sends; the request handler gets it here.
    const handler = this.client.config.requestHandler as unknown as { handle?: (request: unknown, options?: { abortSignal?: unknown }) => Promise<unknown> };
    const handle = handler.handle?.bind(handler);
    if (!handle) return;
    handler.handle = (request, options = {}) => {
      const signal = this.flight?.signal;
      return handle(request, signal && options.abortSignal === undefined ? { ...options, abortSignal: signal } : options);
    };
  }

  /** Waits for the aborted requests to settle, then aborts the multipart uploads and removes a finished object. Best effort. */
  private async cleanUpAbortedUpload(key: string, flight: Flight): Promise<void> {
    if (flight.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        flight.onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.flight === flight) this.flight = undefined;
    const ids = new Set(flight.uploadIds);
    try {
      // Also finds an upload whose CreateMultipartUpload answer was cut off by the abort. Needs s3:ListBucketMultipartUploads.
      const listed = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }));
      for (const u of listed.Uploads ?? []) if (u.Key === key && u.UploadId) ids.add(u.UploadId);
    } catch {
      // Not allowed or not supported: the IDs we saw are all we can abort.
    }
    for (const id of ids) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: id })).catch(() => undefined);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => undefined);
    this.deleted = true;
    this.log(`upload of ${this.where(key)} aborted; removed what was sent`);
  }

  private abortedError(key: string, signal: AbortSignal): S3UploadAbortedError {
    return new S3UploadAbortedError(`upload to ${this.where(key)} aborted`, { bucket: this.bucket, key, endpoint: this.endpointName, s3Code: 'Aborted' }, { cause: signal.reason });
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${key} at ${this.endpointName}`;
  }

  /** Turns an SDK or network error into an S3Error. Keeps no reference to the SDK error: its fields can echo the access key. */
  private toError(err: unknown, op: string, key: string): S3Error {
    const e = (typeof err === 'object' && err !== null ? err : {}) as {
      name?: unknown;
      code?: unknown;
      Code?: unknown;
      message?: unknown;
      $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
    };
    const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
    const named = [e.Code, e.code, e.name].find((v): v is string => typeof v === 'string' && v !== '' && v !== 'Error');
    const s3Code = named ?? (status !== undefined ? `HTTP${status}` : 'Unknown');
    const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
    const requestId = typeof e.$metadata?.requestId === 'string' ? ` (request ID ${e.$metadata.requestId})` : '';
    const text = this.redact(`S3 ${op} of ${this.where(key)} failed: ${s3Code}${status !== undefined ? ` (HTTP ${status})` : ''}: ${message}${requestId}`);
    const details = { bucket: this.bucket, key, endpoint: this.endpointName, s3Code, ...(status !== undefined ? { status } : {}) };
    if (ACCESS_CODES.has(s3Code) || (status === 403 && !named)) {
      return new S3AccessError(text, details, {
        hint: `check the S3 credentials (the uploader's credentials, or the AWS_* environment and ~/.aws for the default chain) and that they may write and read s3://${this.bucket}/${this.prefix}`,
      });
    }
    if (s3Code === 'NoSuchBucket') return new S3Error(text, details, { hint: `create the bucket '${this.bucket}' or fix its name and region` });
    if (status === undefined && /^E[A-Z]+$/.test(s3Code)) return new S3Error(text, details, { hint: `check that ${this.endpointName} is the right endpoint and reachable from here` });
    return new S3Error(text, details);
  }

  private redact(text: string): string {
    let out = text.replace(/(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s]+/gi, '$1[redacted]');
    for (const s of this.secrets) out = out.split(s).join('[redacted]');
    return out;
  }
}

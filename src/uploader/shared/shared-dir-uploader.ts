import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UploadError } from '../../errors.js';
import { isSafeJobId, type PackageRef, type PackageToUpload, type UploadOptions, type Uploader } from '../uploader.js';

/**
 * Writes the package once into a directory every node mounts (NFS and the like); workers read it there.
 * Written under a temporary name and renamed, so a worker never sees half a package.
 */
export class SharedDirUploader implements Uploader {
  private jobDir: string | undefined;

  constructor(private readonly opts: { dir: string; keep?: boolean }) {}

  async upload(pkg: PackageToUpload, opts: UploadOptions = {}): Promise<PackageRef> {
    const dir = this.opts.dir;
    // A job ID with a separator or `..` would write, and delete() would remove, outside the shared directory.
    if (!isSafeJobId(pkg.jobId)) throw new UploadError(`the job ID ${JSON.stringify(pkg.jobId)} cannot name a directory in the shared directory ${dir}`, dir);
    if (opts.signal?.aborted) throw aborted(dir, opts.signal);
    const jobDir = path.join(dir, pkg.jobId);
    this.jobDir = jobDir;
    const target = path.join(jobDir, 'package.tar.gz');
    const partial = `${target}.partial`;
    let sent = 0;
    const progress = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        opts.onProgress?.(sent, pkg.size);
        cb(null, chunk);
      },
    });
    try {
      await mkdir(jobDir, { recursive: true });
      await pipeline(createReadStream(pkg.file), progress, createWriteStream(partial), { signal: opts.signal });
      await rename(partial, target);
    } catch (err) {
      // Nothing half-written stays: the job's directory is this upload's alone.
      await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
      if (opts.signal?.aborted) throw aborted(dir, opts.signal);
      const e = err as NodeJS.ErrnoException;
      throw new UploadError(`cannot write the job package to the shared directory ${dir}: ${e.code && !e.message.includes(e.code) ? `${e.code} ` : ''}${e.message}`, dir, undefined, { cause: err });
    }
    return { kind: 'file', path: target, sha256: pkg.sha256, size: pkg.size };
  }

  async delete(): Promise<void> {
    if (this.jobDir && !this.opts.keep) await rm(this.jobDir, { recursive: true, force: true });
  }
}

function aborted(dir: string, signal: AbortSignal): UploadError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new UploadError(`the upload of the job package to the shared directory ${dir} was aborted (${why})`, dir, undefined, { cause: reason });
}

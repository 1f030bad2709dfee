import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PackageRef, PackageToUpload, UploadOptions, Uploader } from '../uploader.js';

/**
 * Writes the package once into a directory every node mounts (NFS and the like); workers read it there.
 * Written under a temporary name and renamed, so a worker never sees half a package.
 */
export class SharedDirUploader implements Uploader {
  private jobDir: string | undefined;

  constructor(private readonly opts: { dir: string; keep?: boolean }) {}

  async upload(pkg: PackageToUpload, opts: UploadOptions = {}): Promise<PackageRef> {
    this.jobDir = path.join(this.opts.dir, pkg.jobId);
    await mkdir(this.jobDir, { recursive: true });
    const target = path.join(this.jobDir, 'package.tar.gz');
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
      await pipeline(createReadStream(pkg.file), progress, createWriteStream(partial), { signal: opts.signal });
      await rename(partial, target);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { kind: 'file', path: target, sha256: pkg.sha256, size: pkg.size };
  }

  async delete(): Promise<void> {
    if (this.jobDir && !this.opts.keep) await rm(this.jobDir, { recursive: true, force: true });
  }
}

import type { PackageRef, PackageToUpload, Uploader } from '../uploader.js';

/** The package stays where the client wrote it: workers on this machine read it in place. */
export class LocalFileUploader implements Uploader {
  async upload(pkg: PackageToUpload): Promise<PackageRef> {
    return { kind: 'file', path: pkg.file, sha256: pkg.sha256, size: pkg.size };
  }

  async delete(): Promise<void> {
    // The package belongs to the job directory, which outlives the job for `twister2 logs`.
  }
}

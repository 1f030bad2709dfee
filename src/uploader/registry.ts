import type { JobSecrets } from '../client/secrets.js';
import type { JobSpec } from '../spec/schema.js';
import { HttpUploader } from './http/http-uploader.js';
import { LocalFileUploader } from './local/local-file-uploader.js';
import { S3Uploader } from './s3/s3-uploader.js';
import { SftpUploader } from './sftp/sftp-uploader.js';
import { SharedDirUploader } from './shared/shared-dir-uploader.js';
import type { Uploader } from './uploader.js';

/** One line per kind of uploader; the spec has already checked that the kind's section is there. */
export function createUploader(spec: JobSpec, secrets: JobSecrets): Uploader {
  const u = spec.uploader;
  switch (u.kind) {
    case 'local':
      return new LocalFileUploader();
    case 'shared':
      return new SharedDirUploader(u.shared!);
    case 'http':
      return new HttpUploader({ url: u.http!.url, token: secrets.httpToken! });
    case 's3': {
      const s3 = u.s3!;
      return new S3Uploader({
        bucket: s3.bucket,
        prefix: s3.prefix,
        region: s3.region,
        forcePathStyle: s3.forcePathStyle,
        keep: s3.keep,
        presignExpirySeconds: Math.round(s3.presignExpiry / 1000),
        ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
        ...(secrets.s3Credentials ? { credentials: secrets.s3Credentials } : {}),
      });
    }
    case 'sftp': {
      const sftp = u.sftp!;
      const uploader = new SftpUploader({
        hosts: sftp.hosts.map(parseSshHost),
        identityFile: sftp.identityFile,
        targetDir: sftp.targetDir,
        parallel: sftp.parallel,
        ...(sftp.knownHosts ? { knownHostsFile: sftp.knownHosts } : {}),
      });
      return sftp.keep ? keepingUploads(uploader) : uploader;
    }
  }
}

/** The same uploader, with the copies left in place when the job ends. */
function keepingUploads(uploader: Uploader): Uploader {
  return { upload: (pkg, opts) => uploader.upload(pkg, opts), delete: async () => {} };
}

function parseSshHost(h: string | { host: string; port: number; user?: string | undefined }): { host: string; port: number; username?: string } {
  if (typeof h !== 'string') return { host: h.host, port: h.port, ...(h.user ? { username: h.user } : {}) };
  const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(h)!;
  return { host: m[2]!, port: m[3] ? Number(m[3]) : 22, ...(m[1] ? { username: m[1] } : {}) };
}

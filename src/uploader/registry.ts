import type { JobSecrets } from '../job/secrets.js';
import type { JobSpec } from '../spec/schema.js';
import type { Uploader } from './uploader.js';

/**
 * One case per kind of uploader; the spec has already checked that the kind's section is there.
 * Each is imported when used: the S3 SDK and ssh2 are heavy, and most jobs need neither.
 */
export async function createUploader(spec: JobSpec, secrets: JobSecrets): Promise<Uploader> {
  const u = spec.uploader;
  switch (u.kind) {
    case 'local': {
      const { LocalFileUploader } = await import('./local/local-file-uploader.js');
      return new LocalFileUploader();
    }
    case 'shared': {
      const { SharedDirUploader } = await import('./shared/shared-dir-uploader.js');
      return new SharedDirUploader(u.shared!);
    }
    case 'http': {
      const { HttpUploader } = await import('./http/http-uploader.js');
      return new HttpUploader({ url: u.http!.url, token: secrets.httpToken! });
    }
    case 's3': {
      const { S3Uploader } = await import('./s3/s3-uploader.js');
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
      const { SftpUploader } = await import('./sftp/sftp-uploader.js');
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

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { PackageServer } from '../../src/uploader/http/package-server.js';
import { uploaderConformance } from '../conformance/uploader-conformance.js';
import { freePort, startS3Server, type S3Server } from '../env/s3-server.js';
import { s3cmd, s3ls } from '../env/s3cmd.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';

/** Every uploader kind runs the same contract against its real store: a directory, the package server, moto's S3, sshd hosts. */

const temporary: string[] = [];
const tmp = (prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  temporary.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** Everything under `dir`, as relative paths: what a name escaping the store would add to. */
function listTree(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).sort() : [];
}

/** The entries of a job's directory in a store, the directory itself first; empty when it is gone. */
function jobDirEntries(dir: string): string[] {
  return existsSync(dir) ? ['.', ...readdirSync(dir)] : [];
}

/** Flips one byte in the middle of a file, keeping its size. */
function flipByte(file: string): void {
  const b = readFileSync(file);
  b[b.length >> 1] = b[b.length >> 1]! ^ 0xff;
  writeFileSync(file, b);
}

describe('uploader conformance', () => {
  describe('local', () => {
    uploaderConformance({
      kind: 'local',
      transport: 'file',
      setup: () => ({ spec: { kind: 'local' } }),
      credentials: () => [],
      stored: async (pkg) => (existsSync(pkg.file) ? [pkg.file] : []),
      storeListing: async () => [],
      corruptStored: async (pkg) => flipByte(pkg.file),
      failures: [],
      can: { upload: false, delete: false, keep: false, adopt: false, readToken: false },
    });
  });

  describe('shared', () => {
    const parent = tmp('t2-conform-shared-');
    const dir = path.join(parent, 'store');
    const blocker = path.join(parent, 'a-file');
    writeFileSync(blocker, 'not a directory');
    uploaderConformance({
      kind: 'shared',
      transport: 'file',
      setup: ({ keep }) => ({ spec: { kind: 'shared', shared: { dir, keep } } }),
      credentials: () => [],
      stored: async (pkg) => jobDirEntries(path.join(dir, pkg.jobId)),
      storeListing: async () => listTree(parent),
      corruptStored: async (pkg) => flipByte(path.join(dir, pkg.jobId, 'package.tar.gz')),
      failures: [
        {
          what: 'a shared directory that cannot be created (a file is in the way)',
          setup: async () => ({
            uploader: { spec: { kind: 'shared', shared: { dir: path.join(blocker, 'store') } } },
            credentials: [],
            says: [/shared directory/, new RegExp(`${blocker}/store`), /ENOTDIR/],
          }),
          code: 'T2_UPLOAD',
        },
      ],
      can: { upload: true, delete: true, keep: true, adopt: false, readToken: false },
    });
  });

  describe('http (the package server)', () => {
    const ADMIN = 'conformance-package-server-admin-token';
    const parent = tmp('t2-conform-http-');
    const storage = path.join(parent, 'store');
    const server = new PackageServer();
    let url = '';
    let closedPort = 0;
    beforeAll(async () => {
      url = await server.start({ dir: storage, token: ADMIN });
      closedPort = await freePort();
    });
    afterAll(() => server.close());
    uploaderConformance({
      kind: 'http',
      transport: 'http',
      setup: () => ({ spec: { kind: 'http', http: { url } }, secrets: { httpToken: ADMIN } }),
      credentials: () => [ADMIN],
      stored: async (pkg) => readdirSync(storage).filter((f) => f.startsWith(`${pkg.jobId}.`)),
      storeListing: async () => listTree(parent),
      corruptStored: async (pkg) => flipByte(path.join(storage, `${pkg.jobId}.tar.gz`)),
      downloads: (jobId) => server.stats().gets[`${jobId}.tar.gz`] ?? 0,
      failures: [
        {
          what: 'a wrong token',
          setup: async () => ({
            uploader: { spec: { kind: 'http', http: { url } }, secrets: { httpToken: 'not-the-admin-token-of-this-server' } },
            credentials: ['not-the-admin-token-of-this-server'],
            says: [/the package server at http:\/\/127\.0\.0\.1:\d+\/packages\/conform-http-[\w-]+\.tar\.gz refused the token \(HTTP 401\)/],
          }),
          code: 'T2_UPLOAD',
        },
        {
          what: 'an unreachable package server',
          setup: async () => ({
            uploader: { spec: { kind: 'http', http: { url: `http://127.0.0.1:${closedPort}` } }, secrets: { httpToken: ADMIN } },
            credentials: [],
            says: [new RegExp(`the package server at http://127\\.0\\.0\\.1:${closedPort}/packages/`), /ECONNREFUSED/],
          }),
          code: 'T2_UPLOAD',
        },
      ],
      can: { upload: true, delete: true, keep: false, adopt: true, readToken: true },
    });
  });

  describe('s3 (moto)', () => {
    const bucket = 'conform';
    let s3: S3Server;
    let closedPort = 0;
    beforeAll(async () => {
      s3 = await startS3Server();
      const mb = s3cmd(s3, ['mb', `s3://${bucket}`]);
      if (mb.code !== 0) throw new Error(`s3cmd mb failed: ${mb.stderr}`);
      closedPort = await freePort();
    }, 600_000);
    afterAll(() => s3?.stop());
    const spec = (endpoint: string, keep = false) => ({ kind: 's3', s3: { bucket, endpoint, forcePathStyle: true, keep } });
    const secrets = () => ({ s3Credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    uploaderConformance({
      kind: 's3',
      transport: 'http',
      setup: ({ keep }) => ({ spec: spec(s3.endpoint, keep), secrets: secrets() }),
      // The access key ID is not a secret: SigV4 puts it into every presigned URL (X-Amz-Credential), where it grants nothing.
      credentials: () => [s3.secretAccessKey],
      stored: async (pkg) => s3ls(s3, `s3://${bucket}/twister2/${pkg.jobId}/`),
      storeListing: async () => s3ls(s3, `s3://${bucket}/`).sort(),
      corruptStored: async (pkg) => {
        const copy = path.join(tmp('t2-conform-s3-'), 'package.tar.gz');
        writeFileSync(copy, readFileSync(pkg.file));
        flipByte(copy);
        const put = s3cmd(s3, ['put', copy, `s3://${bucket}/twister2/${pkg.jobId}/package.tar.gz`]);
        if (put.code !== 0) throw new Error(`s3cmd put failed: ${put.stderr}`);
      },
      // moto logs every request line; the GETs of the package are the workers' downloads.
      downloads: (jobId) => readFileSync(s3.logFile, 'utf8').split(`"GET /${bucket}/twister2/${jobId}/package.tar.gz?`).length - 1,
      failures: [
        {
          what: 'an unknown access key',
          setup: async () => {
            await s3.setAuthEnforced(true);
            const wrong = { accessKeyId: 'AKIAUNKNOWNKEY123456', secretAccessKey: 'NotTheRealSecret0123456789' };
            return {
              uploader: { spec: spec(s3.endpoint), secrets: { s3Credentials: wrong } },
              credentials: [wrong.accessKeyId, wrong.secretAccessKey],
              says: [/S3 upload of s3:\/\/conform\/twister2\/conform-s3-[\w-]+\/package\.tar\.gz at http:\/\/127\.0\.0\.1:\d+ failed/, /InvalidAccessKeyId/],
              restore: () => s3.setAuthEnforced(false),
            };
          },
          code: 'T2_S3_ACCESS',
        },
        {
          what: 'an unreachable endpoint',
          setup: async () => ({
            uploader: { spec: spec(`http://127.0.0.1:${closedPort}`), secrets: secrets() },
            credentials: [s3.accessKeyId, s3.secretAccessKey],
            says: [new RegExp(`S3 upload of s3://conform/twister2/conform-s3-[\\w-]+/package\\.tar\\.gz at http://127\\.0\\.0\\.1:${closedPort} failed`), /ECONNREFUSED/],
          }),
          code: 'T2_S3',
        },
      ],
      can: { upload: true, delete: true, keep: true, adopt: true, readToken: false },
    });
  });

  describe('sftp (sshd in a network namespace)', () => {
    let ssh: SshHosts;
    const parent = tmp('t2-conform-sftp-');
    const targetDir = path.join(parent, 'packages');
    const wrongKey = path.join(tmp('t2-conform-key-'), 'wrong_ed25519');
    beforeAll(async () => {
      ssh = await startSshHosts(1, { prefix: 't2cf' });
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
      mkdirSync(targetDir);
    }, 600_000);
    afterAll(() => ssh?.stop());
    const host = () => `root@${ssh.hosts[0]!.address}:22`;
    const keyBody = (file: string) => readFileSync(file, 'utf8').split('\n')[1] ?? '';
    const spec = (hosts: string[], identityFile: string, keep = false) => ({ kind: 'sftp', sftp: { hosts, identityFile, knownHosts: ssh.knownHostsFile, targetDir, keep } });
    uploaderConformance({
      kind: 'sftp',
      transport: 'file',
      setup: ({ keep }) => ({ spec: spec([host()], ssh.keyFile, keep) }),
      credentials: () => [keyBody(ssh.keyFile)],
      // The hosts share this machine's file system, as hosts on NFS would: what is on the host is here too.
      stored: async (pkg) => jobDirEntries(path.join(targetDir, pkg.jobId)),
      storeListing: async () => listTree(parent),
      corruptStored: async (pkg) => flipByte(path.join(targetDir, pkg.jobId, 'package.tar.gz')),
      failures: [
        {
          what: 'a key the host refuses',
          setup: async () => ({
            uploader: { spec: spec([host()], wrongKey) },
            credentials: [keyBody(wrongKey)],
            says: [new RegExp(`SSH authentication as ${host()} failed with the key ${wrongKey}`)],
          }),
          code: 'T2_HOST_AUTH_FAILED',
        },
        {
          what: 'an unreachable host',
          setup: async () => ({
            uploader: { spec: spec([`root@${ssh.unusedAddress}:22`], ssh.keyFile) },
            credentials: [],
            says: [new RegExp(`cannot reach ${ssh.unusedAddress.replace(/\./g, '\\.')}:22 over SSH`)],
          }),
          code: 'T2_HOST_UNREACHABLE',
        },
      ],
      can: { upload: true, delete: true, keep: true, adopt: false, readToken: false },
    });
  });
});

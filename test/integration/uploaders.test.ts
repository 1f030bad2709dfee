import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageServer } from '../../src/uploader/http/package-server.js';
import { startS3Server } from '../env/s3-server.js';
import { s3cmd, s3ls } from '../env/s3cmd.js';
import { startSshHosts } from '../env/ssh-hosts.js';
import { fixture, jobIds, jobProcesses, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { startCorruptingProxy } from '../helpers/corrupting-proxy.js';

const WORKERS = 8;
const SIZE = 50 * 2 ** 20;
const data = randomBytes(SIZE);
/** Failure paths need no 50 MB: a smaller package keeps them quick. */
const SMALL = 5 * 2 ** 20;
const SERVER_TOKEN = 'package-server-token-for-tests';

interface Rec {
  id: number;
  step: string;
  size?: number;
}

function bigJob(uploader: Record<string, unknown>, size = SIZE): string {
  const dir = makeJob({ name: 'upload', workers: WORKERS, worker: { module: 'w.mjs' }, uploader }, { 'w.mjs': fixture('package-worker.mjs') });
  writeFileSync(path.join(dir, 'data.bin'), data.subarray(0, size));
  return dir;
}

/** Every worker saw the whole file, and exactly one on this host fetched and unpacked it. */
function expectDelivered(home: string, jobId: string, out: string, size = SIZE): void {
  const ready = testRecords<Rec>(out).filter((r) => r.step === 'ready');
  expect(ready.map((r) => r.id).sort((a, b) => a - b)).toEqual([...Array(WORKERS).keys()]);
  expect(ready.every((r) => r.size === size)).toBe(true);
  expect(readLogs(home, jobId).match(/fetched and unpacked the package/g)).toHaveLength(1);
  expect(jobProcesses(jobId)).toEqual([]);
}

let packageServer: PackageServer;
let serverUrl: string;
const storage = mkdtempSync(path.join(os.tmpdir(), 't2-pkgsrv-'));

beforeAll(async () => {
  packageServer = new PackageServer();
  serverUrl = await packageServer.start({ dir: storage, token: SERVER_TOKEN, maxBytes: 2 ** 30 });
});
afterAll(async () => {
  await packageServer.close();
});

describe('uploaders: a 50 MB package reaches 8 local workers', () => {
  it('over HTTP through the package server: one GET for the host, checksum verified, deleted afterwards', async () => {
    const home = tempHome();
    const before = packageServer.stats();
    const r = await runCli(['submit', bigJob({ kind: 'http', http: { url: serverUrl } })], home, { TWISTER2_PACKAGE_SERVER_TOKEN: SERVER_TOKEN });
    expect(r.code, r.stderr).toBe(0);
    const [jobId] = jobIds(home);
    expectDelivered(home, jobId!, r.stdout);
    expect(packageServer.stats().gets[`${jobId}.tar.gz`] ?? 0).toBe(1);
    expect(packageServer.stats().deletes).toBe(before.deletes + 1);
    expect(readdirSync(storage).filter((f) => f.startsWith(jobId!))).toEqual([]);
    expect(r.stderr).toMatch(/uploading package .* \(100%\)/);
  });

  it('a corrupted download is detected and retried', async () => {
    const home = tempHome();
    const proxy = await startCorruptingProxy(serverUrl, 1);
    try {
      const r = await runCli(['submit', bigJob({ kind: 'http', http: { url: proxy.url } }, SMALL)], home, { TWISTER2_PACKAGE_SERVER_TOKEN: SERVER_TOKEN });
      expect(r.code, r.stderr).toBe(0);
      const [jobId] = jobIds(home);
      expect(readLogs(home, jobId!)).toMatch(/package download attempt 1 failed \(checksum mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}\); retrying/);
      expect(proxy.gets()).toBe(2);
      expectDelivered(home, jobId!, r.stdout, SMALL);
    } finally {
      await proxy.close();
    }
  });

  it('a permanently bad package fails the job, naming the URL and the cause', async () => {
    const home = tempHome();
    const proxy = await startCorruptingProxy(serverUrl, Infinity);
    try {
      const r = await runCli(['submit', bigJob({ kind: 'http', http: { url: proxy.url } }, SMALL)], home, { TWISTER2_PACKAGE_SERVER_TOKEN: SERVER_TOKEN });
      expect(r.code).toBe(1);
      const [jobId] = jobIds(home);
      const url = `${proxy.url}/packages/${jobId}.tar.gz`;
      expect(r.stderr).toMatch(new RegExp(`FAILED: worker \\d+ failed: could not start: cannot fetch the job package from ${url} after 5 attempts: checksum mismatch`));
      expect(proxy.gets()).toBe(5); // one worker tried; the others on the host waited for it
      expect(jobProcesses(jobId!)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('through a shared directory, removed after the job', async () => {
    const home = tempHome();
    const shared = mkdtempSync(path.join(os.tmpdir(), 't2-shared-'));
    const r = await runCli(['submit', bigJob({ kind: 'shared', shared: { dir: shared } })], home);
    expect(r.code, r.stderr).toBe(0);
    expectDelivered(home, jobIds(home)[0]!, r.stdout);
    expect(readdirSync(shared)).toEqual([]);
  });

  describe('over S3', () => {
    let s3: Awaited<ReturnType<typeof startS3Server>>;
    beforeAll(async () => {
      s3 = await startS3Server();
      expect(s3cmd(s3, ['mb', 's3://jobs']).code).toBe(0);
    }, 600_000);
    afterAll(async () => s3?.stop());

    it('multipart upload, presigned fetch, visible during the job, deleted after it; credentials nowhere', async () => {
      const home = tempHome();
      const go = path.join(home, 'go');
      const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
      const job = bigJob({ kind: 's3', s3: { bucket: 'jobs', endpoint: s3.endpoint, forcePathStyle: true, credentials } });
      const cli = startCli(['submit', job], home, { T2TEST_GO: go });
      const jobId = await waitFor('the job', () => jobIds(home)[0], 10_000);
      await waitFor('8 workers ready', () => testRecords<Rec>(readLogs(home, jobId)).filter((x) => x.step === 'ready').length === WORKERS, 60_000);
      expect(s3ls(s3, 's3://jobs/twister2/')).toContain(`twister2/${jobId}/package.tar.gz`);
      writeFileSync(go, '');
      expect(await cli.closed, cli.output().stderr).toBe(0);
      expectDelivered(home, jobId, cli.output().stdout);
      expect(s3ls(s3, 's3://jobs/twister2/')).toEqual([]);
      // The secret is in no log line, no job file, and not in the package.
      const files = jobFiles(home, jobId);
      expect(files.some((f) => f.includes('"bucket": "jobs"') || f.includes('"bucket":"jobs"'))).toBe(true); // the spec and manifest are there
      const everything = [cli.output().stdout, cli.output().stderr, readLogs(home, jobId), ...files].join('\n');
      expect(everything.includes(s3.secretAccessKey)).toBe(false);
    });
  });

  describe('over SFTP to a host reached by SSH', () => {
    let ssh: Awaited<ReturnType<typeof startSshHosts>>;
    beforeAll(async () => {
      ssh = await startSshHosts(1);
    }, 600_000);
    afterAll(async () => ssh?.stop());

    it('copies once, verifies the checksum on the host, workers read it there; removed afterwards', async () => {
      const home = tempHome();
      const targetDir = mkdtempSync(path.join(os.tmpdir(), 't2-sftp-'));
      const host = ssh.hosts[0]!;
      const r = await runCli(['submit', bigJob({ kind: 'sftp', sftp: { hosts: [`root@${host.address}:${host.port}`], identityFile: ssh.keyFile, targetDir } })], home);
      expect(r.code, r.stderr).toBe(0);
      expectDelivered(home, jobIds(home)[0]!, r.stdout);
      expect(readdirSync(targetDir)).toEqual([]);
    });
  });
});

/**
 * The text of every small file the job left in its directory: records, spec, status, logs, and the
 * package manifest as unpacked next to the package. The big binaries (package, data) are skipped.
 */
function jobFiles(home: string, jobId: string): string[] {
  const dir = path.join(home, 'jobs', jobId);
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size < 2 ** 20) out.push(readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return out;
}

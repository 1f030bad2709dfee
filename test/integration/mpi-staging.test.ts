import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../../src/cli/output.js';
import { ensureOpenMpi } from '../env/openmpi.js';
import { mpiLeftovers, mpiSpecFor } from '../env/mpi-hosts.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';
import { fixture, jobIds, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';

/**
 * The mpi launcher with the package staged by direct SSH copy (uploader kind "sftp") to the same two
 * network-namespace hosts mpirun starts the ranks on. Those hosts share this machine's file system, so
 * "once per host" is proven by what the copy itself reports (the CLI's upload progress counts every
 * host's copy up to the package size) rather than by files, which all land on the same disk.
 */

ensureOpenMpi();
let env: SshHosts;

/** More than the CLI's 4 MiB threshold for printing upload progress; random, so gzip cannot shrink it. */
const DATA_SIZE = 6 * 2 ** 20;
const data = randomBytes(DATA_SIZE);
const dataSha256 = createHash('sha256').update(data).digest('hex');

function mpiSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  // Namespace hosts share one session directory, where OpenMPI's shared-memory transport collides (see mpi.test.ts).
  return mpiSpecFor(env, { mca: { btl: 'self,tcp' }, ...extra });
}

function sftpUploader(targetDir: string, hosts: string[] = env.hosts.map((h) => `root@${h.address}`)): Record<string, unknown> {
  return { kind: 'sftp', sftp: { hosts, identityFile: env.keyFile, targetDir } };
}

function leftovers(jobId: string): string[] {
  return mpiLeftovers(env, jobId);
}

function stagedJob(name: string, spec: Record<string, unknown>): string {
  const dir = makeJob({ name, workers: 4, worker: { module: 'w.mjs' }, ...spec }, { 'w.mjs': fixture('mpi-package-worker.mjs') });
  writeFileSync(path.join(dir, 'data.bin'), data);
  return dir;
}

beforeAll(async () => {
  env = await startSshHosts(2, { prefix: 't2mps' });
});
afterAll(async () => {
  await env?.stop();
});

interface Rec {
  id: number;
  step: string;
  rank?: string;
  ip?: string;
  size?: number;
  sha256?: string;
  refKind?: string;
  refPath?: string;
  refExists?: boolean;
}

describe('mpi launcher with the package staged over SSH (uploader sftp)', () => {
  it('4 ranks on 2 hosts read the package copied once per host, checksum intact; SUCCEEDED, copies removed, nothing left', async () => {
    const home = tempHome();
    const targetDir = mkdtempSync(path.join(os.tmpdir(), 't2-mpi-stage-'));
    const [h1, h2] = env.hosts;
    // Each host named twice (with and without the port): still one copy per distinct host.
    const hosts = [`root@${h1!.address}`, `root@${h2!.address}`, `root@${h1!.address}:22`, `root@${h2!.address}:22`];
    const r = await runCli(['submit', stagedJob('mpi-staged', { ...mpiSpec(), uploader: sftpUploader(targetDir, hosts) })], home);
    const jobId = jobIds(home)[0]!;
    const logs = readLogs(home, jobId);
    expect(r.code, `${r.stderr}\n${logs}`).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/SUCCEEDED/);

    // The package file the ranks were given is the staged copy, at <targetDir>/<jobId>/package.tar.gz.
    const staged = path.join(targetDir, jobId, 'package.tar.gz');
    const ready = testRecords<Rec>(r.stdout).filter((x) => x.step === 'ready');
    expect(ready.map((x) => x.id).sort()).toEqual([0, 1, 2, 3]);
    for (const x of ready) {
      expect(x.rank).toBe(String(x.id));
      expect(x).toMatchObject({ size: DATA_SIZE, sha256: dataSha256, refKind: 'file', refPath: staged, refExists: true });
    }
    // Ranks ran inside both namespaces (2 slots each).
    const hostAddrs = env.hosts.map((h) => h.address);
    expect(ready.every((x) => hostAddrs.includes(x.ip!))).toBe(true);
    expect(new Set(ready.map((x) => x.ip)).size).toBe(2);

    // Once per host: the upload's total is the package size times the distinct hosts (2, not 4), and it reached it.
    const pkgSize = Number(/fetched and unpacked the package \((\d+) bytes\) from (\S+)/.exec(logs)?.[1]);
    expect(pkgSize).toBeGreaterThan(4 * 2 ** 20);
    const progress = [...r.stderr.matchAll(/uploading package (\S+ \S+) of (\S+ \S+) \((\d+)%\)/g)];
    expect(progress.length).toBeGreaterThan(0);
    expect(new Set(progress.map((m) => m[2]))).toEqual(new Set([formatBytes(2 * pkgSize)]));
    expect(progress.at(-1)?.[1]).toBe(formatBytes(2 * pkgSize));
    expect(progress.at(-1)?.[3]).toBe('100');
    // The hosts share one file system here (like NFS), so one rank fetched it for all, from the staged path.
    const fetched = [...logs.matchAll(/fetched and unpacked the package \(\d+ bytes\) from (\S+)/g)];
    expect(fetched.map((m) => m[1])).toEqual([staged]);

    // The staged copies are removed when the job ends, and no process of the job is left on any host.
    expect(readdirSync(targetDir)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('a staged copy corrupted after the upload fails the job on the checksum; nothing left', async () => {
    const home = tempHome();
    const targetDir = mkdtempSync(path.join(os.tmpdir(), 't2-mpi-stage-'));
    const cli = startCli(['submit', stagedJob('mpi-staged-corrupt', { ...mpiSpec(), uploader: sftpUploader(targetDir) })], home);
    // Both hosts' copies are written to this one directory (shared file system), each as a .partial file
    // renamed into place once verified: wait until the transfer reached 100% and only the final file is left,
    // so no later rename replaces the corrupted file. The ranks start only after the launcher's ssh checks
    // and mpirun's own ssh round trips, so the file is changed before any of them reads it.
    await waitFor('the upload to finish', () => /uploading package .* \(100%\)/.test(cli.output().stderr), 60_000);
    const jobId = await waitFor('the staged copies in place', () => {
      const [id] = readdirSync(targetDir);
      return id && readdirSync(path.join(targetDir, id)).join() === 'package.tar.gz' ? id : undefined;
    }, 30_000);
    const staged = path.join(targetDir, jobId, 'package.tar.gz');
    const fd = openSync(staged, 'r+');
    try {
      writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 1 << 20);
    } finally {
      closeSync(fd);
    }
    const code = await cli.closed;
    const { stdout, stderr } = cli.output();
    const logs = readLogs(home, jobId);
    expect(code, `${stderr}\n${logs}`).not.toBe(0);
    expect(stdout + stderr).toMatch(/FAILED/);
    expect(stdout + stderr + logs).toMatch(new RegExp(`package ${staged.replace(/[.]/g, '\\.')} has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}`));
    expect(testRecords<Rec>(stdout).filter((x) => x.step === 'ready')).toEqual([]);
    expect(readdirSync(targetDir)).toEqual([]);
    expect(leftovers(jobId)).toEqual([]);
  });

  it('mpi.mpirun naming a missing program: a clear error naming it and the setting, exit code not 0, nothing left', async () => {
    for (const mpirun of ['/nonexistent/openmpi/bin/mpirun', 'mpirun-that-does-not-exist']) {
      const home = tempHome();
      const targetDir = mkdtempSync(path.join(os.tmpdir(), 't2-mpi-stage-'));
      const t0 = Date.now();
      const r = await runCli(['submit', stagedJob('mpi-no-mpirun', { ...mpiSpec({ mpirun }), uploader: sftpUploader(targetDir) })], home);
      expect(Date.now() - t0).toBeLessThan(30_000);
      const out = r.stderr + r.stdout;
      expect(r.code, out).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(out).toContain(`"${mpirun}" (mpi.mpirun) was not found${mpirun.includes('/') ? '' : ' on PATH'}`);
      expect(out).toContain('mpirun');
      const ids = jobIds(home);
      for (const id of ids) expect(leftovers(id)).toEqual([]);
      // Whatever was staged before the launcher gave up is gone too.
      expect(readdirSync(targetDir)).toEqual([]);
    }
  });
});

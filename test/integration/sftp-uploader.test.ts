import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Twister2Error } from '../../src/errors.js';
import { SftpUploader } from '../../src/uploader/sftp/sftp-uploader.js';
import type { PackageToUpload } from '../../src/uploader/uploader.js';
import { startSshHosts, type SshHosts } from '../env/ssh-hosts.js';

const SIZE = 50 * 1024 * 1024;

async function writeRandomFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(file, 'w');
  try {
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 4 * 1024 * 1024));
      hash.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

async function rejection(p: Promise<unknown>): Promise<Twister2Error> {
  try {
    await p;
  } catch (err) {
    expect(Twister2Error.is(err)).toBe(true);
    return err as Twister2Error;
  }
  throw new Error('expected a rejection');
}

/** Established TCP connections from the root namespace to port 22 of an address. */
function sshConnections(address: string): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', 'dst', `${address}:22`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

describe('SftpUploader: direct copy to hosts in network namespaces', () => {
  let env: SshHosts;
  let work: string;
  let targetDir: string;
  let pkg: PackageToUpload;
  let keyBody: string;

  beforeAll(async () => {
    // A fresh machine installs openssh-server and iproute2 first.
    env = await startSshHosts(2);
    work = mkdtempSync(path.join(os.tmpdir(), 'twister2-sftp-it-'));
    targetDir = path.join(work, 'remote-packages');
    const file = path.join(work, 'package.tar.gz');
    const sha256 = await writeRandomFile(file, SIZE);
    pkg = { jobId: `sftp-it-${process.pid}`, file, sha256, size: SIZE };
    keyBody = readFileSync(env.keyFile, 'utf8').split('\n')[1] ?? '';
  }, 900_000);

  afterAll(async () => {
    await env?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('copies to each distinct host exactly once, verified inside each host, then deletes', async () => {
    const [h1, h2] = env.hosts;
    const log: string[] = [];
    const uploader = new SftpUploader({
      hosts: [h1!, h2!, h1!, h2!].map((h) => ({ host: h.address, port: h.port, username: h.user })),
      identityFile: env.keyFile,
      targetDir,
      connectTimeoutMs: 3000,
      debug: (m) => log.push(m),
    });
    expect(uploader.hosts()).toEqual([`${h1!.address}:22`, `${h2!.address}:22`]);

    const progress: [number, number][] = [];
    const t0 = Date.now();
    const ref = await uploader.upload(pkg, { onProgress: (sent, total) => progress.push([sent, total]) });
    const ms = Date.now() - t0;
    console.log(`SFTP copy of 2 x ${SIZE / 1048576} MB: ${ms} ms (${progress.length} progress calls)`);

    const final = path.posix.join(targetDir, pkg.jobId, 'package.tar.gz');
    expect(ref).toEqual({ kind: 'file', path: final, sha256: pkg.sha256, size: SIZE });
    expect(uploader.copies()).toEqual({ [`${h1!.address}:22`]: 1, [`${h2!.address}:22`]: 1 });

    // Progress is summed over hosts and ends at size × hosts.
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.every(([, total]) => total === 2 * SIZE)).toBe(true);
    expect(progress.at(-1)).toEqual([2 * SIZE, 2 * SIZE]);
    expect(progress.every(([sent], i) => i === 0 || sent >= progress[i - 1]![0])).toBe(true);

    // Inside each host (its own namespace and sshd) and on the shared local file system.
    // One ssh round trip per host: its own address (so the command ran in that namespace), the checksum, the listing.
    for (const h of env.hosts) {
      const r = env.exec(h.name, ['sh', '-c', 'ip -4 -o addr show eth0 && echo --- && sha256sum "$1" && echo --- && ls "$(dirname "$1")"', 'sh', final]);
      expect(r.code).toBe(0);
      const [ipOut, shaOut, lsOut] = r.stdout.split('---\n');
      expect(ipOut).toContain(`inet ${h.address}/24`);
      expect(shaOut?.split(/\s+/)[0]).toBe(pkg.sha256);
      expect(lsOut?.trim()).toBe('package.tar.gz');
    }
    expect(await sha256File(final)).toBe(pkg.sha256);
    expect(readdirSync(path.dirname(final))).toEqual(['package.tar.gz']);

    // Without a known_hosts file every host key is accepted and its fingerprint logged; no key material.
    expect(log.filter((m) => /accepting host key SHA256:/.test(m))).toHaveLength(2);
    expect(log.join('\n')).not.toContain(keyBody);

    await uploader.delete();
    for (const h of env.hosts) expect(env.exec(h.name, ['test', '-e', path.posix.dirname(final)]).code).toBe(1);
    expect(existsSync(path.dirname(final))).toBe(false);
    await uploader.delete(); // idempotent
  });

  it('names an unreachable host within the connect timeout', async () => {
    const uploader = new SftpUploader({ hosts: [{ host: env.unusedAddress, username: 'root' }], identityFile: env.keyFile, targetDir, connectTimeoutMs: 3000 });
    const t0 = Date.now();
    const err = await rejection(uploader.upload({ ...pkg, jobId: 'unreachable' }));
    const ms = Date.now() - t0;
    expect(err.code).toBe('T2_HOST_UNREACHABLE');
    expect(err.message).toContain(`${env.unusedAddress}:22`);
    expect(ms).toBeLessThan(3000 + 1500);
    expect(uploader.copies()).toEqual({ [`${env.unusedAddress}:22`]: 0 });
    await uploader.delete(); // best effort: an unreachable host does not make it fail
  });

  it('rejects when aborted mid-copy and closes its connections', async () => {
    const uploader = new SftpUploader({
      hosts: env.hosts.map((h) => ({ host: h.address, username: h.user })),
      identityFile: env.keyFile,
      targetDir,
      connectTimeoutMs: 3000,
    });
    const ac = new AbortController();
    let last = 0;
    const job = { ...pkg, jobId: 'aborted' };
    const err = await rejection(
      uploader.upload(job, {
        signal: ac.signal,
        onProgress: (sent) => {
          last = sent;
          if (sent > SIZE / 2) ac.abort(new Error('user pressed ^C'));
        },
      }),
    );
    expect(err.code).toBe('T2_SFTP_UPLOAD_ABORTED');
    expect(last).toBeLessThan(2 * SIZE);
    expect(Object.values(uploader.copies())).toEqual([0, 0]);
    expect(existsSync(path.join(targetDir, 'aborted', 'package.tar.gz'))).toBe(false);
    for (let i = 0; i < 100 && env.hosts.some((h) => sshConnections(h.address) > 0); i++) await new Promise((r) => setTimeout(r, 20));
    for (const h of env.hosts) expect(sshConnections(h.address)).toBe(0);
    await uploader.delete();
    expect(existsSync(path.join(targetDir, 'aborted'))).toBe(false);
  });

  it('checks host keys against a known_hosts file when given one', async () => {
    const small = path.join(work, 'small.tar.gz');
    writeFileSync(small, 'tiny package');
    const smallPkg = { jobId: 'known-hosts', file: small, sha256: createHash('sha256').update('tiny package').digest('hex'), size: 12 };
    const hosts = env.hosts.map((h) => ({ host: h.address, username: h.user }));
    const good = new SftpUploader({ hosts, identityFile: env.keyFile, targetDir, knownHostsFile: env.knownHostsFile });
    await good.upload(smallPkg);
    expect(Object.values(good.copies())).toEqual([1, 1]);
    await good.delete();

    // Only the first host listed: the second is unknown and refused.
    const partial = path.join(work, 'known_hosts_partial');
    writeFileSync(partial, readFileSync(env.knownHostsFile!, 'utf8').split('\n')[0] + '\n');
    const strict = new SftpUploader({ hosts: [hosts[1]!], identityFile: env.keyFile, targetDir, knownHostsFile: partial });
    const err = await rejection(strict.upload(smallPkg));
    expect(err.code).toBe('T2_HOST_KEY_REJECTED');
    expect(err.message).toContain(`${env.hosts[1]!.address}:22`);
    expect(err.message).toContain('not in the known_hosts file');
  });

  it('reports a target directory it may not write as a permission error naming the host', async (ctx) => {
    const locked = path.join(work, 'locked');
    execFileSync('mkdir', ['-p', locked]);
    if (spawnSync('chattr', ['+i', locked]).status !== 0) ctx.skip();
    try {
      const h = env.hosts[0]!;
      const uploader = new SftpUploader({ hosts: [{ host: h.address, username: 'root' }], identityFile: env.keyFile, targetDir: path.join(locked, 'pkgs'), connectTimeoutMs: 3000 });
      const err = await rejection(uploader.upload({ ...pkg, jobId: 'locked' }));
      expect(err.code).toBe('T2_HOST_PERMISSION_DENIED');
      expect(err.message).toContain(`${h.address}:22`);
      expect(err.message).toContain(path.join(locked, 'pkgs', 'locked'));
    } finally {
      spawnSync('chattr', ['-i', locked]);
    }
  });
});

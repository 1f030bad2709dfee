import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { PackageError } from '../../../src/errors.js';
import { extractPackage, MANIFEST_NAME, packJob, type PackageInfo } from '../../../src/package/index.js';
import { makeJobDir, rawTar, tarList, tempDirs } from '../../helpers/archives.js';

const tmp = tempDirs();
afterEach(tmp.cleanup);

async function packed(): Promise<PackageInfo> {
  const source = path.join(await tmp.make(), 'job');
  await makeJobDir(source);
  return packJob({ source, outFile: path.join(await tmp.make(), 'job.tar.gz'), manifestExtra: { spec: { name: 'x' } } });
}

/** Rewrites the package's uncompressed tar bytes and returns the new file. */
async function rewrite(info: PackageInfo, edit: (tar: Buffer) => Buffer): Promise<string> {
  const file = path.join(await tmp.make(), 'tampered.tar.gz');
  await writeFile(file, gzipSync(edit(gunzipSync(await readFile(info.file)))));
  return file;
}

/** The manifest entry (header + padded data), which packJob always writes first. */
function manifestEntry(tar: Buffer): Buffer {
  const size = parseInt(tar.toString('latin1', 124, 136), 8);
  return tar.subarray(0, 512 + Math.ceil(size / 512) * 512);
}

async function expectRejected(file: string, needle: string | RegExp, opts?: { expectedSha256?: string }): Promise<void> {
  const target = path.join(await tmp.make(), 'target');
  await mkdir(target);
  const err = await extractPackage(file, target, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PackageError);
  expect((err as Error).message).toMatch(needle);
  expect(await readdir(target)).toEqual([]);
}

describe('tampered packages', () => {
  it('detects a flipped byte in a file', async () => {
    const file = await rewrite(await packed(), (tar) => {
      const at = tar.indexOf('hello nested');
      expect(at).toBeGreaterThan(0);
      tar[at] = 'H'.charCodeAt(0);
      return tar;
    });
    expect(tarList(file)).toContain('src/main.js');
    await expectRejected(file, /"src\/main\.js" has sha256 [0-9a-f]{64} but the manifest says [0-9a-f]{64}/);
  });

  it('checks expectedSha256 before anything else', async () => {
    const info = await packed();
    const wrong = '0'.repeat(64);
    await expectRejected(info.file, `has sha256 ${info.sha256}, expected ${wrong}`, { expectedSha256: wrong });
    const target = path.join(await tmp.make(), 'ok');
    await extractPackage(info.file, target, { expectedSha256: info.sha256.toUpperCase() });
    expect((await readdir(target)).sort()).toEqual(['README.md', 'bin', 'main-link.js', 'src']);
  });

  it('refuses a file that is not in the manifest', async () => {
    const file = await rewrite(await packed(), (tar) => Buffer.concat([tar.subarray(0, tar.length - 1024), rawTar([{ name: 'extra.sh', data: 'evil', mode: 0o755 }])]));
    expect(tarList(file)).toContain('extra.sh');
    await expectRejected(file, '"extra.sh" is not listed in its manifest');
  });

  it('refuses a package missing a file the manifest lists', async () => {
    const file = await rewrite(await packed(), (tar) => Buffer.concat([manifestEntry(tar), Buffer.alloc(1024)]));
    expect(tarList(file).trim().split('\n')).toHaveLength(1);
    await expectRejected(file, '"README.md" is listed in the manifest but missing');
  });

  it('refuses a package without a manifest, or with a broken one', async () => {
    const dir = await tmp.make();
    const noManifest = path.join(dir, 'plain.tar.gz');
    await writeFile(noManifest, gzipSync(rawTar([{ name: 'a.txt', data: 'a' }])));
    await expectRejected(noManifest, `has no ${MANIFEST_NAME}`);

    const badJson = path.join(dir, 'bad-json.tar.gz');
    await writeFile(badJson, gzipSync(rawTar([{ name: MANIFEST_NAME, data: '{not json' }])));
    await expectRejected(badJson, `${MANIFEST_NAME} in ${badJson} is not valid JSON`);

    const badShape = path.join(dir, 'bad-shape.tar.gz');
    await writeFile(badShape, gzipSync(rawTar([{ name: MANIFEST_NAME, data: JSON.stringify({ formatVersion: 2, files: [], totalBytes: 0 }) }])));
    await expectRejected(badShape, /is invalid \(formatVersion: /);
  });

  it('refuses a manifest path that tries to escape', async () => {
    const manifest = { formatVersion: 1, spec: {}, files: [{ path: '../x', size: 0, sha256: '0'.repeat(64), mode: 420, type: 'file' }], totalBytes: 0 };
    const file = path.join(await tmp.make(), 'm.tar.gz');
    await writeFile(file, gzipSync(rawTar([{ name: MANIFEST_NAME, data: JSON.stringify(manifest) }])));
    await expectRejected(file, /files\.0\.path: must be a relative posix path/);
  });
});

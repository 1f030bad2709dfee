import { execFileSync } from 'node:child_process';
import { cp, lstat, mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { extractPackage, MANIFEST_NAME, packJob } from '../../../src/package/index.js';
import { makeJobDir, readTree, tempDirs, writeZip } from '../../helpers/archives.js';

const tmp = tempDirs();
afterEach(tmp.cleanup);

const spec = { name: 'hello', workers: 2 };

async function jobDir(): Promise<string> {
  const dir = path.join(await tmp.make(), 'job');
  await makeJobDir(dir);
  return dir;
}

async function pack(source: string): Promise<{ file: string; sha256: string; fileCount: number }> {
  const outFile = path.join(await tmp.make('t2out-'), 'job.tar.gz');
  return packJob({ source, outFile, manifestExtra: { spec } });
}

/** Sets every mtime under `dir` (including dirs) to a new value without following symlinks. */
async function touchAll(dir: string, when: Date): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true })) {
    const p = path.join(dir, entry);
    if (!(await lstat(p)).isSymbolicLink()) await utimes(p, when, when);
  }
}

describe('packJob + extractPackage round trip', () => {
  it('restores nested files, the executable bit and in-tree symlinks, and skips .git', async () => {
    const source = await jobDir();
    const info = await pack(source);
    expect(info.fileCount).toBe(6);
    const target = path.join(await tmp.make(), 'out');
    const manifest = await extractPackage(info.file, target, { expectedSha256: info.sha256 });

    const { '.git': git, '.git/config': gitConfig, ...expected } = await readTree(source);
    expect(git?.type).toBe('dir');
    expect(gitConfig?.type).toBe('file');
    const extracted = await readTree(target);
    expect(extracted).toEqual(expected);
    expect(extracted['bin/run.sh']).toMatchObject({ type: 'file', executable: true });
    expect(extracted['main-link.js']).toEqual({ type: 'symlink', content: 'src/main.js' });
    expect(await readFile(path.join(target, 'src/lib/run-link'), 'utf8')).toBe('#!/bin/sh\necho run\n');

    expect(manifest.formatVersion).toBe(1);
    expect(manifest.spec).toEqual(spec);
    expect(manifest.files.map((f) => f.path)).toEqual(['README.md', 'bin/run.sh', 'main-link.js', 'src/lib/run-link', 'src/lib/util.js', 'src/main.js']);
    expect(manifest.files.find((f) => f.path === 'bin/run.sh')?.mode).toBe(0o755);
    expect(manifest.files.find((f) => f.path === 'main-link.js')).toMatchObject({ type: 'symlink', target: 'src/main.js' });
    expect(manifest.totalBytes).toBe(manifest.files.reduce((n, f) => n + f.size, 0));
  });

  it('writes the manifest first, with fixed mtimes and no owner', async () => {
    const info = await pack(await jobDir());
    const lines = execFileSync('tar', ['-tvzf', info.file], { encoding: 'utf8' }).trim().split('\n');
    expect(lines[0]).toContain(MANIFEST_NAME);
    for (const line of lines) expect(line).toMatch(/ 0\/0 .* 2000-01-01 00:00 /);
    expect(lines.join('\n')).not.toContain('.git');
    // gzip header: no timestamp, OS byte fixed to Unix.
    const head = (await readFile(info.file)).subarray(0, 10);
    expect(head.readUInt32LE(4)).toBe(0);
    expect(head[9]).toBe(3);
  });

  it('handles long and non-ASCII paths (pax headers) reproducibly', async () => {
    const source = await tmp.make();
    const deep = path.join(source, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60));
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(deep, 'données-数据.txt'), 'deep\n');
    await symlink('a'.repeat(60) + '/' + 'b'.repeat(60) + '/' + 'c'.repeat(60) + '/données-数据.txt', path.join(source, 'far'));
    const info = await pack(source);
    expect((await pack(source)).sha256).toBe(info.sha256);
    const target = path.join(await tmp.make(), 'x');
    await extractPackage(info.file, target);
    expect(await readTree(target)).toEqual(await readTree(source));
  });

  it('leaves out the output file when it is written inside the source', async () => {
    const source = await jobDir();
    const outFile = path.join(source, 'dist', 'job.tar.gz');
    const first = await packJob({ source, outFile, manifestExtra: { spec } });
    const second = await packJob({ source, outFile, manifestExtra: { spec } });
    expect(second.sha256).toBe(first.sha256);
    expect(first.fileCount).toBe(6);
  });

  it('packs an empty directory (only the manifest)', async () => {
    const info = await pack(await tmp.make());
    expect(info.fileCount).toBe(0);
    const manifest = await extractPackage(info.file, path.join(await tmp.make(), 'x'));
    expect(manifest.files).toEqual([]);
    expect(manifest.totalBytes).toBe(0);
  });
});

describe('reproducible packages', () => {
  it('gives the same bytes for the same content, whatever the mtimes or location', async () => {
    const source = await jobDir();
    const first = await pack(source);
    expect((await pack(source)).sha256).toBe(first.sha256);

    await touchAll(source, new Date('2031-05-06T07:08:09Z'));
    expect((await pack(source)).sha256).toBe(first.sha256);

    const copy = path.join(await tmp.make(), 'elsewhere');
    await cp(source, copy, { recursive: true, verbatimSymlinks: true });
    expect((await pack(copy)).sha256).toBe(first.sha256);
    expect(await readFile((await pack(copy)).file)).toEqual(await readFile(first.file));
  });

  it('changes the hash when content, the executable bit or the spec changes', async () => {
    const source = await jobDir();
    const base = await pack(source);
    const other = await packJob({ source, outFile: path.join(await tmp.make(), 'o.tar.gz'), manifestExtra: { spec: { name: 'other' } } });
    expect(other.sha256).not.toBe(base.sha256);
    execFileSync('chmod', ['+x', path.join(source, 'README.md')]);
    expect((await pack(source)).sha256).not.toBe(base.sha256);
  });

  it('gives a .zip and a .tar.gz of the directory the same hash as the directory', async () => {
    const source = await jobDir();
    const dirHash = (await pack(source)).sha256;
    const work = await tmp.make();

    // System tar: "./"-prefixed names, directory entries, real owners and mtimes; all normalized away.
    const tgz = path.join(work, 'job.tgz');
    execFileSync('tar', ['-czf', tgz, '-C', source, '.']);
    expect((await pack(tgz)).sha256).toBe(dirHash);

    const zip = await writeZip(path.join(work, 'job.zip'), [
      { name: 'README.md', data: '# hello job\n', mode: 0o100644 },
      { name: 'src/', dir: true },
      { name: 'src/main.js', data: 'console.log("hello nested");\n' },
      { name: 'src/lib/util.js', data: 'export const x = 1;\n', mode: 0o100600 },
      { name: 'src/lib/run-link', data: '../../bin/run.sh', mode: 0o120777 },
      { name: 'bin/run.sh', data: '#!/bin/sh\necho run\n', mode: 0o100755 },
      { name: 'main-link.js', data: 'src/main.js', mode: 0o120777 },
      { name: '.git/config', data: '[core]\n' },
    ]);
    expect((await pack(zip)).sha256).toBe(dirHash);
  });
});

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PackageError } from '../../../src/errors.js';
import { extractPackage, packJob, safeExtractArchive } from '../../../src/package/index.js';
import { makeJobDir, tarList, tempDirs, writeRawTarGz, writeZip, type RawTarEntry } from '../../helpers/archives.js';

const tmp = tempDirs();
afterEach(tmp.cleanup);

// packJob unpacks archives into os.tmpdir(); point it at a private dir to prove it cleans up.
const outer = tempDirs();
let privateTmp = '';
const savedTmpdir = process.env.TMPDIR;
beforeAll(async () => {
  privateTmp = await outer.make('t2tmp-');
  process.env.TMPDIR = privateTmp;
});
afterAll(async () => {
  process.env.TMPDIR = savedTmpdir;
  await outer.cleanup();
});

async function failure(promise: Promise<unknown>): Promise<PackageError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PackageError);
  return err as PackageError;
}

/** Packing must fail naming `needle`, leaving no output file, no partial file and no temp dir. */
async function expectPackRefused(source: string, needle: string): Promise<void> {
  const outDir = await tmp.make('t2out-');
  const outFile = path.join(outDir, 'job.tar.gz');
  const err = await failure(packJob({ source, outFile, manifestExtra: { spec: {} } }));
  expect(err.message).toContain(needle);
  expect(existsSync(outFile)).toBe(false);
  expect(await readdir(outDir)).toEqual([]);
  expect(await readdir(privateTmp)).toEqual([]);
}

/** Extraction must fail naming `needle` and write nothing into the (existing, empty) target. */
async function expectExtractRefused(extract: (target: string) => Promise<unknown>, needle: string): Promise<void> {
  const target = path.join(await tmp.make(), 'target');
  await mkdir(target);
  const err = await failure(extract(target));
  expect(err.message).toContain(needle);
  expect(await readdir(target)).toEqual([]);
}

const ok: RawTarEntry = { name: 'ok.txt', data: 'fine\n' };

const badTars: Array<{ title: string; entries: RawTarEntry[]; needle: string; listed: string }> = [
  { title: 'an absolute path', entries: [ok, { name: '/etc/evil', data: 'x' }], needle: '"/etc/evil" is an absolute path', listed: ' /etc/evil' },
  { title: 'a ../ path', entries: [ok, { name: '../evil', data: 'x' }], needle: '"../evil" contains a ".."', listed: ' ../evil' },
  {
    title: 'a symlink to /etc/passwd',
    entries: [ok, { name: 'passwd', type: '2', linkname: '/etc/passwd' }],
    needle: '"passwd" is a symlink to the absolute path "/etc/passwd"',
    listed: 'passwd -> /etc/passwd',
  },
  {
    // node-tar waits forever on its own path reservation for this one (found by extract.property.test.ts).
    title: 'a symlink a/b -> a, which would hang node-tar',
    entries: [ok, { name: 'a/b', type: '2', linkname: 'a' }],
    needle: '"a/b" is a symlink to "a", which read from the archive\'s root is a directory above the link',
    listed: 'a/b -> a',
  },
  {
    title: 'a symlink a -> ../../x',
    entries: [ok, { name: 'a', type: '2', linkname: '../../x' }],
    needle: '"a" is a symlink to "../../x", which points outside',
    listed: 'a -> ../../x',
  },
  {
    title: 'a nested symlink leaving the tree',
    entries: [{ name: 'd/', type: '5' }, { name: 'd/up', type: '2', linkname: '../../x' }],
    needle: '"d/up" is a symlink to "../../x"',
    listed: 'd/up -> ../../x',
  },
  {
    title: 'a hardlink to ../outside',
    entries: [ok, { name: 'hl', type: '1', linkname: '../outside' }],
    needle: '"hl" is a hardlink to "../outside"',
    listed: 'hl link to',
  },
  {
    title: 'a hardlink to /etc/passwd',
    entries: [ok, { name: 'hl', type: '1', linkname: '/etc/passwd' }],
    needle: '"hl" is a hardlink to "/etc/passwd"',
    listed: 'hl link to',
  },
  {
    title: 'a file written through an in-tree symlink',
    entries: [{ name: 'd', type: '2', linkname: 'sub' }, { name: 'd/evil', data: 'x' }],
    needle: '"d/evil" lies beneath the symlink "d"',
    listed: 'd/evil',
  },
  {
    title: 'a symlink that escapes through another symlink',
    entries: [{ name: 'a', type: '2', linkname: '.' }, { name: 'b', type: '2', linkname: 'a/..' }],
    needle: '"b" is a symlink to "a/..", which points outside',
    listed: 'b -> a/..',
  },
  { title: 'a fifo', entries: [ok, { name: 'pipe', type: '6' }], needle: '"pipe" is a FIFO', listed: 'pipe' },
  { title: 'a character device', entries: [ok, { name: 'tty', type: '3' }], needle: '"tty" is a CharacterDevice', listed: 'tty' },
];

describe('malicious tar.gz inputs', () => {
  it.each(badTars)('refuses $title, naming the entry', async ({ entries, needle, listed }) => {
    const file = await writeRawTarGz(path.join(await tmp.make(), 'bad.tar.gz'), entries);
    expect(tarList(file)).toContain(listed);
    await expectExtractRefused((target) => safeExtractArchive(file, target), needle);
    await expectExtractRefused((target) => extractPackage(file, target), needle);
    await expectPackRefused(file, needle);
  });
});

/** Sets the declared uncompressed size of the first central-directory entry. */
async function lieAboutSize(file: string, size: number): Promise<void> {
  const bytes = await readFile(file);
  const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  bytes.writeUInt32LE(size, cd + 24);
  await writeFile(file, bytes);
}

describe('malicious zip inputs', () => {
  it('refuses a ../ entry', async () => {
    const file = await writeZip(path.join(await tmp.make(), 'bad.zip'), [{ name: 'ok.txt' }, { name: 'xx/evil', data: 'x' }], { 'xx/evil': '../evil' });
    expect(execFileSync('unzip', ['-l', file], { encoding: 'utf8' })).toContain('../evil');
    await expectExtractRefused((target) => safeExtractArchive(file, target), '"../evil" contains a ".."');
    await expectPackRefused(file, '"../evil"');
  });

  it('refuses an absolute path', async () => {
    const file = await writeZip(path.join(await tmp.make(), 'bad.zip'), [{ name: 'ok.txt' }, { name: 'Xtmp/evil', data: 'x' }], { 'Xtmp/evil': '/tmp/evil' });
    expect(execFileSync('unzip', ['-l', file], { encoding: 'utf8' })).toContain('/tmp/evil');
    await expectExtractRefused((target) => safeExtractArchive(file, target), '"/tmp/evil" is an absolute path');
    await expectPackRefused(file, '"/tmp/evil"');
  });

  it('refuses symlinks leaving the tree, but keeps one that stays inside', async () => {
    const dir = await tmp.make();
    const bad = await writeZip(path.join(dir, 'bad.zip'), [{ name: 'ok.txt' }, { name: 'lib/link', data: '../../etc/passwd', mode: 0o120777 }]);
    await expectExtractRefused((target) => safeExtractArchive(bad, target), '"lib/link" is a symlink to "../../etc/passwd"');
    const abs = await writeZip(path.join(dir, 'abs.zip'), [{ name: 'link', data: '/etc/passwd', mode: 0o120777 }]);
    await expectExtractRefused((target) => safeExtractArchive(abs, target), '"link" is a symlink to the absolute path');
    const good = await writeZip(path.join(dir, 'good.zip'), [{ name: 'ok.txt', data: 'ok' }, { name: 'lib/link', data: '../ok.txt', mode: 0o120777 }]);
    const target = path.join(dir, 'good');
    await safeExtractArchive(good, target);
    expect(await readFile(path.join(target, 'lib/link'), 'utf8')).toBe('ok');
  });

  it('refuses an entry larger than its declared size', async () => {
    const file = await writeZip(path.join(await tmp.make(), 'bomb.zip'), [{ name: 'big.bin', data: 'A'.repeat(100_000) }]);
    await lieAboutSize(file, 100);
    await expectExtractRefused((target) => safeExtractArchive(file, target), '"big.bin"');
    const err = await failure(safeExtractArchive(file, path.join(await tmp.make(), 't')));
    expect(err.message).toMatch(/too many bytes/);
  });

  it('refuses a fifo entry', async () => {
    const file = await writeZip(path.join(await tmp.make(), 'fifo.zip'), [{ name: 'pipe', mode: 0o010644 }]);
    await expectExtractRefused((target) => safeExtractArchive(file, target), '"pipe" is a FIFO');
  });
});

describe('empty, broken and missing inputs', () => {
  it('refuses an empty zip', async () => {
    const file = await writeZip(path.join(await tmp.make(), 'empty.zip'), []);
    await expectExtractRefused((target) => safeExtractArchive(file, target), `archive ${file} is empty`);
    await expectPackRefused(file, `archive ${file} is empty`);
  });

  it('refuses an empty tar.gz', async () => {
    const file = path.join(await tmp.make(), 'empty.tar.gz');
    await writeFile(file, gzipSync(Buffer.alloc(1024)));
    expect(tarList(file)).toBe('');
    await expectExtractRefused((target) => safeExtractArchive(file, target), `archive ${file} is empty`);
    await expectPackRefused(file, `archive ${file} is empty`);
  });

  it('refuses a zero-byte file', async () => {
    const file = path.join(await tmp.make(), 'nothing.zip');
    await writeFile(file, '');
    await expectPackRefused(file, `archive ${file} is empty`);
  });

  it('refuses a file that is not an archive', async () => {
    const file = path.join(await tmp.make(), 'notes.txt');
    await writeFile(file, 'just some notes, not an archive\n');
    await expectExtractRefused((target) => safeExtractArchive(file, target), `${file} is not a .zip or .tar.gz archive`);
    await expectPackRefused(file, `${file} is not a .zip or .tar.gz archive`);
  });

  it('refuses gzip data that is not a tar, and a truncated tar.gz', async () => {
    const dir = await tmp.make();
    const notTar = path.join(dir, 'text.tar.gz');
    await writeFile(notTar, gzipSync(Buffer.from('hello '.repeat(200))));
    await expectPackRefused(notTar, `${notTar} is not a valid .tar.gz archive`);
    const truncated = path.join(dir, 'cut.tgz');
    const whole = execFileSync('tar', ['-czf', '-', '-C', dir, 'text.tar.gz']);
    await writeFile(truncated, whole.subarray(0, whole.length - 20));
    await expectPackRefused(truncated, `${truncated} is not a valid .tar.gz archive`);
  });

  it('refuses a missing source path', async () => {
    const missing = path.join(await tmp.make(), 'no-such-job');
    await expectPackRefused(missing, `job source ${missing} does not exist`);
    await expectExtractRefused((target) => safeExtractArchive(missing, target), `archive ${missing} does not exist`);
  });

  it('accepts a hardlink to an earlier file, and packs it as a plain copy', async () => {
    const file = await writeRawTarGz(path.join(await tmp.make(), 'hard.tar.gz'), [
      { name: './data.txt', data: 'shared\n' },
      { name: './copy.txt', type: '1', linkname: './data.txt' },
    ]);
    expect(tarList(file)).toContain('copy.txt link to ./data.txt');
    const target = path.join(await tmp.make(), 'x');
    await safeExtractArchive(file, target);
    expect(await readFile(path.join(target, 'copy.txt'), 'utf8')).toBe('shared\n');
    const info = await packJob({ source: file, outFile: path.join(await tmp.make(), 'p.tar.gz'), manifestExtra: { spec: {} } });
    const manifest = await extractPackage(info.file, path.join(await tmp.make(), 'y'));
    expect(manifest.files.map((f) => [f.path, f.type, f.size])).toEqual([
      ['copy.txt', 'file', 7],
      ['data.txt', 'file', 7],
    ]);
  });

  it('refuses a non-empty target directory', async () => {
    const file = await writeRawTarGz(path.join(await tmp.make(), 'ok.tar.gz'), [ok]);
    const target = await tmp.make();
    await writeFile(path.join(target, 'keep.txt'), 'mine');
    const err = await failure(safeExtractArchive(file, target));
    expect(err.message).toContain(`extraction directory ${target} is not empty`);
    expect(await readdir(target)).toEqual(['keep.txt']);
  });
});

describe('unsafe job directories', () => {
  it('refuses a symlink pointing outside the directory', async () => {
    const source = path.join(await tmp.make(), 'job');
    await makeJobDir(source);
    await symlink('../../../etc/passwd', path.join(source, 'src/escape'));
    await expectPackRefused(source, `"${source}/src/escape": it is a symlink to "../../../etc/passwd", outside the job directory`);
  });

  it('refuses an absolute symlink outside, but keeps an absolute one inside (made relative)', async () => {
    const source = path.join(await tmp.make(), 'job');
    await makeJobDir(source);
    await symlink('/etc/passwd', path.join(source, 'passwd'));
    await expectPackRefused(source, `"${source}/passwd": it is a symlink to "/etc/passwd"`);

    const clean = path.join(await tmp.make(), 'job');
    await makeJobDir(clean);
    await symlink(path.join(clean, 'src/main.js'), path.join(clean, 'bin/abs-link'));
    const info = await packJob({ source: clean, outFile: path.join(await tmp.make(), 'p.tar.gz'), manifestExtra: { spec: null } });
    expect(tarList(info.file)).toContain('bin/abs-link -> ../src/main.js');
  });

  it('refuses a fifo in the directory', async () => {
    const source = await tmp.make();
    await writeFile(path.join(source, 'a.txt'), 'a');
    execFileSync('mkfifo', [path.join(source, 'pipe')]);
    await expectPackRefused(source, `"${source}/pipe": it is a named pipe (FIFO)`);
  });

  it('refuses a file named like the manifest', async () => {
    const source = await tmp.make();
    await writeFile(path.join(source, 'twister2-manifest.json'), '{}');
    await expectPackRefused(source, 'twister2-manifest.json" uses a name twister2 reserves');
  });
});

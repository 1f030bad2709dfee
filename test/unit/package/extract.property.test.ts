import fc from 'fast-check';
import { lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Twister2Error } from '../../../src/errors.js';
import { safeExtractArchive } from '../../../src/package/index.js';
import { tempDirs, writeRawTarGz, writeZip, type RawTarEntry, type ZipFixtureEntry } from '../../helpers/archives.js';
import { propertySeed } from '../../helpers/property.js';

/**
 * Archives with hostile entries (".." segments, absolute paths, links out of the tree, devices and
 * fifos, duplicates) either extract inside the target or are refused with a PackageError, and nothing
 * is ever written outside the target. Absolute names and link targets point into a sandbox next to the
 * target, so an escape would show up there.
 */
const seed = propertySeed('archive extraction');
const tmp = tempDirs();
let sandbox = '';
let archives = '';
beforeAll(async () => {
  sandbox = await tmp.make('t2prop-');
  archives = await tmp.make('t2prop-archives-');
});
afterAll(tmp.cleanup);

const segment = fc.constantFrom('a', 'b', 'dir', '..', '.', 'twister2.yaml', 'x y', 'ü', 'escaped');
const relName = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
/** Names as an attacker writes them: relative, "./", absolute into the sandbox, with a trailing slash. */
const entryName = fc.oneof(
  { weight: 3, arbitrary: relName },
  fc.tuple(fc.constantFrom('./', '/', 'SANDBOX/', 'SANDBOX/../', '../'), relName, fc.constantFrom('', '/')).map(([a, b, c]) => a + b + c),
);
const linkTarget = fc.oneof(relName, fc.constantFrom('SANDBOX', 'SANDBOX/escaped', '/etc/passwd', '../../..', '.', '..'));

const resolveSandbox = (s: string): string => s.replaceAll('SANDBOX', sandbox);

const tarEntry: fc.Arbitrary<RawTarEntry> = fc.record({
  name: entryName,
  type: fc.constantFrom('0', '0', '0', '1', '2', '3', '5', '6'),
  linkname: linkTarget,
  data: fc.constantFrom('x', 'hello', ''),
});
const zipEntry: fc.Arbitrary<ZipFixtureEntry> = fc.record({
  // Patched in by a same-length placeholder (below), which needs a few characters to be unique.
  name: entryName.filter((n) => resolveSandbox(n).length >= 4),
  kind: fc.constantFrom('file', 'file', 'dir', 'symlink'),
  target: linkTarget,
}).map(({ name, kind, target }) =>
  kind === 'dir' ? { name, dir: true } : kind === 'symlink' ? { name, data: target, mode: 0o120777 } : { name, data: 'x' },
);

/** Every path under `dir`, relative, with its kind: the fingerprint that must not change outside the target. */
async function tree(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  let names: string[];
  try {
    names = (await readdir(path.join(dir, rel))).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const p = rel ? `${rel}/${name}` : name;
    const st = await lstat(path.join(dir, p));
    out.push(`${p}:${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'}`);
    if (st.isDirectory()) out.push(...(await tree(dir, p)));
  }
  return out;
}

let run = 0;
/** Extracts into a fresh target inside the sandbox and checks the outcome. */
async function checkExtraction(archive: string): Promise<void> {
  const target = path.join(sandbox, `target-${run++}`);
  const outside = async () => (await tree(sandbox)).filter((p) => !p.startsWith(`${path.basename(target)}/`) && !p.startsWith(`${path.basename(target)}:`));
  const before = await outside();
  let refused: unknown;
  await safeExtractArchive(archive, target).catch((err: unknown) => (refused = err));
  try {
    expect(await outside()).toEqual(before);
    await checkTarget(target, refused);
  } finally {
    // Keeps the sandbox small, so each run's walk over it stays cheap.
    await rm(target, { recursive: true, force: true });
    await rm(archive, { force: true });
  }
}

async function checkTarget(target: string, refused: unknown): Promise<void> {
  if (refused !== undefined) {
    if (!Twister2Error.is(refused, 'T2_PACKAGE_INVALID')) throw new Error(`expected a PackageError, got ${String(refused)}`, { cause: refused });
    expect((refused as Error).message).not.toMatch(/^\s+at /m);
    expect(await tree(target)).toEqual([]); // a refused archive leaves nothing behind
    return;
  }
  // Extracted: every symlink in it resolves inside the target.
  for (const entry of await tree(target)) {
    if (!entry.endsWith(':l')) continue;
    const link = path.join(target, entry.slice(0, -2));
    const resolved = path.resolve(path.dirname(link), await readlink(link));
    expect(resolved === target || resolved.startsWith(target + path.sep), `${link} -> ${resolved}`).toBe(true);
  }
}

describe('archive extraction, property-based', () => {
  it('extracts every generated .tar.gz inside the target or refuses it, writing nothing outside', async () => {
    await mkdir(sandbox, { recursive: true });
    await fc.assert(
      fc.asyncProperty(fc.array(tarEntry, { minLength: 1, maxLength: 6 }), async (entries) => {
        const file = path.join(archives, `a-${run}.tar.gz`);
        await writeRawTarGz(file, entries.map((e) => ({ ...e, name: resolveSandbox(e.name), linkname: resolveSandbox(e.linkname ?? '') })));
        await checkExtraction(file);
      }),
      { seed, numRuns: 300, timeout: 5000 },
    );
  }, 60_000);

  it('extracts every generated .zip inside the target or refuses it, writing nothing outside', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(zipEntry, { minLength: 1, maxLength: 6 }), async (entries) => {
        // yazl refuses hostile names: each is written as a same-length placeholder and patched in the bytes.
        const patch: Record<string, string> = {};
        const named = entries.map((e, i) => {
          const name = resolveSandbox(e.name);
          const placeholder = `Q${i}Q`.padEnd(name.length, 'Z');
          patch[placeholder] = name;
          return { ...e, name: placeholder, ...(e.mode ? { data: resolveSandbox(e.data ?? '') } : {}) };
        });
        const file = path.join(archives, `a-${run}.zip`);
        await writeZip(file, named, patch);
        await checkExtraction(file);
      }),
      { seed, numRuns: 300, timeout: 5000 },
    );
  }, 60_000);
});

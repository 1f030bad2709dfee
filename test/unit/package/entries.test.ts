import { describe, expect, it } from 'vitest';
import { checkEntries, linkStaysInside, normalizeEntryPath, type RawEntry } from '../../../src/package/entries.js';
import { PackageError } from '../../../src/errors.js';

const file = (name: string): RawEntry => ({ name, kind: 'file', typeName: 'File', size: 0, mode: 0o644 });
const link = (name: string, linkTarget: string): RawEntry => ({ name, kind: 'symlink', typeName: 'SymbolicLink', size: 0, mode: 0o777, linkTarget });

describe('normalizeEntryPath', () => {
  it('canonicalizes harmless spellings', () => {
    expect(normalizeEntryPath('./a//b/./c/')).toEqual({ path: 'a/b/c' });
    expect(normalizeEntryPath('./')).toEqual({ path: '' });
  });
  it.each([
    ['/etc/passwd', 'absolute'],
    ['C:/x', 'absolute'],
    ['a/../../x', '".."'],
    ['..', '".."'],
    ['a\\..\\x', 'backslash'],
  ])('refuses %s', (name, problem) => {
    const result = normalizeEntryPath(name);
    expect('problem' in result && result.problem).toContain(problem);
  });
});

describe('linkStaysInside', () => {
  const none = new Map<string, string>();
  it('follows ".." lexically from the link directory', () => {
    expect(linkStaysInside('a/b/l', '../../x', none)).toBe(true);
    expect(linkStaysInside('a/l', '../../x', none)).toBe(false);
    expect(linkStaysInside('l', '.', none)).toBe(true);
    expect(linkStaysInside('l', '/etc/passwd', none)).toBe(false);
  });
  it('expands the archive\'s own symlinks on the way', () => {
    // "a" is the root itself, so "a/.." is the root's parent even though it reads as "."
    const links = new Map([['a', '.']]);
    expect(linkStaysInside('b', 'a/..', links)).toBe(false);
    expect(linkStaysInside('b', 'a/x', links)).toBe(true);
    expect(linkStaysInside('b', 'c/x', new Map([['c', '/etc']]))).toBe(false);
  });
  it('treats loops as inside (the OS refuses to follow them)', () => {
    expect(linkStaysInside('a', 'b', new Map([['a', 'b'], ['b', 'a']]))).toBe(true);
  });
});

describe('checkEntries', () => {
  it('refuses writing beneath a symlink', () => {
    expect(() => checkEntries('x.tgz', [link('d', 'sub'), file('d/evil')])).toThrow(/"d\/evil" lies beneath the symlink "d"/);
  });
  it('refuses duplicates and hardlinks to things that are not earlier files', () => {
    expect(() => checkEntries('x.tgz', [file('a'), file('./a')])).toThrow(/"\.\/a" appears more than once/);
    const hard = (name: string, t: string): RawEntry => ({ name, kind: 'hardlink', typeName: 'Link', size: 0, mode: 0, linkTarget: t });
    expect(() => checkEntries('x.tgz', [hard('h', 'a'), file('a')])).toThrow(PackageError);
    expect(checkEntries('x.tgz', [file('a'), hard('h', './a')])[1]).toMatchObject({ path: 'h', linkTarget: './a', hardlinkTo: 'a' });
  });
  it('refuses a symlink chain that escapes through another symlink', () => {
    expect(() => checkEntries('x.tgz', [link('a', '.'), link('b', 'a/..')])).toThrow(/"b" is a symlink to "a\/\.\.", which points outside/);
  });
});

import { PackageError } from '../errors.js';
import { archiveKind, assertFile } from './archive.js';
import { checkEntries, normalizeEntryPath, type SafePath } from './entries.js';
import { sha256File, sha256Of } from './hash.js';
import { checkAgainstManifest, MANIFEST_NAME, parseManifest, type FoundFile, type Manifest } from './manifest.js';
import { scanSource } from './scan.js';
import { listTar, unpackTar, type TarEntry } from './tar-read.js';
import { assertEmptyTarget, extractInto } from './target.js';

export interface ExtractOptions {
  /** sha256 (hex) the package must have, e.g. the one recorded when it was uploaded. */
  expectedSha256?: string;
}

const isManifest = (name: string): boolean => {
  const norm = normalizeEntryPath(name);
  return 'path' in norm && norm.path === MANIFEST_NAME;
};

/** What the archive says each path contains, computed in the listing pass (nothing written yet). */
function packagedFiles(entries: ReadonlyArray<TarEntry & SafePath>): FoundFile[] {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  return entries.flatMap((e): FoundFile[] => {
    if (e.kind === 'directory' || e.path === MANIFEST_NAME) return [];
    if (e.kind === 'symlink') {
      const target = e.linkTarget ?? '';
      return [{ path: e.path, type: 'symlink', size: Buffer.byteLength(target), sha256: sha256Of(target) }];
    }
    // A hardlink has the data of the (earlier) file it points to.
    const data = e.kind === 'hardlink' ? byPath.get(e.hardlinkTo ?? '') : e;
    return [{ path: e.path, type: 'file', size: data?.size ?? -1, sha256: data?.sha256 ?? '' }];
  });
}

/**
 * Extracts a job package made by packJob into `targetDir` (empty or missing) and returns its
 * manifest. The package is checked completely before anything is written (hash, entry safety,
 * every file against the manifest), and the extracted files are checked again afterwards.
 * The manifest itself is not extracted.
 */
export async function extractPackage(file: string, targetDir: string, opts: ExtractOptions = {}): Promise<Manifest> {
  await assertFile(file, 'package');
  if (opts.expectedSha256 !== undefined) {
    const { sha256 } = await sha256File(file);
    if (sha256 !== opts.expectedSha256.toLowerCase()) {
      throw new PackageError(
        `package ${file} has sha256 ${sha256}, expected ${opts.expectedSha256}: it is corrupt or not the package that was uploaded. Upload the job again.`,
      );
    }
  }
  if ((await archiveKind(file)) !== 'tar.gz') throw new PackageError(`${file} is not a twister2 job package (.tar.gz); create one with packJob.`);
  await assertEmptyTarget(targetDir);
  const { entries, captured } = await listTar(file, { hash: true, capture: isManifest });
  const safe = checkEntries(file, entries);
  if (captured === undefined) {
    throw new PackageError(`package ${file} has no ${MANIFEST_NAME}, so it was not made by twister2; package the job with twister2.`);
  }
  const manifest = parseManifest(captured.toString('utf8'), file);
  checkAgainstManifest(manifest, packagedFiles(safe), file);
  await extractInto(targetDir, async () => {
    await unpackTar(file, targetDir, safe, isManifest);
    checkAgainstManifest(manifest, await scanSource(targetDir, { label: targetDir, skipGit: false }), file);
  });
  return manifest;
}

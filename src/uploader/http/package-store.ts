import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { META_SUFFIX, PackageMetaSchema, type PackageMeta } from './protocol.js';

/**
 * The package server's directory: each package `<name>` beside its sidecar `<name>.meta.json` (size,
 * sha256, the digest of its read token). Uploads go to temporary files first and are renamed into place,
 * so a package is either complete and matched by its sidecar, or absent. Every method takes the
 * package's name and its file, as the caller checked it (see packageFileIn).
 */

/** Temporary files start with a dot, which no package name can, so no URL ever reaches one. */
const TMP_PREFIX = '.upload-';

export interface OpenedPackage {
  meta: PackageMeta;
  /** Open for reading; whoever receives it closes it. */
  fh: FileHandle;
}

export class PackageStore {
  /** Per-name queue: a commit (rename + sidecar) and the open of a download never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();

  /** `dir` must be absolute. */
  constructor(readonly dir: string) {}

  /** Creates the directory and removes what crashed uploads left behind. */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Uploads cut short by a crash leave temporary files; nobody can reach them, so they go.
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith(TMP_PREFIX)) await rm(path.join(this.dir, entry), { force: true });
    }
  }

  /**
   * Opens a package for reading if it exists and `mayRead` allows it given its sidecar: undefined when it
   * does not exist, 'denied' when `mayRead` says no.
   */
  async open(name: string, file: string, mayRead: (meta: PackageMeta) => boolean): Promise<OpenedPackage | 'denied' | undefined> {
    // The sidecar and the file are opened together under the lock, so an overwrite in progress can
    // never pair one upload's token or checksum with another upload's bytes. The open handle keeps
    // serving the old bytes even if a new upload replaces the file meanwhile.
    return this.withLock(name, async () => {
      const meta = await this.readMeta(file);
      if (!meta) return undefined;
      if (!mayRead(meta)) return 'denied' as const;
      try {
        return { meta, fh: await open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
  }

  /**
   * Stores a package: `writeBody` fills a temporary file and reports its size and sha256, then the file
   * and its sidecar are renamed into place. `replaced` tells whether a package of that name existed.
   */
  async put(
    name: string,
    file: string,
    readTokenSha256: string,
    writeBody: (tmp: string) => Promise<{ size: number; sha256: string }>,
  ): Promise<{ meta: PackageMeta; replaced: boolean }> {
    const rand = randomBytes(8).toString('hex');
    const tmp = path.join(this.dir, `${TMP_PREFIX}${rand}.tmp`);
    const metaTmp = path.join(this.dir, `${TMP_PREFIX}${rand}.meta.tmp`);
    const sidecar = file + META_SUFFIX;
    try {
      const { size, sha256 } = await writeBody(tmp);
      const meta: PackageMeta = { name, size, sha256, readTokenSha256, storedAt: new Date().toISOString() };
      await writeFile(metaTmp, JSON.stringify(meta), { flag: 'wx', mode: 0o600 });
      const replaced = await this.withLock(name, async () => {
        // Sidecar out, file in, sidecar in: a crash in between leaves the package invisible, never mismatched.
        const existed = await removeIfPresent(sidecar);
        await rename(tmp, file);
        await rename(metaTmp, sidecar);
        return existed;
      });
      return { meta, replaced };
    } finally {
      await rm(tmp, { force: true });
      await rm(metaTmp, { force: true });
    }
  }

  /** Removes a package; false if there was none. */
  async remove(name: string, file: string): Promise<boolean> {
    return this.withLock(name, async () => {
      // The sidecar first: once it is gone the read token opens nothing.
      const hadMeta = await removeIfPresent(file + META_SUFFIX);
      const hadFile = await removeIfPresent(file);
      return hadMeta || hadFile;
    });
  }

  private async readMeta(file: string): Promise<PackageMeta | undefined> {
    let text: string;
    try {
      text = await readFile(file + META_SUFFIX, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const parsed = PackageMetaSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`the sidecar of ${path.basename(file)} is damaged`);
    return parsed.data;
  }

  private async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function removeIfPresent(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

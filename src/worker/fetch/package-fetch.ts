import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PackageError } from '../../errors.js';
import type { Manifest } from '../../package/manifest.js';
import type { PackageRef } from '../../uploader/uploader.js';
import { recordFailure, runOncePerHost } from './host-lock.js';

export interface FetchedPackage {
  dir: string;
  manifest: Manifest;
  /** False when another worker on this host already did the work. */
  fetchedHere: boolean;
}

/**
 * Gets the job package onto this host and unpacks it, once per host directory: one worker downloads
 * (verifying the sha256) and unpacks, the others on the host wait for it, then all use the same copy.
 * If the one worker fails, those waiting fail with its message.
 */
export async function fetchPackage(ref: PackageRef, workDir: string, opts: { deadlineMs: number; log?: (line: string) => void }): Promise<FetchedPackage> {
  await mkdir(workDir, { recursive: true });
  const base = path.join(workDir, `package-${ref.sha256.slice(0, 16)}`);
  const manifestFile = `${base}.manifest.json`;
  // The manifest ready() read is the one returned: reading it again later could find it gone.
  let seen: Manifest | undefined;
  const ready = async () => existsSync(base) && (seen = await readManifest(manifestFile)) !== undefined;
  let outcome;
  try {
    outcome = await runOncePerHost(`${base}.lock`, `${base}.failed`, ready, opts.deadlineMs);
  } catch (err) {
    throw new PackageError((err as Error).message);
  }
  // Not held: ready() just returned true (runOncePerHost returns so only then), so `seen` is set.
  if (!outcome.held) return { dir: base, manifest: seen!, fetchedHere: false };
  try {
    const archive = ref.kind === 'file' ? ref.path : ref.kind === 'copied' ? path.join(workDir, ref.file) : `${base}.tar.gz`;
    if (ref.kind === 'copied') await waitForCopy(archive, opts.deadlineMs);
    if (ref.kind === 'http') {
      // Loaded here: only the one worker per host that downloads needs the HTTP client (got).
      const { downloadVerified } = await import('./http-download.js');
      await downloadVerified(archive, {
        url: ref.url,
        token: ref.token,
        sha256: ref.sha256,
        size: ref.size,
        onRetry: (n, why) => opts.log?.(`package download attempt ${n} failed (${why}); retrying`),
      }).catch((err: Error) => {
        throw new PackageError(err.message, { cause: err });
      });
    }
    const tmp = `${base}.tmp-${process.pid}`;
    try {
      // Loaded here: only the one worker per host that unpacks needs the archive code.
      const { extractPackage } = await import('../../package/extract.js');
      const manifest = await extractPackage(archive, tmp, { expectedSha256: ref.sha256 });
      await writeFile(`${manifestFile}.${process.pid}`, JSON.stringify(manifest));
      await rename(`${manifestFile}.${process.pid}`, manifestFile);
      await rm(base, { recursive: true, force: true }); // a half-finished earlier attempt
      await rename(tmp, base);
      return { dir: base, manifest, fetchedHere: true };
    } finally {
      await rm(tmp, { recursive: true, force: true });
      // A download or a copy into the work dir (on Kubernetes, pod memory) is not needed once unpacked.
      if (ref.kind !== 'file') await rm(archive, { force: true });
    }
  } catch (err) {
    const message = err instanceof PackageError ? err.message : `cannot unpack the job package: ${(err as Error).message}`;
    await recordFailure(`${base}.failed`, message).catch(() => undefined);
    throw new PackageError(message, { cause: err });
  } finally {
    await outcome.release();
  }
}

/** Waits for the launcher's copy of the package (renamed into place when complete) until the deadline. */
export async function waitForCopy(file: string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) {
      throw new PackageError(`the job package was not copied to ${file} within ${Math.round(deadlineMs / 1000)}s; twister2 copies it into each pod through the Kubernetes exec API (the kubernetes.log of the client or job master says why it could not)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readManifest(file: string): Promise<Manifest | undefined> {
  try {
    // Written by the worker of this host that unpacked and checked the package (extractPackage validates
    // the manifest with its schema): only its shape is checked here, so that the others need no zod.
    const m = JSON.parse(await readFile(file, 'utf8')) as Manifest;
    return typeof m === 'object' && m !== null && Array.isArray(m.files) ? m : undefined;
  } catch {
    return undefined;
  }
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import got from 'got';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSecrets } from '../../src/job/secrets.js';
import { Twister2Error } from '../../src/errors.js';
import { sha256File } from '../../src/package/hash.js';
import { ManifestSchema } from '../../src/package/manifest.js';
import { packJob, type PackageInfo } from '../../src/package/pack.js';
import type { UPLOADER_KINDS } from '../../src/spec/schema.js';
import { parseSpec } from '../../src/spec/validate.js';
import { createUploader } from '../../src/uploader/registry.js';
import { PackageRefSchema, type PackageRef, type PackageToUpload, type Uploader } from '../../src/uploader/uploader.js';
import { fetchPackage } from '../../src/worker/fetch/package-fetch.js';
import { redact } from '../../src/worker/fetch/redact-url.js';
import { ROOT } from '../helpers/cli.js';
import { startCorruptingProxy } from '../helpers/corrupting-proxy.js';

/** An uploader as the job master builds it: the spec's `uploader` section and the secrets the client holds. */
export interface UploaderSetup {
  spec: Record<string, unknown>;
  secrets?: JobSecrets;
}

export interface UploaderFailure {
  /** What goes wrong, for the test's name: "a wrong token", "an unreachable server". */
  what: string;
  /**
   * The failing setup; the credentials (right and wrong) no message may hold; what the message must say
   * (which uploader, where, and the cause); what to undo afterwards.
   */
  setup(): Promise<{ uploader: UploaderSetup; credentials: string[]; says: RegExp[]; restore?: () => Promise<void> }>;
  /** The typed error's code. */
  code: string;
}

export interface UploaderTarget {
  kind: (typeof UPLOADER_KINDS)[number];
  /** How the worker gets the package: downloads it (a corrupt download is retried) or reads a file in place. */
  transport: 'http' | 'file';
  setup(opts: { keep: boolean }): UploaderSetup;
  /** The credentials the uploader holds: none may reach a PackageRef or a message. */
  credentials(): string[];
  /** What the store holds for the job's package; empty when nothing. */
  stored(pkg: PackageToUpload): Promise<string[]>;
  /** Everything in the store and next to it (its parent directory, the whole bucket), so that a name escaping it shows. */
  storeListing(): Promise<string[]>;
  /** Flips one byte of the stored package, so that every download or read of it is corrupt. */
  corruptStored(pkg: PackageToUpload, ref: PackageRef): Promise<void>;
  /** How often the store served the job's package, where the store counts it. */
  downloads?(jobId: string): number;
  /** Ways an upload fails: wrong credentials, an unreachable store. */
  failures: UploaderFailure[];
  /** What the kind can do; where it cannot, the suite checks that it says so instead of skipping. */
  can: {
    /** Bytes move to a store (local: the workers read the client's own file, nothing is uploaded). */
    upload: boolean;
    /** delete() removes the upload (local: the package belongs to the job directory). */
    delete: boolean;
    /** `keep: true` in its spec section leaves the upload in place. */
    keep: boolean;
    /** adopt(jobId): another process (the in-cluster job master) deletes what this one uploaded. */
    adopt: boolean;
    /** The ref carries a token of its own (the package server's per-upload read token). */
    readToken: boolean;
  };
}

const PAYLOAD = 2 * 2 ** 20;
/** Concurrent worker processes of one host. */
const WORKERS = 3;
const FETCHER = path.join(ROOT, 'test', 'fixtures', 'fetch-package.mjs');
/** Job IDs that name something outside the store, or nothing. */
const ESCAPING_IDS = ['../escape', 'nested/../../escape', '/tmp/escape', '..', '.', '', 'sub/dir'];

/**
 * The contract every uploader passes, through the real uploader (built from a spec by the registry) and the
 * real worker-side fetch: the package arrives byte-identical and verified, once per host; the worker's ref
 * holds no credential beyond reading that package; corruption is caught; delete leaves nothing; a failed
 * upload is a typed error without credentials and leaves nothing; names that escape the store are refused.
 */
export function uploaderConformance(t: UploaderTarget): void {
  describe(`uploader conformance: ${t.kind}`, () => {
    let pkgInfo: PackageInfo;
    let payload: Buffer;
    let jobs = 0;
    const scratchDirs: string[] = [];
    /** A temporary directory, removed after the suite: packages, sources and work dirs add up to megabytes. */
    const scratch = (prefix: string): string => {
      const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
      scratchDirs.push(dir);
      return dir;
    };
    afterAll(() => {
      for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
    });
    const newJob = (): PackageToUpload => ({ jobId: `conform-${t.kind}-${process.pid}-${++jobs}`, file: pkgInfo.file, sha256: pkgInfo.sha256, size: pkgInfo.size });
    /** A job with a package file of its own, for a test that corrupts what it stored (local stores the file itself). */
    const jobWithOwnFile = (): PackageToUpload => {
      const file = path.join(scratch('t2-conform-pkg-'), 'package.tar.gz');
      copyFileSync(pkgInfo.file, file);
      return { ...newJob(), file };
    };

    beforeAll(async () => {
      const src = scratch('t2-conform-src-');
      payload = randomBytes(PAYLOAD);
      writeFileSync(path.join(src, 'data.bin'), payload);
      writeFileSync(path.join(src, 'w.mjs'), 'export default async () => {};\n');
      const out = path.join(scratch('t2-conform-pkg-'), 'package.tar.gz');
      pkgInfo = await packJob({ source: src, outFile: out, manifestExtra: { spec: { name: 'conform' } } });
    });

    it('upload, then several workers of one host fetch: one fetches, all get identical bytes that match the manifest', async () => {
      const pkg = newJob();
      const uploader = await build(t.setup({ keep: false }));
      const ref = await uploader.upload(pkg);
      expect(PackageRefSchema.parse(ref)).toEqual(ref);
      expect(ref).toMatchObject({ kind: t.transport, sha256: pkg.sha256, size: pkg.size });

      const workDir = scratch('t2-conform-work-');
      const results = await Promise.all(Array.from({ length: WORKERS }, () => fetchAsWorker(ref, workDir)));
      expect(results.map((r) => r.ok && r.dir), JSON.stringify(results)).toEqual(Array(WORKERS).fill(results[0]!.dir));
      expect(results.filter((r) => r.fetchedHere)).toHaveLength(1);
      const dir = results[0]!.dir!;
      expect(readFileSync(path.join(dir, 'data.bin')).equals(payload)).toBe(true);
      const manifest = ManifestSchema.parse(JSON.parse(readFileSync(`${dir}.manifest.json`, 'utf8')));
      expect(manifest.files.map((f) => f.path).sort()).toEqual(['data.bin', 'w.mjs']);
      for (const f of manifest.files) expect(await sha256File(path.join(dir, f.path))).toEqual({ sha256: f.sha256, size: f.size });
      if (t.downloads) expect(t.downloads(pkg.jobId)).toBe(1);
      await uploader.delete();
    });

    it(`the ref holds no credential of the uploader${t.can.readToken ? '; its read token opens only this package, only for reading' : ', and no token'}`, async () => {
      const uploader = await build(t.setup({ keep: false }));
      const other = await build(t.setup({ keep: false }));
      const [a, b] = [newJob(), newJob()];
      const ref = await uploader.upload(a);
      const otherRef = await other.upload(b);
      const text = JSON.stringify(ref);
      for (const secret of t.credentials()) expect(text).not.toContain(secret);
      // A URL names this one package; a token (if any) is checked below.
      if (ref.kind === 'http') expect(new URL(ref.url).pathname).toMatch(new RegExp(`/${a.jobId}[/.]`));
      const token = ref.kind === 'http' ? ref.token : undefined;
      expect(Boolean(token)).toBe(t.can.readToken);
      if (token && ref.kind === 'http' && otherRef.kind === 'http') {
        const as = (method: 'get' | 'put' | 'delete', url: string) =>
          got(url, { method, headers: { authorization: `Bearer ${token}` }, throwHttpErrors: false, retry: { limit: 0 }, ...(method === 'put' ? { body: 'x' } : {}) });
        expect((await as('get', ref.url)).statusCode).toBe(200);
        expect((await as('get', otherRef.url)).statusCode).toBe(401);
        expect((await as('put', ref.url)).statusCode).toBe(401);
        expect((await as('delete', ref.url)).statusCode).toBe(401);
        expect((await as('get', `${new URL(ref.url).origin}/_stats`)).statusCode).toBe(401);
        expect(await t.stored(a)).not.toEqual([]);
      }
      await uploader.delete();
      await other.delete();
    });

    if (t.transport === 'http') {
      const spoiled = [
        { mode: 'flip', title: 'a download corrupted on the way is detected by its sha256 and retried', why: /checksum mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/ },
        { mode: 'truncate', title: 'a download cut off halfway is resumed with a Range request and verified', why: /./ },
      ] as const;
      for (const s of spoiled) {
        it(s.title, async () => {
          const pkg = newJob();
          const uploader = await build(t.setup({ keep: false }));
          const ref = await uploader.upload(pkg);
          if (ref.kind !== 'http') throw new Error(`expected an http ref, got ${ref.kind}`);
          const origin = new URL(ref.url).origin;
          const proxy = await startCorruptingProxy(origin, 1, s.mode);
          try {
            const log: string[] = [];
            const workDir = scratch('t2-conform-work-');
            const fetched = await fetchPackage({ ...ref, url: proxy.url + ref.url.slice(origin.length) }, workDir, { deadlineMs: 60_000, log: (l) => log.push(l) });
            expect(readFileSync(path.join(fetched.dir, 'data.bin')).equals(payload)).toBe(true);
            expect(log).toHaveLength(1);
            expect(log[0]).toMatch(/^package download attempt 1 failed \(.+\); retrying$/);
            expect(log[0]).toMatch(s.why);
            expect(proxy.gets()).toBe(2);
            const [first, second] = proxy.ranges();
            expect(first).toBeUndefined();
            if (s.mode === 'truncate') expect(Number(/^bytes=(\d+)-$/.exec(second ?? '')?.[1])).toBeGreaterThan(0);
            else expect(second).toBeUndefined(); // the corrupt file was deleted: a fresh download
          } finally {
            await proxy.close();
            await uploader.delete();
          }
        });
      }
    }

    it(`a package that stays corrupt fails every worker of the host, naming where it is and the cause${t.transport === 'file' ? ' (a file read in place: at once, no retry)' : ''}`, async () => {
      const pkg = jobWithOwnFile();
      const uploader = await build(t.setup({ keep: false }));
      const ref = await uploader.upload(pkg);
      await t.corruptStored(pkg, ref);
      const workDir = scratch('t2-conform-work-');
      const results = await Promise.all(Array.from({ length: WORKERS }, () => fetchAsWorker(ref, workDir)));
      const where = ref.kind === 'http' ? redact(ref.url) : ref.kind === 'file' ? ref.path : ref.file;
      for (const r of results) {
        expect(r.ok, JSON.stringify(r)).toBe(false);
        expect(r.code).toBe('T2_PACKAGE_INVALID');
        expect(r.message).toContain(where);
        expect(r.message).toMatch(t.transport === 'http' ? /after 5 attempts: checksum mismatch: expected sha256/ : /has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}: it is corrupt/);
        for (const secret of [...t.credentials(), ...(ref.kind === 'http' && ref.token ? [ref.token] : [])]) expect(r.message).not.toContain(secret);
        expect(r.message).not.toMatch(/X-Amz-Signature/i);
      }
      // One worker tried, five times; the others on the host waited for it and took its failure.
      if (t.downloads) expect(t.downloads(pkg.jobId)).toBe(5);
      await uploader.delete();
    });

    if (t.can.delete) {
      it('delete() removes everything uploaded, and a second delete() is fine', async () => {
        const pkg = newJob();
        const uploader = await build(t.setup({ keep: false }));
        await uploader.upload(pkg);
        expect(await t.stored(pkg)).not.toEqual([]);
        await uploader.delete();
        expect(await t.stored(pkg)).toEqual([]);
        await uploader.delete();
        expect(await t.stored(pkg)).toEqual([]);
      });
    } else {
      it('delete() leaves the package where it is, as declared (it belongs to the job directory)', async () => {
        const pkg = newJob();
        const uploader = await build(t.setup({ keep: false }));
        const ref = await uploader.upload(pkg);
        await uploader.delete();
        await uploader.delete();
        expect(await t.stored(pkg)).not.toEqual([]);
        expect(ref).toMatchObject({ kind: 'file', path: pkg.file });
      });
    }

    if (t.can.keep) {
      it('keep: true leaves the upload in place after delete(), still fetchable', async () => {
        const pkg = newJob();
        const kept = await build(t.setup({ keep: true }));
        const ref = await kept.upload(pkg);
        await kept.delete();
        const before = await t.stored(pkg);
        expect(before).not.toEqual([]);
        const fetched = await fetchPackage(ref, scratch('t2-conform-work-'), { deadlineMs: 60_000 });
        expect(readFileSync(path.join(fetched.dir, 'data.bin')).equals(payload)).toBe(true);
        // Cleaned up by an uploader that does not keep: the same job uploaded again, then deleted.
        const cleaner = await build(t.setup({ keep: false }));
        await cleaner.upload(pkg);
        await cleaner.delete();
        expect(await t.stored(pkg)).toEqual([]);
      });
    } else {
      it(`keep is not offered: the spec refuses uploader.${t.kind}.keep`, () => {
        const { spec } = t.setup({ keep: false });
        const section = (spec[t.kind] as Record<string, unknown> | undefined) ?? {};
        const refused = () => parseSpec({ ...SPEC, uploader: { ...spec, [t.kind]: { ...section, keep: true } } });
        expect(refused).toThrow(new RegExp(`uploader\\.${t.kind}.*unknown key "(keep|${t.kind})"`));
      });
    }

    it(t.can.adopt ? 'another uploader that adopts the job deletes what this one uploaded' : 'cannot be handed over to another process (no adopt), as declared', async () => {
      const uploader = await build(t.setup({ keep: false }));
      expect(typeof uploader.adopt === 'function').toBe(t.can.adopt);
      if (!t.can.adopt) return;
      const pkg = newJob();
      await uploader.upload(pkg);
      const adopter = await build(t.setup({ keep: false }));
      adopter.adopt!(pkg.jobId);
      await adopter.delete();
      expect(await t.stored(pkg)).toEqual([]);
    });

    if (!t.can.upload) {
      it('moves nothing, so nothing can fail half-way or escape: the ref names the client’s own package file', async () => {
        const pkg = newJob();
        const ref = await (await build(t.setup({ keep: false }))).upload({ ...pkg, jobId: '../escape' });
        expect(ref).toEqual({ kind: 'file', path: pkg.file, sha256: pkg.sha256, size: pkg.size });
      });
      return;
    }

    for (const f of t.failures) {
      it(`${f.what}: a typed error naming the uploader and the cause, no credential in it, nothing left on the store`, async () => {
        const { uploader: setup, credentials, says, restore } = await f.setup();
        const pkg = newJob();
        try {
          const uploader = await build(setup);
          const err = await uploader.upload(pkg).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(Twister2Error.is(err, f.code), inspect(err)).toBe(true);
          for (const re of says) expect((err as Error).message).toMatch(re);
          const all = everything(err);
          for (const secret of [...credentials, ...t.credentials()]) expect(all).not.toContain(secret);
          await uploader.delete().catch(() => undefined);
        } finally {
          await restore?.();
        }
        expect(await t.stored(pkg)).toEqual([]);
      });
    }

    it('an upload aborted before it starts is a typed error and stores nothing', async () => {
      const pkg = newJob();
      const uploader = await build(t.setup({ keep: false }));
      const err = await uploader.upload(pkg, { signal: AbortSignal.abort() }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Twister2Error.is(err), inspect(err)).toBe(true);
      expect((err as Error).message).toMatch(/abort/i);
      await uploader.delete();
      expect(await t.stored(pkg)).toEqual([]);
    });

    it('an upload aborted once bytes flow is a typed error and leaves nothing on the store, even before delete()', async () => {
      const pkg = newJob();
      const uploader = await build(t.setup({ keep: false }));
      const ac = new AbortController();
      let sentAtAbort = -1;
      const err = await uploader
        .upload(pkg, {
          signal: ac.signal,
          onProgress: (sent) => {
            if (sentAtAbort >= 0) return;
            sentAtAbort = sent;
            ac.abort(new Error('stopped by the test'));
          },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(sentAtAbort).toBeGreaterThan(0);
      expect(Twister2Error.is(err), inspect(err)).toBe(true);
      expect((err as Error).message).toMatch(/abort/i);
      expect(await t.stored(pkg)).toEqual([]);
      await uploader.delete();
    });

    it('job IDs that could escape the store are refused with a typed error naming them, and nothing is written', async () => {
      const before = await t.storeListing();
      const uploader = await build(t.setup({ keep: false }));
      for (const jobId of ESCAPING_IDS) {
        const err = await uploader.upload({ ...newJob(), jobId }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(Twister2Error.is(err), `job ID ${JSON.stringify(jobId)}: ${inspect(err)}`).toBe(true);
        expect((err as Error).message).toMatch(jobId === '' ? /''|""/ : jobId);
      }
      await uploader.delete();
      expect(await t.storeListing()).toEqual(before);
    });
  });
}

const SPEC = { name: 'conform', workers: 1, worker: { command: 'true' } };

function build(setup: UploaderSetup): Promise<Uploader> {
  return createUploader(parseSpec({ ...SPEC, uploader: setup.spec }, 'the conformance test'), setup.secrets ?? {});
}

interface FetchResult {
  ok: boolean;
  dir?: string;
  fetchedHere?: boolean;
  code?: string;
  message?: string;
}

/** One worker process fetching the package into the host's work dir (test/fixtures/fetch-package.mjs). */
function fetchAsWorker(ref: PackageRef, workDir: string): Promise<FetchResult> {
  mkdirSync(workDir, { recursive: true });
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FETCHER, workDir], { env: { ...process.env, T2TEST_PACKAGE_REF: JSON.stringify(ref) }, timeout: 90_000 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as FetchResult);
      } catch {
        reject(new Error(`the fetcher printed no result (${err?.message ?? 'exit 0'}): ${stdout}${stderr}`));
      }
    });
  });
}

/** Everything a caller could print about an error: message, stack, hint, properties, causes. */
function everything(err: unknown): string {
  return `${inspect(err, { depth: 10, showHidden: true })}\n${JSON.stringify(err)}\n${String((err as { hint?: unknown }).hint)}`;
}

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryDirOf, mountedStorageOf, nearestExisting, persistentLogsDirOf, sizeProblem } from '../../../src/job/storage.js';
import { prepareStorage } from '../../../src/worker/storage.js';
import { formatBytes } from '../../../src/spec/units.js';

const TI = 2 ** 40;
const jobs: string[] = [];
const newJob = () => {
  const id = `unit-storage-${process.pid}-${jobs.length}`;
  jobs.push(id);
  return id;
};
afterEach(() => {
  for (const id of jobs.splice(0)) {
    rmSync(memoryDirOf(id), { recursive: true, force: true });
    rmSync(`${memoryDirOf(id)}.lease-lock`, { force: true });
  }
});

describe('prepareStorage', () => {
  it('makes the scratch dir in the work dir, the memory dir in /dev/shm and the persistent dir; without storage only scratch', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const jobId = newJob();
    const persistent = path.join(base, 'kept', 'results');
    const s = prepareStorage(jobId, path.join(base, 'work'), { storage: { memory: { size: 1024 }, scratch: { size: 1024 }, persistent: { dir: persistent, logs: false } } });
    expect(s).toEqual({ memory: `/dev/shm/twister2-${jobId}`, scratch: path.join(base, 'work', 'scratch'), persistent });
    expect([s.memory!, s.scratch, persistent].every((d) => existsSync(d))).toBe(true);
    expect(prepareStorage(newJob(), path.join(base, 'work2'), { storage: undefined })).toEqual({ memory: undefined, scratch: path.join(base, 'work2', 'scratch'), persistent: undefined });
  });

  it('a memory size /dev/shm cannot hold fails naming the field, the size, the host and what is free, and makes no memory dir', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const jobId = newJob();
    expect(() => prepareStorage(jobId, base, { storage: { memory: { size: 100 * TI } } })).toThrow(
      new RegExp(`^storage\\.memory\\.size is 100Ti, but /dev/shm on host ${os.hostname()} has [0-9.]+\\w* free; ask for less in storage\\.memory\\.size`),
    );
    expect(existsSync(memoryDirOf(jobId))).toBe(false);
  });

  it('a scratch size the disk cannot hold fails the same way', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    expect(() => prepareStorage(newJob(), path.join(base, 'work'), { storage: { scratch: { size: 100 * TI } } })).toThrow(/^storage\.scratch\.size is 100Ti, but .* free; ask for less in storage\.scratch\.size, or free disk there$/);
    expect(existsSync(path.join(base, 'work', 'scratch'))).toBe(false);
  });

  it('a persistent dir that cannot be created is named with the fix', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const file = path.join(base, 'a-file');
    writeFileSync(file, '');
    expect(() => prepareStorage(newJob(), path.join(base, 'work'), { storage: { persistent: { dir: path.join(file, 'results'), logs: false } } })).toThrow(
      /storage\.persistent\.dir ".*\/a-file\/results" cannot be created on host .*ENOTDIR.*; give a directory of a file system every worker's host mounts/,
    );
  });
});

describe('prepareStorage with volumes the cluster mounted (Kubernetes)', () => {
  it('uses the mounts as they are: no memory dir in /dev/shm, no scratch in the work dir, no size check (the kubelet enforces sizeLimit)', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const jobId = newJob();
    const mounted = mountedStorageOf({ TWISTER2_MEMORY_MOUNT: path.join(base, 'm'), TWISTER2_SCRATCH_MOUNT: path.join(base, 's'), TWISTER2_PERSISTENT_MOUNT: path.join(base, 'p') });
    const storage = { memory: { size: 100 * TI }, scratch: { size: 100 * TI }, persistent: { pvc: { storageClass: 'rwx', size: 1024, keep: false }, logs: false } };
    expect(prepareStorage(jobId, path.join(base, 'work'), { storage }, mounted)).toEqual({ memory: path.join(base, 'm'), scratch: path.join(base, 's'), persistent: path.join(base, 'p') });
    expect(existsSync(memoryDirOf(jobId))).toBe(false);
    expect(existsSync(path.join(base, 'work', 'scratch'))).toBe(false);
    // A mount the spec does not ask for is not handed out.
    expect(prepareStorage(newJob(), path.join(base, 'work'), { storage: { scratch: {} } }, mounted).memory).toBeUndefined();
  });

  it('a persistent volume the launcher did not mount is named', () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const storage = { persistent: { nfs: { server: 'n', path: '/e' }, logs: false } };
    expect(() => prepareStorage(newJob(), path.join(base, 'work'), { storage }, {})).toThrow(/^storage\.persistent is a volume the cluster mounts, but TWISTER2_PERSISTENT_MOUNT does not say where: the launcher did not mount it$/);
  });
});

describe('prepareStorage with a Nomad host volume', () => {
  it("persistent is the volume's path on this node, created if missing; without one the worker fails naming the volume", () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 't2-storage-'));
    const at = path.join(base, 'volume', 'results');
    const spec = { storage: { persistent: { hostVolume: 'results', logs: false } } };
    expect(prepareStorage(newJob(), path.join(base, 'work'), spec, { persistent: at }).persistent).toBe(at);
    expect(existsSync(at)).toBe(true);
    expect(() => prepareStorage(newJob(), path.join(base, 'work2'), spec)).toThrow(/^storage\.persistent\.hostVolume "results" has no path on host .*: only the nomad launcher gives it$/);
  });
});

describe('storage paths and sizes', () => {
  it('reads free space at the closest existing parent', () => {
    expect(nearestExisting('/tmp/surely/not/here/at/all')).toBe('/tmp');
    expect(sizeProblem('storage.scratch.size', 1, '/tmp/surely/not/here', 'h', 'fix')).toBeUndefined();
    expect(persistentLogsDirOf('/nfs/out', 'job-1')).toBe('/nfs/out/logs/job-1');
  });

  it('formats sizes as people read them', () => {
    expect([formatBytes(12), formatBytes(1536), formatBytes(16 * 2 ** 20), formatBytes(1.25 * 2 ** 30), formatBytes(100 * TI)]).toEqual(['12', '1.5Ki', '16Mi', '1.3Gi', '100Ti']);
  });
});

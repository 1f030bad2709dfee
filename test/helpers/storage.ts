import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { fixture, makeJob, waitFor } from './cli.js';

/** What test/fixtures/storage-worker.mjs records about the storage it was given (`host` or `ip`: where it ran). */
export interface StorageRec {
  id: number;
  step: string;
  host: string;
  /** TWISTER2_NODE: the cluster's node (Nomad's client node name), where the launcher sets it. */
  node?: string;
  ip: string;
  storage: { memory: string; scratch: string; persistent: string };
  env: { memory?: string; scratch?: string; persistent?: string };
  fsType: string;
  scratchFsType: string;
  memoryFiles: string[];
}

/** A fresh persistent dir that does not exist yet: workers create it. */
export const persistentDir = (): string => path.join(mkdtempSync(path.join(os.tmpdir(), 't2-persist-')), 'results');

/**
 * A job of storage workers (`mode`: what they do, see the fixture) with every kind of storage, on the cluster
 * `extra` names; `persistent` is a dir, or another form of storage.persistent (`{ hostVolume }` on Nomad,
 * `{ nfs }` on Kubernetes); logs: true unless it says otherwise.
 */
export function storageJob(name: string, mode: string, persistent: string | Record<string, unknown>, extra: Record<string, unknown> = {}, workers = 4): string {
  return makeJob(
    {
      name,
      workers,
      worker: { module: 'w.mjs', args: [mode] },
      storage: { memory: { size: '16Mi' }, scratch: { size: '16Mi' }, persistent: { logs: true, ...(typeof persistent === 'string' ? { dir: persistent } : persistent) } },
      ...extra,
    },
    { 'w.mjs': fixture('storage-worker.mjs') },
  );
}

/** The job's memory dir (and its lease lock) still on this machine. */
export const memoryLeft = (jobId: string): string[] => [`/dev/shm/twister2-${jobId}`, `/dev/shm/twister2-${jobId}.lease-lock`].filter((d) => existsSync(d));

/**
 * After a storage job of 4 workers ended however it ended: waits (up to `withinMs`) until neither its memory
 * dirs nor anything else of it (`left.other`: the cluster's leftovers) is on any host, and checks that
 * persistent kept every worker's file.
 */
export async function expectStorageEnded(
  jobId: string,
  persistent: string,
  left: { memory: (jobId: string) => string[]; other: (jobId: string) => string[] | Promise<string[]> },
  withinMs = 60_000,
): Promise<void> {
  const gone = async () => left.memory(jobId).length === 0 && (await left.other(jobId)).length === 0;
  await waitFor('the job gone from every host', gone, withinMs).catch(() => undefined);
  expect(left.memory(jobId)).toEqual([]);
  expect(await left.other(jobId)).toEqual([]);
  expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2, 3].map((i) => `${jobId}-w-${i}`));
}

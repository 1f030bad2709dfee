import { copyFile, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { persistentLogsDirOf } from '../job/storage.js';

const WORKER_LOG = /^worker-\d+\.log$/;

/**
 * spec `storage.persistent.logs`: every worker's log (`logs/worker-N.log` of the job directory, which each
 * launcher fills wherever its job master runs) copied into `<persistent.dir>/logs/<job>/` once the job has
 * ended and its workers are gone, so the copies are complete. Returns how many were copied.
 */
export async function copyLogsToPersistent(jobDir: string, jobId: string, persistentDir: string): Promise<number> {
  const from = path.join(jobDir, 'logs');
  const to = persistentLogsDirOf(persistentDir, jobId);
  const names = (await readdir(from).catch(() => [] as string[])).filter((n) => WORKER_LOG.test(n));
  await mkdir(to, { recursive: true });
  await Promise.all(names.map((n) => copyFile(path.join(from, n), path.join(to, n))));
  return names.length;
}

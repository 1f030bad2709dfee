import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobIds, jobProcesses, makeJob, readLogs, runCli, startCli, tempHome, testRecords, waitFor } from '../helpers/cli.js';
import { persistentDir, storageJob as storageJobOf, type StorageRec } from '../helpers/storage.js';

const HEARTBEAT_MS = 3000;


function storageJob(mode: string, persistent: string, workers = 3) {
  return storageJobOf(`storage-${mode}`, mode, persistent, { timeouts: { heartbeat: `${HEARTBEAT_MS}ms` } }, workers);
}

/** The job's memory and scratch dirs (and their lease locks) still on this machine. */
function storageLeft(home: string, jobId: string): string[] {
  const memory = `/dev/shm/twister2-${jobId}`;
  const scratch = path.join(home, 'jobs', jobId, 'work', 'scratch');
  return [memory, `${memory}.lease-lock`, scratch, `${scratch}.lease-lock`].filter((d) => existsSync(d));
}

/** What every worker reported, checked: tmpfs, every worker's file seen in the one host's memory dir, variables as ctx. */
function expectStorageSeen(recs: StorageRec[], workers: number, jobId: string, persistent: string): void {
  const all = Array.from({ length: workers }, (_, i) => `w-${i}`);
  expect(recs.map((r) => r.id).sort()).toEqual(Array.from({ length: workers }, (_, i) => i));
  for (const r of recs) {
    expect(r.fsType).toBe('tmpfs');
    expect(r.storage.memory).toBe(`/dev/shm/twister2-${jobId}`);
    expect(r.storage.persistent).toBe(persistent);
    expect(r.env).toEqual(r.storage);
    expect(r.memoryFiles).toEqual(all);
  }
}

describe('storage on the local cluster', () => {
  it('success: memory (tmpfs, shared on the host), scratch and persistent written; persistent keeps every file and log; memory and scratch gone', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('ok', persistent)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage');
    expectStorageSeen(recs, 3, jobId, persistent);
    expect(recs[0]!.storage.scratch).toBe(path.join(home, 'jobs', jobId, 'work', 'scratch'));
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId)).sort()).toEqual([0, 1, 2].map((i) => `${jobId}-w-${i}`));
    const logs = path.join(persistent, 'logs', jobId);
    for (const i of [0, 1, 2]) expect(readFileSync(path.join(logs, `worker-${i}.log`), 'utf8')).toContain(`storage worker ${i} wrote its files`);
    expect(storageLeft(home, jobId)).toEqual([]);
  });

  it('a command worker finds its storage in TWISTER2_MEMORY_DIR, TWISTER2_SCRATCH_DIR and TWISTER2_PERSISTENT_DIR; without persistent.logs no log is copied', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const script = [
      'set -e',
      'echo "$TWISTER2_WORKER_ID" > "$TWISTER2_MEMORY_DIR/w-$TWISTER2_WORKER_ID"',
      'echo x > "$TWISTER2_SCRATCH_DIR/w-$TWISTER2_WORKER_ID"',
      'echo x > "$TWISTER2_PERSISTENT_DIR/w-$TWISTER2_WORKER_ID"',
      'twister2 barrier written',
      'echo "T2TEST {\\"id\\":$TWISTER2_WORKER_ID,\\"fsType\\":\\"$(stat -f -c %T "$TWISTER2_MEMORY_DIR")\\",\\"memoryFiles\\":\\"$(ls "$TWISTER2_MEMORY_DIR" | tr \'\\n\' \' \')\\"}"',
    ].join('\n');
    const job = makeJob(
      { name: 'storage-cmd', workers: 2, worker: { command: ['sh', 'w.sh'] }, storage: { memory: { size: '1Mi' }, persistent: { dir: persistent } } },
      { 'w.sh': script },
    );
    const r = await runCli(['submit', job], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code, `${r.stderr}\n${readLogs(home, jobId)}`).toBe(0);
    const recs = testRecords<{ id: number; fsType: string; memoryFiles: string }>(r.stdout);
    expect(recs.map((x) => x.id).sort()).toEqual([0, 1]);
    for (const x of recs) {
      expect(x.fsType).toBe('tmpfs');
      expect(x.memoryFiles.trim().split(' ')).toEqual(['w-0', 'w-1']);
    }
    expect(readdirSync(persistent).sort()).toEqual(['w-0', 'w-1']);
    expect(storageLeft(home, jobId)).toEqual([]);
  });

  it('failure: a worker that fails ends the job FAILED; persistent keeps every file and log, memory and scratch are gone', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const r = await runCli(['submit', storageJob('fail', persistent)], home);
    const jobId = jobIds(home)[0]!;
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/FAILED/);
    expect(r.stdout + r.stderr).toMatch(/worker 0 fails on purpose/);
    expectStorageSeen(testRecords<StorageRec>(r.stdout).filter((x) => x.step === 'storage'), 3, jobId, persistent);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId))).toHaveLength(3);
    expect(readFileSync(path.join(persistent, 'logs', jobId, 'worker-0.log'), 'utf8')).toContain('worker 0 fails on purpose');
    expect(storageLeft(home, jobId)).toEqual([]);
  });

  it('`twister2 kill`: memory and scratch are gone, persistent kept', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('3 sleeping workers', () => testRecords<StorageRec>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 3, 60_000);
    expect(storageLeft(home, jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    const k = await runCli(['kill', jobId], home);
    expect(k.code, k.stderr).toBe(0);
    await cli.closed;
    expect(cli.output().stdout + cli.output().stderr).toMatch(/KILLED/);
    expect(storageLeft(home, jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId))).toHaveLength(3);
    expect(readdirSync(path.join(persistent, 'logs', jobId)).sort()).toEqual(['worker-0.log', 'worker-1.log', 'worker-2.log']);
  });

  it('a SIGKILLed client: the workers end on their own, and the last one removes memory and scratch', async () => {
    const home = tempHome();
    const persistent = persistentDir();
    const cli = startCli(['submit', storageJob('sleep', persistent)], home);
    const jobId = await waitFor('the job', () => jobIds(home)[0]);
    await waitFor('3 sleeping workers', () => testRecords<StorageRec>(readLogs(home, jobId)).filter((x) => x.step === 'sleeping').length === 3, 60_000);
    expect(storageLeft(home, jobId)).toContain(`/dev/shm/twister2-${jobId}`);
    cli.kill('SIGKILL');
    await cli.closed;
    await waitFor('the workers to end', () => jobProcesses(jobId).length === 0, 60_000);
    expect(storageLeft(home, jobId)).toEqual([]);
    expect(readdirSync(persistent).filter((f) => f.startsWith(jobId))).toHaveLength(3);
  });

  it('a memory size /dev/shm cannot hold is refused before the job starts, naming the field, the size, the host and what is free', async () => {
    const home = tempHome();
    const job = makeJob({ name: 'storage-huge', workers: 1, worker: { command: 'true' }, storage: { memory: { size: '100Ti' } } });
    const r = await runCli(['submit', job], home);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`storage\\.memory\\.size is 100Ti, but /dev/shm on host ${os.hostname()} \\(this machine\\) has [0-9.]+[KMGT]?i? free; ask for less`));
    expect(jobIds(home)).toEqual([]);
  });
});

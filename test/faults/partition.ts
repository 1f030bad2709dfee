import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { setLink } from '../env/netns.js';
import { waitFor } from '../helpers/cli.js';
import { checkPartition, type PartitionHistory } from './checker.js';
import { HEARTBEAT_MS, PAUSE_MS, ROUNDS, WORKERS, sleep, startedIds, submitFaultJob, type FaultBackend } from './harness.js';
import { random } from './schedule.js';
import { faultSeeds } from './seeds.js';

/** A backend whose hosts are network namespaces: one of them, not the job master's, is cut off. */
export interface PartitionBackend extends FaultBackend {
  /** The host to cut off: its namespace (to tell which workers run there) and its bridge-side link. */
  cutHost(): { namespace: string; link: string };
  /**
   * What the cluster can do about workers it no longer hears: `replace` them (Slurm restarts them in the
   * allocation; the old ones are told so once the link is back and exit), or `fail` the job naming them
   * (OpenMPI cannot restart one rank).
   */
  expect: 'replace' | 'fail';
}

const netInode = (pid: number): number | undefined => {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return undefined;
  }
};

/**
 * One seeded run: once every worker started, at a time drawn from the seed, the host is cut off from the
 * job master (and everything else) for twice the heartbeat timeout, then healed.
 */
async function run(backend: PartitionBackend, seed: number): Promise<PartitionHistory> {
  const r = random(seed);
  const at = Math.round(r() * ROUNDS * PAUSE_MS * 0.6);
  const ms = 2 * HEARTBEAT_MS;
  const host = backend.cutHost();
  const job = await submitFaultJob(backend, seed, {
    // Up to two failures per worker: its own (missed heartbeats, or a barrier broken by another's), and
    // one more should its replacement land on the cut host before the link is back.
    restart: { maxRestarts: backend.expect === 'replace' ? 2 : 0 },
    // A worker that lost its job master for good gives up soon after the job ended.
    timeouts: { heartbeat: `${HEARTBEAT_MS}ms`, jobMasterRecovery: '10s' },
  });
  await waitFor('all workers started', () => startedIds(job.records()).size === WORKERS);
  const starts = job.records().filter((x) => x.step === 'start');
  const hostInode = statSync(`/run/netns/${host.namespace}`).ino;
  const cutIds = starts.filter((x) => netInode(x.pid) === hostInode).map((x) => x.id).sort((a, b) => a - b);
  const jobMasters = new Set<number>();
  const jm = job.jobMasterPid();
  if (jm !== undefined) jobMasters.add(jm);
  const t0 = Date.now();
  await sleep(at);
  const from = Date.now();
  setLink(host.link, false);
  try {
    await sleep(ms);
  } finally {
    setLink(host.link, true);
  }
  const to = Date.now();
  console.log(`fault suite: ${backend.name} seed ${seed}: ${host.namespace} (workers ${cutIds.join(', ')}) cut off ${from - t0} ms after all started, for ${to - from} ms`);
  const { final, leftovers } = await job.finish(jobMasters);
  return { workers: WORKERS, rounds: ROUNDS, cut: { ids: cutIds, from, to }, expect: backend.expect, records: job.records(), final, leftovers, logs: job.logs() };
}

/** The partition runs of one backend (see seeds.ts for replaying one; the seed sets when the cut comes). */
export function partitionSuite(backend: PartitionBackend, count: number): void {
  describe(`fault suite, ${backend.name}: a worker host is cut off from the job master for 2× the heartbeat timeout`, () => {
    for (const seed of faultSeeds(`${backend.name}-partition`, count)) {
      const outcome = backend.expect === 'replace' ? 'its workers are replaced, the old ones told so, the job succeeds' : 'the job fails naming them';
      it(`seed ${seed}: ${outcome}; every barrier is safe, nothing left`, async () => {
        const history = await run(backend, seed);
        const violations = checkPartition(history);
        console.log(`fault suite: ${backend.name} partition seed ${seed}: ${violations.length === 0 ? 'all invariants hold' : `VIOLATED:\n  ${violations.join('\n  ')}`} (${history.final.state}: ${history.final.message ?? ''})`);
        expect(violations).toEqual([]);
        expect(history.cut.ids.length).toBeGreaterThan(0);
      }, 180_000);
    }
  });
}

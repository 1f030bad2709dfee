// A job master alone, for benchmark (b): JobMaster + JobMasterServer with a launcher that starts
// nothing. Usage: BENCH_TOKEN=... node jobmaster-host.mjs <workers>. Prints {"url"} on stdout, then
// answers each "stats" line on stdin with its CPU time, peak open fds and barrier arrivals; exits on "exit" or stdin end.
// BENCH_JOURNAL=1: the job master journals its state as a restartable one does (fsync'd before each answer).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Journal } from '../dist/jobmaster/journal.js';
import { compactRecords, replay } from '../dist/jobmaster/saved-state.js';
import { JobMasterServer } from '../dist/jobmaster/http-server.js';
import { JobMaster } from '../dist/jobmaster/job-master.js';
import { parseSpec } from '../dist/spec/validate.js';
import { openFds as fds } from './sysinfo.mjs';

const workers = Number(process.argv[2]);
const token = process.env.BENCH_TOKEN;
if (!Number.isInteger(workers) || workers < 1 || !token) throw new Error('usage: BENCH_TOKEN=<secret> node jobmaster-host.mjs <workers>');

const spec = parseSpec({
  name: 'bench-jobmaster',
  workers,
  worker: { command: 'true' },
  // Simulated workers never heartbeat; nothing may time out during a run.
  timeouts: { registration: '10m', barrier: '10m', heartbeat: '10m' },
});
const noopLauncher = { async start() {}, async addWorkers() {}, async removeWorkers() {}, async release() {} };
const journalDir = process.env.BENCH_JOURNAL === '1' ? mkdtempSync(path.join(os.tmpdir(), 't2-bench-journal-')) : undefined;
const onFenced = (err) => {
  throw err;
};
const compact = (r) => compactRecords(replay(r));
const journal = journalDir ? (await Journal.open(journalDir, { compact, onFenced })).journal : undefined;
const jm = new JobMaster({
  jobId: 'bench-jobmaster',
  spec,
  launcher: noopLauncher,
  ...(journal ? { record: (r) => journal.append(r), flushed: () => journal.flushed(), recoveryMs: 60_000 } : {}),
});
const server = new JobMasterServer(jm, token);
const url = await server.listen('127.0.0.1', 0);
jm.start();

// Peak open fds, sampled once a second (a sample costs a few ms at 10k fds).
let peakFds = fds();
const sampler = setInterval(() => (peakFds = Math.max(peakFds, fds())), 1000);
process.stdout.write(JSON.stringify({ url }) + '\n');

/** Arrivals waiting at pending barriers. Diagnostic only: reads JobMaster internals, which may change. */
function arrived() {
  const pending = jm.barriers?.pending;
  return pending instanceof Map ? [...pending.values()].reduce((sum, b) => sum + (b.waiters?.size ?? 0), 0) : null;
}

async function shutdown() {
  clearInterval(sampler);
  jm.kill('benchmark over');
  await server.close();
  if (journalDir) rmSync(journalDir, { recursive: true, force: true });
  process.exit(0);
}
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line === 'stats') process.stdout.write(JSON.stringify({ cpu: process.cpuUsage(), peakFds: Math.max(peakFds, fds()), arrived: arrived() }) + '\n');
  if (line === 'exit') void shutdown();
});
input.on('close', () => void shutdown());

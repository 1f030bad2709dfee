// Benchmark (l): messages between a driver and its workers. For N workers, rounds of: the driver broadcasts
// the round number and waits until every worker answered it (twister2 on the local cluster, the driver in the
// job master's process). Floor: a node parent and N node children doing the same over node's own IPC channel
// (child_process fork, process.send). Peers: Ray (N one-CPU actors, one call each per round, ray.get) and
// Dask (one task pinned to each of N worker processes per round, gather). Each run times its own rounds after
// a warm-up. Prints one JSON line on stdout; progress goes to stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ensurePeersVenv } from './peers/venv.mjs';
import { runForJson } from './peers/run-peer.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const JOB = here('./fixtures/messages-job/');
const SIZES = (process.env.BENCH_MESSAGES_SIZES ?? '4,16').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_MESSAGES_REPEATS ?? 3);
const WARM = 5;
const ROUNDS = 50;
const home = mkdtempSync(path.join(os.tmpdir(), 'twister2-bench-messages-'));
process.env.TWISTER2_HOME = home;
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

const peers = process.env.BENCH_PEERS === '0' ? { error: 'skipped (BENCH_PEERS=0)' } : ensurePeersVenv();
if (peers.error) process.stderr.write(`messages: peers not measured: ${peers.error}\n`);
const { submit } = await import('../dist/index.js');

async function twister2(n) {
  const job = await submit({ job: JOB, workers: n, spec: { driver: { module: 'driver.mjs', args: [String(WARM), String(ROUNDS)] } } });
  const final = await job.wait();
  if (final.state !== 'SUCCEEDED') throw new Error(`job ${final.state}: ${final.message}`);
  return final.driver.result.roundMs;
}

/** N node children echoing over the IPC channel: the same rounds with nothing but node's own messaging. */
async function floor(n) {
  const echo = "process.on('message', (m) => process.send(m))";
  const children = Array.from({ length: n }, () => spawn(process.execPath, ['-e', echo], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  try {
    let pending;
    let left = 0;
    for (const c of children) c.on('message', () => --left === 0 && pending());
    const roundMs = [];
    for (let round = 0; round < WARM + ROUNDS; round++) {
      const t0 = performance.now();
      left = n;
      const all = new Promise((r) => (pending = r));
      for (const c of children) c.send(round);
      await all;
      if (round >= WARM) roundMs.push(performance.now() - t0);
    }
    return roundMs;
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

const peer = (script) => (n) => runForJson(peers.python, [here(`./peers/${script}`), String(n), String(WARM), String(ROUNDS)]).then((j) => j.roundMs);
const runners = { floor, twister2, ...(peers.error ? {} : { ray: peer('ray_messages.py'), dask: peer('dask_messages.py') }) };

const results = [];
for (const n of SIZES) {
  const r = { n, rounds: ROUNDS, medians: Object.fromEntries(Object.keys(runners).map((k) => [k, []])), errors: Object.fromEntries(Object.keys(runners).map((k) => [k, []])) };
  for (let i = 0; i < REPEATS; i++) {
    for (const [who, run] of Object.entries(runners)) {
      try {
        const rounds = await run(n);
        const s = [...rounds].sort((a, b) => a - b);
        r.medians[who].push(s[Math.floor(s.length / 2)]);
        process.stderr.write(`messages: N=${n} ${who} run ${i + 1}: median round ${s[Math.floor(s.length / 2)].toFixed(2)} ms\n`);
      } catch (err) {
        r.errors[who].push(err.message.slice(0, 300));
        process.stderr.write(`messages: N=${n} ${who} run ${i + 1} failed: ${err.message}\n`);
      }
    }
  }
  results.push(r);
}
console.log(JSON.stringify({ messages: { peers, warmRounds: WARM, results } }));
process.exit(0);

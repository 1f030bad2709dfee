// Benchmark (b): the job master alone. N simulated workers (requests from this one process, not worker
// processes) register and then all arrive at one barrier; the job master runs in a child process.
// Three variants (VARIANTS): the channel (protocol 2, what workers use) with the simulated workers sharing
// BENCH_JM_CONNECTIONS connections, the channel with a connection per simulated worker as real workers
// have, and a request per call (the HTTP routes, as the command workers' shim uses).
// Prints one JSON line with every sample on stdout; progress goes to stderr.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { JobMasterClient } from '../dist/protocol/jobmaster-client.js';
import { fdLimit, listenOverflows, openFds as fds } from './sysinfo.mjs';

const HOST = fileURLToPath(new URL('./jobmaster-host.mjs', import.meta.url));
const CASES = (process.env.BENCH_JM_CASES ?? '1000:5,10000:2').split(',').map((c) => c.split(':').map(Number));
/** Registrations in flight at once: enough to keep the job master busy without a connect storm. */
const REGISTER_CONCURRENCY = Number(process.env.BENCH_REGISTER_CONCURRENCY ?? 256);
/** Channel connections the simulated workers share (a real worker has one of its own: the `channel-each` variant). */
const CONNECTIONS = Number(process.env.BENCH_JM_CONNECTIONS ?? 256);
const EACH_CASES = (process.env.BENCH_JM_EACH_CASES ?? '10000:2').split(',').map((c) => c.split(':').map(Number));
/** channel: the simulated workers share CONNECTIONS channels; channel-each: one channel each; http: a request per call. */
const VARIANTS = [
  { name: 'channel', transport: 'channel', connections: CONNECTIONS, cases: CASES },
  // The same, with the job master journaling as a restartable one does: the cost of durability.
  { name: 'channel-journal', transport: 'channel', connections: CONNECTIONS, cases: CASES, journal: true },
  { name: 'channel-each', transport: 'channel', connections: Infinity, cases: EACH_CASES },
  { name: 'http', transport: 'http', cases: CASES },
].filter((v) => (process.env.BENCH_JM_VARIANTS ?? 'channel,channel-journal,channel-each,http').split(',').includes(v.name));
const RUN_TIMEOUT_MS = 180_000;
/** A barrier phase taking longer than this is recorded as stalled and the run ends there. */
const STALL_MS = Number(process.env.BENCH_STALL_MS ?? 90_000);

let host; // the running job master process, killed on any exit
process.on('exit', () => host?.kill('SIGKILL'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(1));

/** Starts jobmaster-host.mjs; returns its URL and a function asking it for one stats line. */
async function startHost(n, token, journal = false) {
  const nodeArgs = process.env.BENCH_HOST_NODE_ARGS?.split(' ').filter(Boolean) ?? []; // e.g. --cpu-prof
  host = spawn(process.execPath, [...nodeArgs, HOST, String(n)], { env: { ...process.env, BENCH_TOKEN: token, ...(journal ? { BENCH_JOURNAL: '1' } : {}) }, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: host.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the job master host ended early');
    return JSON.parse(value);
  };
  const { url } = await next();
  const stats = async () => {
    host.stdin.write('stats\n');
    return next();
  };
  return { url, stats };
}

async function stopHost() {
  const h = host;
  if (!h) return;
  host = undefined;
  if (h.exitCode !== null || h.signalCode !== null) return;
  const exited = new Promise((resolve) => h.once('exit', resolve));
  h.stdin.end('exit\n');
  const timer = setTimeout(() => h.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

const cpuMs = (a, b) => (b.user - a.user + b.system - a.system) / 1000;

/**
 * All simulated workers arrive at barrier `name` at once; resolves when every one was released, or with
 * `stalled` if that took longer than stallMs (an arrival lost in TCP never reaches the job master).
 */
async function barrierPhase(clientOf, sessions, name, stallMs) {
  let resent = 0;
  let stopped = false;
  const arrive = async (id, session) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await clientOf(id).barrier(name, id, session);
      } catch (err) {
        // A connect burst overflows the job master's listen backlog: an arrival whose connection was reset,
        // or that Node's HTTP server timed out (a bare 408, not the job master's barrier timeout), is sent again.
        const lost = err.code === 'T2_JOB_MASTER_UNREACHABLE' || (err.code === 'T2_PROTOCOL' && /answered 408/.test(err.message));
        if (stopped || attempt >= 3 || !lost) throw err;
        resent++;
      }
    }
  };
  const all = Promise.all(sessions.map((session, id) => arrive(id, session)));
  let timer;
  const stall = new Promise((resolve) => (timer = setTimeout(() => resolve({ stalled: true }), stallMs)));
  const outcome = await Promise.race([all.then((released) => ({ released })), stall]);
  clearTimeout(timer);
  if (outcome.stalled) {
    stopped = true;
    all.catch(() => undefined); // the arrivals fail when the job master is stopped
  }
  return { ...outcome, resent };
}

async function runCase(n, { name: variant, transport, connections, journal }) {
  const token = randomBytes(24).toString('base64url');
  const { url, stats } = await startHost(n, token, journal);
  // maxFreeSockets: keep every connection after the first barrier, for the second one.
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity });
  const channel = transport === 'channel';
  const clients = channel ? Array.from({ length: Math.min(connections, n) }, () => new JobMasterClient({ url, token, channel: true })) : [new JobMasterClient({ url, token, agent })];
  const clientOf = (id) => clients[id % clients.length];
  // Over the channel every call is pipelined on its connection; a request per call needs a connection per call in flight.
  const concurrency = channel ? n : Math.min(REGISTER_CONCURRENCY, n);
  try {
    const overflows0 = listenOverflows();
    const s0 = await stats();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sessions = new Array(n);
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const id = next++;
        const info = { workerId: id, host: 'sim', ip: '127.0.0.1', ports: {}, node: 'sim', resources: { cpu: 1, memoryBytes: 1 << 20, gpus: 0 }, restartCount: 0 };
        sessions[id] = (await clientOf(id).register(info)).session;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    const t1 = performance.now();
    const s1 = await stats();
    const c1 = process.cpuUsage();
    let clientPeakFds = fds();
    const sampler = setInterval(() => (clientPeakFds = Math.max(clientPeakFds, fds())), 1000);
    const t2 = performance.now();
    const cold = await barrierPhase(clientOf, sessions, 'b', STALL_MS);
    const t3 = performance.now();
    const s2 = await stats();
    const c2 = process.cpuUsage();
    const overflows1 = listenOverflows();
    if (cold.stalled) {
      clearInterval(sampler);
      const registerFigures = { registerMs: t1 - t0, registrationsPerSec: n / ((t1 - t0) / 1000), serverCpuRegisterMs: cpuMs(s0.cpu, s1.cpu), clientCpuRegisterMs: cpuMs(c0, c1) };
      return { variant, stalled: true, arrivedAtStall: s2.arrived, ...registerFigures, resentArrivals: cold.resent, listenOverflows: overflows1 - overflows0, serverPeakFds: s2.peakFds, clientPeakFds };
    }
    // The same again over the now-open keep-alive connections: the job master's own barrier cost.
    const t4 = performance.now();
    const warm = await barrierPhase(clientOf, sessions, 'b2', STALL_MS);
    const t5 = performance.now();
    const s3 = await stats();
    const c3 = process.cpuUsage();
    // One heartbeat from every simulated worker at once: the job master's steady load is N of these per interval.
    await Promise.all(sessions.map((session, id) => clientOf(id).heartbeat(id, session)));
    const s4 = await stats();
    clearInterval(sampler);
    if (warm.stalled) throw new Error(`the barrier over open connections stalled at N=${n}`);
    if ([...cold.released, ...warm.released].some((r) => r.numWorkers !== n)) throw new Error('a barrier answer named the wrong number of workers');
    return {
      variant,
      connections: channel ? clients.length : undefined,
      registerMs: t1 - t0,
      barrierMs: t3 - t2,
      totalMs: t1 - t0 + (t3 - t2),
      registrationsPerSec: n / ((t1 - t0) / 1000),
      serverCpuRegisterMs: cpuMs(s0.cpu, s1.cpu),
      serverCpuBarrierMs: cpuMs(s1.cpu, s2.cpu),
      clientCpuRegisterMs: cpuMs(c0, c1),
      clientCpuBarrierMs: cpuMs(c1, c2),
      resentArrivals: cold.resent,
      listenOverflows: overflows1 - overflows0,
      warmBarrierMs: t5 - t4,
      serverCpuWarmBarrierMs: cpuMs(s2.cpu, s3.cpu),
      clientCpuWarmBarrierMs: cpuMs(c2, c3),
      warmResentArrivals: warm.resent,
      serverCpuHeartbeatMs: cpuMs(s3.cpu, s4.cpu),
      warmListenOverflows: listenOverflows() - overflows1,
      serverPeakFds: s4.peakFds,
      clientPeakFds,
    };
  } finally {
    for (const c of clients) c.close();
    agent.destroy();
    await stopHost();
  }
}

for (const v of VARIANTS) await runCase(1000, v); // warm-up of this process (JIT), not recorded
const results = [];
for (const v of VARIANTS) for (const [n, repeats] of v.cases) {
  const runs = [];
  for (let i = 0; i < repeats; i++) {
    const run = await Promise.race([
      runCase(n, v),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`n=${n} did not finish in ${RUN_TIMEOUT_MS / 1000}s`)), RUN_TIMEOUT_MS).unref()),
    ]);
    runs.push(run);
    const barrier = run.stalled ? `barrier STALLED after ${STALL_MS / 1000}s with ${run.arrivedAtStall}/${n} arrived` : `barrier ${run.barrierMs.toFixed(0)} ms`;
    process.stderr.write(`jobmaster ${v.name} n=${n} run ${i + 1}/${repeats}: register ${run.registerMs.toFixed(0)} ms, ${barrier}` +
      ` (listen overflows ${run.listenOverflows}, re-sent ${run.resentArrivals})${run.stalled ? '' : `, warm barrier ${run.warmBarrierMs.toFixed(0)} ms`}\n`);
  }
  results.push({ n, variant: v.name, repeats, connections: v.transport === 'channel' ? Math.min(v.connections, n) : undefined, registerConcurrency: REGISTER_CONCURRENCY, stallMs: STALL_MS, fdLimit: fdLimit(), runs });
}
process.stdout.write(JSON.stringify({ jobmaster: results }) + '\n');
process.exit(0);

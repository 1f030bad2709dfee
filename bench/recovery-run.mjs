// One measurement of job master recovery, for bench/recovery.mjs (local) and the cluster benchmarks (slurm.mjs,
// mpi.mjs, nomad.mjs, k8s-recovery.mjs): a detached job (`submit --detach`, the job master in the cluster placement under its supervisor)
// whose N workers pass barrier 'tick' every 50 ms (bench/fixtures/recovery-job); once every worker passed a few,
// the job master is SIGKILLed. Measured from the kill until the restarted job master recorded itself in
// job.json (restartMs) and until every worker passed a barrier again (reattachedMs: all re-attached, a barrier
// released by the new job master). Then the job is killed and its home removed.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../bin/twister2.js', import.meta.url));
const JOB = fileURLToPath(new URL('./fixtures/recovery-job', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, probe, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Per worker, the times it printed for `tag`, from the job's logs (`files`: the log files by worker ID). */
function times(files, tag) {
  const out = new Map();
  for (const [id, file] of files) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    out.set(id, [...text.matchAll(new RegExp(`${tag} (\\d+)`, 'g'))].map((x) => Number(x[1])));
  }
  return out;
}

/**
 * Where a job's job master and workers are seen. By default (a job master process of this machine): its
 * pid in job.json, the workers' logs in the job directory, its end in status.json. A job master in a pod
 * (k8s-recovery.mjs) is found through the pod runner.
 */
export const processHooks = {
  jobMasterPid: (_jobId, jobDir) => JSON.parse(readFileSync(path.join(jobDir, 'job.json'), 'utf8')).jobMaster?.pid,
  logFiles: (_jobId, jobDir) => {
    const dir = path.join(jobDir, 'logs');
    return (existsSync(dir) ? readdirSync(dir) : []).flatMap((f) => {
      const m = /^worker-(\d+)\.log$/.exec(f);
      return m ? [[Number(m[1]), path.join(dir, f)]] : [];
    });
  },
  ended: (_jobId, jobDir) => existsSync(path.join(jobDir, 'status.json')),
};

/** `spec`: what the cluster's job adds to the fixture's twister2.yaml (its cluster, placement, hosts...). */
export async function measureRecovery(n, spec = {}, hooks = processHooks) {
  const home = mkdtempSync(path.join(os.tmpdir(), 't2-bench-recovery-'));
  const env = { ...process.env, TWISTER2_HOME: home };
  // Not spawnSync: a pod runner in this process (k8s-recovery.mjs) must go on running pods meanwhile.
  const cli = (...args) =>
    new Promise((resolve) => execFile(process.execPath, [CLI, ...args], { env, encoding: 'utf8' }, (err, stdout, stderr) => resolve({ status: err ? (err.code ?? 1) : 0, stdout, stderr })));
  const job = path.join(home, 'job');
  cpSync(JOB, job, { recursive: true });
  // YAML is a superset of JSON: the fixture's spec with the cluster's additions.
  const base = { name: 'bench-recovery', workers: n, worker: { module: 'worker.mjs' }, timeouts: { heartbeat: '5s' } };
  writeFileSync(path.join(job, 'twister2.yaml'), JSON.stringify({ ...base, ...spec }));
  const submitted = await cli('submit', job, '--detach');
  if (submitted.status !== 0) throw new Error(`submit failed: ${submitted.stderr}`);
  const jobId = readdirSync(path.join(home, 'jobs'))[0];
  const jobDir = path.join(home, 'jobs', jobId);
  const passed = () => times(hooks.logFiles(jobId, jobDir), 'BENCH-PASSED');
  try {
    // Running: every worker passed a few barriers.
    await waitFor('all workers passing barriers', () => {
      const t = passed();
      return t.size === n && [...t.values()].every((x) => x.length >= 3);
    });
    const pid = await waitFor('the job master', () => hooks.jobMasterPid(jobId, jobDir));
    const killedAt = Date.now();
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    await waitFor('the restarted job master', () => {
      const now = hooks.jobMasterPid(jobId, jobDir);
      return now !== undefined && now !== pid;
    });
    const restartMs = performance.now() - t0;
    const back = await waitFor('every worker past a barrier after the kill', () => {
      const firsts = [...passed().values()].map((x) => x.find((at) => at > killedAt));
      return firsts.length === n && firsts.every(Boolean) && Math.max(...firsts);
    });
    return { n, restartMs, reattachedMs: back - killedAt };
  } finally {
    await cli('kill', jobId);
    await waitFor('the job to end', () => hooks.ended(jobId, jobDir), 60_000).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
}

/** `repeats` measurements at each size, as the reports take them. */
export async function recoveryRuns(sizes, repeats, spec, log, hooks = processHooks) {
  const results = [];
  for (const n of sizes) {
    const runs = [];
    for (let i = 0; i < repeats; i++) {
      const r = await measureRecovery(n, spec, hooks);
      log(`recovery N=${n}: restarted ${r.restartMs.toFixed(0)} ms, all re-attached and past a barrier ${r.reattachedMs} ms`);
      runs.push(r);
    }
    results.push({ n, restartMs: runs.map((r) => r.restartMs), reattachedMs: runs.map((r) => r.reattachedMs) });
  }
  return results;
}

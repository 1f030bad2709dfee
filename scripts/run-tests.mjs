#!/usr/bin/env node
// `npm test`: lint, typecheck, build, then the unit, integration and clusters suites; closes with one plain line,
// "tests: N passed, N failed, N skipped". With suite names as arguments only those suites run (no lint/build).
//
// The clusters suite (Nomad, Kubernetes) needs binaries built from Go modules: tens of minutes on 2 cores when the
// cache is cold. So the builds start first, in the background at the lowest CPU priority, and take what the
// lint, the build and the other suites leave idle; the clusters suite waits for them at the end.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const suites = args.length ? args : ['unit', 'integration', 'clusters'];
mkdirSync('test-results', { recursive: true });

const clusterBuilds = suites.includes('clusters') ? startClusterBuilds() : undefined;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    clusterBuilds?.stop();
    process.exit(130);
  });
}

function run(cmd, cmdArgs) {
  return spawnSync(cmd, cmdArgs, { stdio: 'inherit' }).status === 0;
}

if (!args.length) {
  for (const script of ['lint', 'typecheck', 'build']) {
    if (!run('npm', ['run', '--silent', script])) {
      console.error(`npm run ${script} failed`);
      clusterBuilds?.stop();
      process.exit(1);
    }
  }
}

let passed = 0;
let failed = 0;
let skipped = 0;
let ok = true;
const failures = [];
for (const suite of suites) {
  if (suite === 'clusters' && clusterBuilds) {
    const built = await clusterBuilds.done;
    if (!built) {
      console.error(`the Nomad/Kubernetes builds failed; the clusters suite cannot run. Last lines of ${clusterBuilds.log}:`);
      console.error(readFileSync(clusterBuilds.log, 'utf8').split('\n').slice(-40).join('\n'));
      ok = false;
      failed += 1;
      continue;
    }
  }
  const out = `test-results/${suite}.json`;
  ok = run('npx', ['vitest', 'run', '--config', `vitest.${suite}.config.ts`, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`]) && ok;
  try {
    const j = JSON.parse(readFileSync(out, 'utf8'));
    passed += j.numPassedTests;
    failed += j.numFailedTests;
    skipped += j.numPendingTests + (j.numTodoTests ?? 0);
    if (j.numTotalTests === 0) ok = false;
    failures.push(...failedTests(suite, j));
  } catch {
    ok = false;
    failed += 1;
  }
}
// Repeated last, beside the count: a CI log is often read from its tail only, far from where vitest printed them.
for (const f of failures) console.log(`failed: ${f}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && failed === 0 ? 0 : 1);

/** One line per failed test of a vitest JSON report: suite, file, name and the first line of its error. */
function failedTests(suite, report) {
  const lines = [];
  for (const file of report.testResults ?? []) {
    const path = file.name?.replace(`${process.cwd()}/`, '');
    for (const t of file.assertionResults ?? []) {
      if (t.status !== 'failed') continue;
      const why = (t.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300);
      lines.push(`[${suite}] ${path} > ${t.fullName}: ${why}`);
    }
    // A file that failed to load or whose hooks threw has no failed test of its own.
    if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
      lines.push(`[${suite}] ${path}: ${(file.message ?? '').split('\n')[0].slice(0, 300)}`);
    }
  }
  return lines;
}

/** Starts scripts/build-nomad.sh then scripts/build-k8s.sh under `nice -n 19`; both return at once when cached. */
function startClusterBuilds() {
  const log = 'test-results/cluster-builds.log';
  const out = createWriteStream(log);
  // The builds time themselves: this process is blocked in spawnSync while the other suites run, so it sees
  // the exit only once they are done.
  const script = 'start=$SECONDS; bash scripts/build-nomad.sh && bash scripts/build-k8s.sh; rc=$?; echo "cluster builds took $((SECONDS - start)) s" >&2; exit $rc';
  const child = spawn('nice', ['-n', '19', 'bash', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() ends go and its compilers too
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let took = 0;
  child.stderr.on('data', (d) => {
    const m = /cluster builds took (\d+) s/.exec(String(d));
    if (m) took = Number(m[1]);
  });
  const done = new Promise((resolve) => {
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      if (took > 5) console.error(`cluster builds (Nomad, Kubernetes, KWOK) ${code === 0 ? 'finished' : 'failed'} in ${took} s`);
      resolve(code === 0);
    });
  });
  return {
    log,
    done,
    stop() {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    },
  };
}

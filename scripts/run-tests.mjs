#!/usr/bin/env node
// Runs the unit and the integration suites and closes with one plain line: "tests: N passed, N failed".
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration'];
mkdirSync('test-results', { recursive: true });
let passed = 0;
let failed = 0;
let skipped = 0;
let ok = true;
for (const suite of suites) {
  const out = `test-results/${suite}.json`;
  const r = spawnSync(
    'npx',
    ['vitest', 'run', '--config', `vitest.${suite}.config.ts`, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) ok = false;
  try {
    const j = JSON.parse(readFileSync(out, 'utf8'));
    passed += j.numPassedTests;
    failed += j.numFailedTests;
    skipped += j.numPendingTests + (j.numTodoTests ?? 0);
    if (j.numTotalTests === 0) ok = false;
  } catch {
    ok = false;
    failed += 1;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && failed === 0 ? 0 : 1);

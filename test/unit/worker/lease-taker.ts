// A worker starting on the host while another ends: takes its hold on the scratch work dir and puts its
// package there, then lives until killed. Run by work-dir-lease.test.ts through tsx.
import { closeSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkDirLease } from '../../../src/worker/work-dir-lease.js';

const [dir, trying] = process.argv.slice(2) as [string, string];
closeSync(openSync(trying, 'w'));
WorkDirLease.take(dir);
writeFileSync(path.join(dir, 'package-of-the-new-worker'), 'x');
setInterval(() => undefined, 60_000);

// Recovery of a crashed job master on the local cluster (`submit --detach`: the job master under its
// supervisor); see recovery-run.mjs for what is measured. Prints one JSON line on stdout.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileJournalStore } from '../dist/jobmaster/journal.js';
import { journalCost } from './journal-cost.mjs';
import { measureRecovery, recoveryRuns } from './recovery-run.mjs';

const SIZES = (process.env.BENCH_RECOVERY_SIZES ?? '4,64').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_RECOVERY_REPEATS ?? 3);

await measureRecovery(2).catch((err) => console.error(`warm-up: ${err.message}`));
const results = await recoveryRuns(SIZES, REPEATS, {}, (line) => console.error(line));
// The cost of the local, MPI and Slurm journal: a file appended and fsync'd at each commit (journal-cost.mjs).
const dir = mkdtempSync(path.join(os.tmpdir(), 't2-bench-journal-'));
const journal = await journalCost('file (fsync)', new FileJournalStore(dir)).catch((err) => ({ error: err.message }));
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ recovery: results, recoveryJournal: journal }));

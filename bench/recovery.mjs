// Recovery of a crashed job master on the local cluster (`submit --detach`: the job master under its
// supervisor); see recovery-run.mjs for what is measured. Prints one JSON line on stdout.
import { measureRecovery, recoveryRuns } from './recovery-run.mjs';

const SIZES = (process.env.BENCH_RECOVERY_SIZES ?? '4,64').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_RECOVERY_REPEATS ?? 3);

await measureRecovery(2).catch((err) => console.error(`warm-up: ${err.message}`));
const results = await recoveryRuns(SIZES, REPEATS, {}, (line) => console.error(line));
console.log(JSON.stringify({ recovery: results }));

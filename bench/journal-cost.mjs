// The cost of durability per journal store (src/jobmaster/journal.ts): what an answer of the job master waits
// for before it is sent. Against one store: commits one at a time (append a worker record, wait until it is
// stored: a registration or a barrier arrival alone), then bursts of appends made in one turn of the event
// loop and stored by one group commit (many workers at once). Records like the job master's own; the journal
// is compacted as the job master compacts it (the last record of each worker).
import { performance } from 'node:perf_hooks';
import { Journal } from '../dist/jobmaster/journal.js';

const record = (i) => ({
  t: 'worker',
  workerId: i % 64,
  state: 'RUNNING',
  restarts: 0,
  session: 'e4441a810d571334f366c53e',
  info: { workerId: i % 64, host: 'node-1', ip: '10.0.0.1', ports: {}, pid: 1000 + (i % 64), restartCount: 0 },
});
const lastOfEach = (records) => [...new Map(records.map((r) => [r.t === 'worker' ? `w${r.workerId}` : `${r.t}${r.epoch ?? ''}`, r])).values()];

/** `store`: a JournalStore; `label` names it in the figures. */
export async function journalCost(label, store, { commits = 200, burst = 1000, bursts = 5 } = {}) {
  let fenced;
  const { journal } = await Journal.openIn(store, { compact: lastOfEach, onFenced: (err) => (fenced = err) });
  for (let i = 0; i < 10; i++) {
    journal.append(record(i));
    await journal.flushed(); // warm-up: connections, caches
  }
  const commitMs = [];
  for (let i = 0; i < commits; i++) {
    const t = performance.now();
    journal.append(record(i));
    await journal.flushed();
    commitMs.push(performance.now() - t);
  }
  const burstMs = [];
  for (let b = 0; b < bursts; b++) {
    const t = performance.now();
    for (let i = 0; i < burst; i++) journal.append(record(i));
    await journal.flushed();
    burstMs.push(performance.now() - t);
  }
  await journal.close();
  await store.discard?.();
  if (fenced) throw fenced;
  return { store: label, commits, burst, commitMs, burstMs };
}
